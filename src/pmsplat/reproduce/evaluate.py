"""``pmsplat evaluate`` and ``pmsplat reproduce`` on the shared evaluation loop.

The loop, the upstream metrics and the averaging rule are the core's
(:func:`splatcore.evaluation.evaluate_scenes`, :class:`splatcore.evaluation.ScoreBook`): every
target view of every scene of an evaluation index; PSNR / SSIM / LPIPS per view, averaged per
scene, then over scenes (upstream-facts §5.3, §10). Here it runs with the reproduction's settings
(encoder at step 0, deterministic; rendered depth for the geometry) and the ``"geometry"`` scene
metric that pmsplat registers into it (:mod:`pmsplat.evaluation.scene_metrics`: boundary PSNR,
depth errors, point-to-surface, floaters, coverage, the collapse diagnostic). This module adds
what the reports need on top: the per-scene rows, the notes, and a few scenes kept for figures.

The geometric metrics need ground truth (the synthetic benchmark: ``dataset.load_depth`` and
``dataset.load_pointmap``); without it those columns are NaN and the report says why.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from splatcore.evaluation import EvaluationSettings, RenderedScene, ScoreBook, evaluate_scenes, lpips_unavailable_reason
from torch import Tensor

from pmsplat.evaluation import GEOMETRY, GEOMETRY_COLUMNS  # noqa: F401  (importing registers "geometry")
from pmsplat.evaluation.scene_metrics import GeometryConfig

# The reproduction's loop settings: the encoder at step 0, deterministic; depth rendered for the
# geometric metrics; every target view in one decoder call.
REPRODUCE_SETTINGS = EvaluationSettings(global_step=0, deterministic=True, depth_mode="depth", scene_metrics=(GEOMETRY,))


@dataclass
class EvaluationConfig(GeometryConfig):
    """Knobs of the extra metrics (the upstream ones have none) and of the reports' samples."""

    samples_to_keep: int = 2  # scenes kept (renders, points) for the figures
    max_scenes: int | None = None


@dataclass
class SceneSample:
    """What the figures need of one scene (CPU tensors)."""

    scene: str
    target: Float[Tensor, "view 3 height width"]
    render: Float[Tensor, "view 3 height width"]
    boundary: Tensor  # (view, height, width) bool
    means: Float[Tensor, "point 3"]  # predicted Gaussian centres of the context views
    gt_points: Float[Tensor, "point 3"] | None
    context: dict  # the context views (image, index, pointmap, ...) and "scene", for teacher figures
    boundary_score: float = 0.0


@dataclass
class EvaluationResult:
    book: ScoreBook  # every scene's scores, averaged by the core's rule
    samples: list[SceneSample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why a column is missing, skipped scenes...
    seconds: float = 0.0

    @property
    def rows(self) -> list[dict]:
        """One per scene: scene + every metric (float, NaN when unavailable)."""
        return self.book.rows() if self.book.scenes else []

    def averages(self) -> dict[str, float]:
        """:meth:`ScoreBook.averages` (unavailable metrics as NaN) plus ``scenes``, the count."""
        result = self.book.averages(unavailable_as_nan=True) if self.book.scenes else {}
        result["scenes"] = float(len(self.book.scenes))
        return result


@torch.no_grad()
def evaluate(
    encoder: torch.nn.Module,
    decoder: torch.nn.Module,
    batches: Iterable[dict],
    *,
    data_shim: Callable[[dict], dict] | None = None,
    device: torch.device | str = "cpu",
    cfg: EvaluationConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvaluationResult:
    """Score ``encoder`` + ``decoder`` on ``batches`` (batch size 1, the ``evaluation`` sampler)
    with the shared loop and :data:`REPRODUCE_SETTINGS`.

    ``data_shim`` is the encoder's patch shim (applied to every batch, as the model wrapper does).
    ``progress`` is called with the number of scenes done after each scene.
    """
    cfg = cfg or EvaluationConfig()
    samples: list[SceneSample] = []
    missing_geometry = False

    def keep(scene: RenderedScene) -> None:
        nonlocal samples, missing_geometry
        missing_geometry = missing_geometry or scene.extras.get("geometry_missing", False)
        boundary = scene.extras["boundary"]
        gt_points = scene.extras.get("gt_points")
        samples.append(
            SceneSample(
                scene=scene.scene, target=scene.gt.cpu(), render=scene.color.clamp(0, 1).cpu(), boundary=boundary.cpu(),
                means=scene.gaussians.means[-1].cpu(), gt_points=None if gt_points is None else gt_points.cpu(),
                context=dict(_to_cpu(scene.context), scene=list(scene.batch["scene"])),
                boundary_score=float(boundary.float().mean()),
            )
        )
        samples = sorted(samples, key=lambda s: s.boundary_score, reverse=True)[: cfg.samples_to_keep]

    start = time.perf_counter()
    book = ScoreBook()
    reason = lpips_unavailable_reason()
    if reason is not None:
        book.mark_unavailable("lpips", reason)
    settings = dataclasses.replace(REPRODUCE_SETTINGS, scene_metric_options={GEOMETRY: cfg})
    evaluate_scenes(
        encoder, decoder, batches, settings, book=book, data_shim=data_shim, device=device,
        max_scenes=cfg.max_scenes, on_scene=keep, progress=progress,
    )
    notes = [f"LPIPS unavailable: {reason}" for metric, reason in book.unavailable.items() if metric == "lpips"]
    if missing_geometry:
        notes.append(
            "geometric metrics (boundary PSNR, depth, point-to-surface, floaters) need ground-truth depth and "
            "pointmaps (dataset.load_depth=true dataset.load_pointmap=true; the synthetic benchmark has them)."
        )
    return EvaluationResult(book=book, samples=samples, notes=notes, seconds=time.perf_counter() - start)


def _to_cpu(batch):
    if isinstance(batch, Tensor):
        return batch.to("cpu")
    if isinstance(batch, dict):
        return {key: _to_cpu(value) for key, value in batch.items()}
    return batch


def evaluate_checkpoint(
    overrides: list[str],
    checkpoint: Path | str | None,
    *,
    max_scenes: int | None = None,
    label: str = "",
    cfg: EvaluationConfig | None = None,
) -> EvaluationResult:
    """Compose the config (``overrides`` must select the evaluation sampler, see
    :func:`evaluation_overrides`), build the model, load ``checkpoint`` strictly (None: the
    config's own ``checkpointing.*`` weights; ``checkpointing.no_strict_load=true`` loads it
    non-strictly) and run :func:`evaluate` with a progress bar."""
    from rich.progress import Progress
    from splatcore.dataset import DataModule
    from splatcore.main import build_model, compose_config, load_pretrained, typed_config
    from splatcore.model.checkpoints import load_weights

    composed = compose_config(overrides)
    run_cfg = typed_config(composed)
    model = build_model(composed, run_cfg)
    if checkpoint is not None:
        load_weights(model, checkpoint, strict=not run_cfg.checkpointing.no_strict_load, what=f"checkpoint {checkpoint}")
    else:
        load_pretrained(model, run_cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    data_module = DataModule(run_cfg.dataset, run_cfg.data_loader)
    loader = data_module.test_dataloader()
    cfg = dataclasses.replace(cfg or EvaluationConfig(), max_scenes=max_scenes)
    total = min(len(loader.dataset), max_scenes) if max_scenes else len(loader.dataset)
    with Progress(transient=True) as progress:
        task = progress.add_task(f"evaluating {label}".strip(), total=total)
        result = evaluate(
            model.encoder, model.decoder, loader, data_shim=model.encoder.get_data_shim(), device=device,
            cfg=cfg, progress=lambda n: progress.update(task, completed=n),
        )
    if data_module.skip_counters["test"].total():
        # the loader's skips (image size, FOV, too few frames, ...) say why a scene has no row
        result.notes.append(data_module.skip_report("test"))
    return result
