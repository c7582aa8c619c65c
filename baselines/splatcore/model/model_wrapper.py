"""The Lightning module shared by MVSplat and DepthSplat (upstream ``src/model/model_wrapper.py``,
behaviour of upstream-facts §5.1 / §5.2).

``ModelWrapper(optimizer_cfg, test_cfg, train_cfg, encoder, decoder, losses, step_tracker=None,
run_name="", max_steps=None)``:

- ``training_step``: data shim -> ``encoder(context, global_step, deterministic=False,
  scene_names=...)`` (a ``Gaussians`` or a dict with ``"gaussians"``) -> one decoder call on the
  target cameras with ``train.depth_mode``. When the Gaussian batch is k x the target batch
  (DepthSplat intermediate-depth supervision, intermediates first) the targets are tiled k times;
  the last b renders are the final output, intermediate i gets the weight
  ``intermediate_loss_weight ** (k - 1 - i)`` and only losses with ``supervise_intermediate``
  (mse, lpips) are applied to it. Losses see the final-stage Gaussians (last b). Logs
  ``loss/<name>``, ``loss/<name>_intermediate``, ``loss/<name>/<stat>`` (a loss's ``last_stats``),
  ``loss/total``, ``train/psnr_probabilistic`` (+ ``train/psnr``), ``info/near``, ``info/far``,
  ``info/global_step``; updates the step tracker.
- ``validation_step`` (batch 1): ``val/psnr_val``, ``val/ssim_val``, ``val/lpips_val`` (when LPIPS
  weights exist).
- ``test_step`` (batch 1): one scene of the shared evaluation loop,
  :func:`splatcore.evaluation.evaluate_scene` (every target view rendered, chunked with
  ``test.render_chunk_size``, with ``test.depth_mode``; the encoder at the trainer's global step);
  saves ``<test.output_path>/<run_name>/<scene>/color/<index:06>.png`` when ``save_image``, and when
  ``compute_scores`` adds the scene's metrics to a ``ScoreBook`` (the one averaging rule);
  ``on_test_end`` writes the score files plus ``benchmark.json`` (encoder/decoder seconds per call
  after skipping the first ``eval_time_skip_steps``) and ``peak_memory.json`` into
  ``<test.output_path>/<run_name>/``.
- ``configure_optimizers``: :func:`splatcore.model.optimizer.build_optimizer`.
- Checkpoints hold ``encoder.*`` only (checked in ``on_save_checkpoint``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from pmsplat.adapter.fork import skip_large_sample  # PM-Loss fork

from ..evaluation import EvaluationSettings, ScoreBook, evaluate_scene
from ..evaluation.metrics import compute_psnr as psnr
from ..evaluation.metrics import image_metrics
from ..loss import Loss, state_dict_free
from ..types import BatchedExample, DecoderOutput, Gaussians
from .config import OptimizerCfg, TestCfg, TrainCfg
from ..errors import ConfigError
from .optimizer import build_optimizer

log = logging.getLogger(__name__)

ENCODER_PREFIX = "encoder."


def slice_gaussians(gaussians: Gaussians, start: int, stop: int | None) -> Gaussians:
    """The Gaussians of batch entries ``start:stop`` (keeps any extra fields, e.g. confidences)."""
    values = {}
    for name, value in vars(gaussians).items():
        values[name] = value[start:stop] if isinstance(value, Tensor) else value
    return type(gaussians)(**values)


def slice_output(output: DecoderOutput, start: int, stop: int | None) -> DecoderOutput:
    return DecoderOutput(
        color=output.color[start:stop],
        depth=None if output.depth is None else output.depth[start:stop],
        alpha=None if output.alpha is None else output.alpha[start:stop],
    )


def tile_views(views: dict, copies: int) -> dict:
    """Repeat every camera tensor of a view set ``copies`` times along the batch (copy-major)."""
    if copies == 1:
        return views
    return {k: v.repeat(copies, *([1] * (v.dim() - 1))) if isinstance(v, Tensor) else v for k, v in views.items()}


def unpack_encoder_output(output: Any) -> tuple[Gaussians, dict[str, Any]]:
    """(Gaussians, the other entries) of what an encoder returned."""
    if isinstance(output, dict):
        if output.get("gaussians") is None:
            raise ConfigError(
                "the encoder returned no Gaussians (DepthSplat train_depth_only / forward_depth_only); "
                "the model wrapper trains the full model, set model.encoder.train_depth_only=false"
            )
        return output["gaussians"], {k: v for k, v in output.items() if k != "gaussians"}
    return output, {}


class ModelWrapper(LightningModule):
    def __init__(
        self,
        optimizer_cfg: OptimizerCfg,
        test_cfg: TestCfg,
        train_cfg: TrainCfg,
        encoder: nn.Module,
        decoder: nn.Module,
        losses: list[Loss],
        step_tracker: Any | None = None,
        run_name: str = "",
        max_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.optimizer_cfg = optimizer_cfg
        self.test_cfg = test_cfg
        self.train_cfg = train_cfg
        self.step_tracker = step_tracker
        self.run_name = run_name
        self.max_steps = max_steps
        self.encoder = encoder
        self.decoder = decoder
        self.data_shim: Callable[[BatchedExample], BatchedExample] = (
            encoder.get_data_shim() if hasattr(encoder, "get_data_shim") else (lambda batch: batch)
        )
        self.losses = nn.ModuleList(losses)
        for loss in losses:
            if not state_dict_free(loss):
                raise ConfigError(
                    f"loss {loss.name!r} holds parameters or persistent buffers; wrap its networks with "
                    "splatcore.loss.freeze_as_buffers so they never reach checkpoints or the optimizer"
                )
        if not state_dict_free(decoder):
            raise ConfigError("the decoder holds persistent state; only encoder.* may be saved")
        if train_cfg.train_ignore_large_loss > 0:
            for loss in losses:
                if hasattr(loss.cfg, "clamp_large_error") and loss.cfg.clamp_large_error == 0:
                    loss.cfg.clamp_large_error = train_cfg.train_ignore_large_loss
        if train_cfg.l1_loss:
            for loss in losses:
                if hasattr(loss.cfg, "l1_loss"):
                    loss.cfg.l1_loss = True
        self.last_train_record: dict[str, float] = {}
        self._reset_test_state()

    # ------------------------------------------------------------------ helpers
    def encode(self, batch: BatchedExample, deterministic: bool = False) -> tuple[Gaussians, dict[str, Any]]:
        output = self.encoder(
            batch["context"], self.global_step, deterministic=deterministic, scene_names=batch.get("scene")
        )
        return unpack_encoder_output(output)

    def render(self, gaussians: Gaussians, views: dict, depth_mode: str | None) -> DecoderOutput:
        h, w = views["image"].shape[-2:]
        return self.decoder(
            gaussians, views["extrinsics"], views["intrinsics"], views["near"], views["far"], (h, w),
            depth_mode=depth_mode,
        )

    def _log(self, name: str, value: Tensor | float, **kwargs: Any) -> None:
        self.log(name, value, batch_size=kwargs.pop("batch_size", 1), **kwargs)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: BatchedExample, batch_idx: int) -> Tensor:
        batch = self.data_shim(batch)
        target = batch["target"]
        b = target["image"].shape[0]
        gaussians, _ = self.encode(batch, deterministic=False)
        stacked = gaussians.means.shape[0]
        if stacked % b:
            raise ConfigError(
                f"the encoder returned {stacked} Gaussian sets for a batch of {b}; expected a multiple of it"
            )
        copies = stacked // b
        output = self.render(gaussians, tile_views(target, copies), self.train_cfg.depth_mode)
        final = slice_output(output, stacked - b, None)
        final_gaussians = slice_gaussians(gaussians, stacked - b, None)

        record: dict[str, float] = {}
        with torch.no_grad():
            train_psnr = psnr(
                rearrange(target["image"], "b v c h w -> (b v) c h w"),
                rearrange(final.color.detach(), "b v c h w -> (b v) c h w"),
            ).mean()
        self._log("train/psnr_probabilistic", train_psnr, batch_size=b)
        self._log("train/psnr", train_psnr, batch_size=b)
        record["train/psnr"] = float(train_psnr)

        total = final.color.sum() * 0.0
        for loss in self.losses:
            value = loss(final, batch, final_gaussians, self.global_step)
            total = total + value
            self._log(f"loss/{loss.name}", value, batch_size=b)
            record[f"loss/{loss.name}"] = float(value.detach())
            for key, stat in getattr(loss, "last_stats", {}).items():
                self._log(f"loss/{loss.name}/{key}", float(stat), batch_size=b)
                record[f"loss/{loss.name}/{key}"] = float(stat)
        intermediate_losses = [loss for loss in self.losses if getattr(loss, "supervise_intermediate", False)]
        for i in range(copies - 1):
            weight = self.train_cfg.intermediate_loss_weight ** (copies - 1 - i)
            rendered = slice_output(output, i * b, (i + 1) * b)
            partial = slice_gaussians(gaussians, i * b, (i + 1) * b)
            for loss in intermediate_losses:
                value = weight * loss(rendered, batch, partial, self.global_step)
                total = total + value
                name = f"loss/{loss.name}_intermediate"
                record[name] = record.get(name, 0.0) + float(value.detach())
        for name, value in record.items():
            if name.endswith("_intermediate"):
                self._log(name, value, batch_size=b)
        total = skip_large_sample(self.train_cfg, self.global_step, total, record)  # PM-Loss fork
        self._log("loss/total", total, batch_size=b, prog_bar=True)
        record["loss/total"] = float(total.detach())
        near, far = target["near"], target["far"]
        self._log("info/near", near.detach().mean(), batch_size=b)
        self._log("info/far", far.detach().mean(), batch_size=b)
        self._log("info/global_step", float(self.global_step), batch_size=b)
        record["step"] = float(self.global_step)
        self.last_train_record = record
        if self.step_tracker is not None:
            self.step_tracker.set_step(self.global_step)
        return total

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validation_step(self, batch: BatchedExample, batch_idx: int) -> None:
        batch = self.data_shim(batch)
        gaussians, _ = self.encode(batch, deterministic=False)
        gaussians = slice_gaussians(gaussians, gaussians.means.shape[0] - batch["target"]["image"].shape[0], None)
        output = self.render(gaussians, batch["target"], None)
        gt = batch["target"]["image"][0]
        scores = image_metrics(gt, output.color[0])
        for name, values in scores.items():
            self._log(f"val/{name}_val", values.mean())

    # ------------------------------------------------------------------ test
    def _reset_test_state(self) -> None:
        self.score_book = None
        self.test_times: dict[str, list[float]] = {"encoder": [], "decoder": []}

    def on_test_start(self) -> None:
        self._reset_test_state()
        if self.test_cfg.compute_scores:
            self.score_book = ScoreBook(time_skip_steps=self.test_cfg.eval_time_skip_steps)

    @property
    def test_output_dir(self) -> Path:
        return Path(self.test_cfg.output_path) / self.run_name

    def _timed(self, key: str, function: Callable[[], Any]) -> Any:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        result = function()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        self.test_times[key].append(elapsed)
        if self.score_book is not None:
            self.score_book.add_time(key, elapsed)
        return result

    @torch.no_grad()
    def test_step(self, batch: BatchedExample, batch_idx: int) -> None:
        batch = self.data_shim(batch)
        target = batch["target"]
        b = target["image"].shape[0]
        if b != 1:
            raise ConfigError(f"test_step needs data_loader.test.batch_size=1, got a batch of {b}")
        settings = EvaluationSettings(
            global_step=self.global_step, deterministic=False, depth_mode=self.test_cfg.depth_mode,
            chunk_size=self.test_cfg.chunk_size,
        )
        scene = evaluate_scene(self.encoder, self.decoder, batch, self.score_book, settings, timed=self._timed)
        if self.test_cfg.save_image:
            self._save_images(scene.scene, target["index"][0], scene.color)

    def _save_images(self, scene: str, indices: Tensor, color: Tensor) -> None:
        from PIL import Image

        folder = self.test_output_dir / scene / "color"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (color.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for index, image in zip(indices.tolist(), pixels):
            Image.fromarray(image).save(folder / f"{int(index):06d}.png")

    def _gather_test_state(self) -> bool:
        """Under DDP: rank 0 receives every rank's scores and timings (each rank evaluated its own
        block of the test split) and returns True; the other ranks return False (they write
        nothing). One process: True."""
        trainer = self._trainer
        if trainer is None or trainer.world_size <= 1:
            return True
        import torch.distributed as dist

        mine = {"book": self.score_book.state() if self.score_book is not None else None, "times": self.test_times}
        states: list = [None] * trainer.world_size
        dist.all_gather_object(states, mine)
        if trainer.global_rank != 0:
            return False
        if self.score_book is not None:
            self.score_book = ScoreBook.merged([state["book"] for state in states])
        self.test_times = {key: [t for state in states for t in state["times"][key]] for key in self.test_times}
        return True

    def on_test_end(self) -> None:
        if not self._gather_test_state():
            return
        out = self.test_output_dir
        out.mkdir(parents=True, exist_ok=True)
        skip = self.test_cfg.eval_time_skip_steps
        benchmark = {
            f"{key}_seconds_per_call": (sum(values[skip:]) / len(values[skip:]) if values[skip:] else None)
            for key, values in self.test_times.items()
        }
        benchmark["calls"] = len(self.test_times["encoder"])
        benchmark["skipped_calls"] = min(skip, len(self.test_times["encoder"]))
        (out / "benchmark.json").write_text(json.dumps(benchmark, indent=2))
        peak = torch.cuda.max_memory_allocated(self.device) / 2**30 if self.device.type == "cuda" else None
        (out / "peak_memory.json").write_text(json.dumps({"peak_memory_gib": peak}, indent=2))
        if self.score_book is not None:
            self.score_book.write(out)

    # ------------------------------------------------------------------ optimisation / checkpoints
    def configure_optimizers(self) -> dict[str, Any]:
        max_steps = self.max_steps
        if max_steps is None and self._trainer is not None:
            max_steps = self.trainer.max_steps
        return build_optimizer(self, self.optimizer_cfg, max_steps)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        foreign = [k for k in checkpoint.get("state_dict", {}) if not k.startswith(ENCODER_PREFIX)]
        if foreign:
            raise ConfigError(f"checkpoint would hold non-encoder entries {foreign[:5]}; only encoder.* is saved")

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self.step_tracker is not None:
            self.step_tracker.set_step(self.global_step)
