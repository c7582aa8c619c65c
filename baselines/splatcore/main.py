"""Train / test entry point (upstream ``src/main.py``), shared by MVSplat and DepthSplat.

Python API (what ``pmsplat train`` and the reproduction pipeline call)::

    cfg = compose_config(["+experiment=mvsplat_synthetic_cpu", "trainer.max_steps=300"])
    result = run(cfg)        # RunResult(output_dir, checkpoint_path, scores, history)

``compose_config`` composes the Hydra tree in ``config/`` (or ``config_dir``); ``run`` validates
the whole configuration first (every invalid combination fails here, before any data is read),
builds encoder + decoder + losses + :class:`~splatcore.model.ModelWrapper` + DataModule and runs
Lightning in-process: ``mode=train`` fits (then returns the last checkpoint), ``mode=test`` tests
and returns the averaged scores. CPU: accelerator cpu; several GPUs: DDP. Seeds: ``seed + rank``
for torch (upstream), ``data_loader.<stage>.seed + rank`` for the loaders.

Outputs under ``output_dir``: ``checkpoints/*.ckpt`` (``encoder.*`` only; ``last.ckpt`` at the end),
``train_history.csv`` (one row per training step: step, loss/total, loss/<name>, train/psnr, lr),
``logs/`` (Lightning CSV logger), ``test/<wandb.name>/`` (score files, images), ``config.yaml``.

Weight loading (upstream-facts §5.1, §5.2): ``checkpointing.load`` with ``resume: true`` resumes
the full training state; with ``resume: false`` (or in test mode) it loads the weights strictly.
``checkpointing.pretrained_model`` loads weights (strict unless ``no_strict_load``); the DepthSplat
chain ``pretrained_monodepth`` -> ``pretrained_mvdepth`` -> ``pretrained_model`` -> ``pretrained_depth``
follows upstream's order and strictness.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback
from omegaconf import DictConfig, OmegaConf

from .model.config import CheckpointingCfg, OptimizerCfg, TestCfg, TrainCfg, cfg_from_dict
from .errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
HISTORY_FILE = "train_history.csv"
MODES = ("train", "test")


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------


def compose_config(overrides: Sequence[str] = (), config_dir: str | Path | None = None, config_name: str = "main") -> DictConfig:
    """Compose the Hydra tree (``config/main.yaml`` + overrides) without changing directory or
    starting a Hydra run. Unknown groups/keys give Hydra's error, re-raised as ConfigError."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    directory = Path(config_dir or os.environ.get("PMSPLAT_CONFIG_DIR", DEFAULT_CONFIG_DIR)).resolve()
    if not (directory / f"{config_name}.yaml").is_file():
        raise ConfigError(f"config {directory / (config_name + '.yaml')} not found; pass config_dir=")
    try:
        with initialize_config_dir(config_dir=str(directory), version_base=None):
            return compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"invalid overrides {list(overrides)}: {error}") from error


ENCODER_FAMILIES = {"costvolume": "mvsplat", "depthsplat": "depthsplat"}


def encoder_cfg(cfg: DictConfig) -> Any:
    """The encoder's dataclass config from ``model.encoder`` (extra keys ignored, as upstream)."""
    import dacite

    values = OmegaConf.to_container(cfg.model.encoder, resolve=True)
    name = values.get("name")
    if name == "costvolume":
        from mvsplat import EncoderCostVolumeCfg

        # No view count here: the encoder takes V from each batch (upstream fixes it at construction).
        return dacite.from_dict(EncoderCostVolumeCfg, values, config=dacite.Config(strict=False, cast=[float]))
    if name == "depthsplat":
        from depthsplat import EncoderDepthSplatCfg

        return dacite.from_dict(EncoderDepthSplatCfg, values, config=dacite.Config(strict=False, cast=[float]))
    raise ConfigError(f"model.encoder.name={name!r} is unknown; use costvolume (MVSplat) or depthsplat")


def build_encoder(cfg: DictConfig):
    encoder_config = encoder_cfg(cfg)
    if encoder_config.name == "costvolume":
        from mvsplat import EncoderCostVolume

        return EncoderCostVolume(encoder_config)
    from depthsplat import EncoderDepthSplat

    return EncoderDepthSplat(encoder_config)


@dataclass
class RunConfig:
    """The typed pieces ``run`` needs, validated together (see :func:`validate`)."""

    mode: str
    baseline: str
    dataset: Any
    data_loader: Any
    optimizer: OptimizerCfg
    train: TrainCfg
    test: TestCfg
    checkpointing: CheckpointingCfg
    losses: list[Any]
    decoder: Any
    output_dir: Path
    run_name: str
    seed: int
    trainer: dict[str, Any] = field(default_factory=dict)


def typed_config(cfg: DictConfig, check_files: bool = True) -> RunConfig:
    """Convert the composed config to dataclasses and check cross-group consistency; with
    ``check_files`` also that the dataset folders and checkpoint files exist."""
    from .dataset import DataLoaderCfg, DataLoaderStageCfg, dataset_cfg_from_dict
    from .decoder import decoder_cfg_from_dict
    from .loss import loss_cfgs_from_dict

    mode = cfg.get("mode", "train")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    container = OmegaConf.to_container(cfg, resolve=True)
    loaders = container.get("data_loader", {})
    data_loader = DataLoaderCfg(
        **{stage: cfg_from_dict(DataLoaderStageCfg, loaders.get(stage)) for stage in ("train", "test", "val") if stage in loaders}
    )
    output_dir = container.get("output_dir") or "outputs/local"
    run = RunConfig(
        mode=mode,
        baseline=container.get("baseline", "mvsplat"),
        dataset=dataset_cfg_from_dict(container["dataset"]),
        data_loader=data_loader,
        optimizer=cfg_from_dict(OptimizerCfg, container.get("optimizer")),
        train=cfg_from_dict(TrainCfg, container.get("train")),
        test=cfg_from_dict(TestCfg, container.get("test")),
        checkpointing=cfg_from_dict(CheckpointingCfg, container.get("checkpointing")),
        losses=loss_cfgs_from_dict(container.get("loss") or {}),
        decoder=decoder_cfg_from_dict(container["model"]["decoder"]),
        output_dir=Path(output_dir),
        run_name=str(container.get("wandb", {}).get("name") or "local"),
        seed=int(container.get("seed", 111123)),
        trainer=dict(container.get("trainer") or {}),
    )
    validate(run, container)
    if check_files:
        validate_files(run)
    return run


def check_loss_configs(loss_cfgs: list[Any], container: dict[str, Any]) -> None:
    """Let each loss check the whole resolved config at start-up: a loss class may define
    ``check_run_config(cfg_wrapper, container)`` raising a ConfigError (e.g. a loss that needs
    a dataset key the config does not set), so that the run fails before any data is read."""
    from .loss import LOSSES, unwrap_cfg

    for cfg in loss_cfgs:
        check = getattr(LOSSES[unwrap_cfg(cfg)[0]][1], "check_run_config", None)
        if check is not None:
            check(cfg, container)


def validate(run: RunConfig, container: dict[str, Any]) -> None:
    """Invalid combinations, reported before anything is built."""
    encoder_name = container["model"]["encoder"].get("name")
    family = ENCODER_FAMILIES.get(encoder_name)
    if family is None:
        raise ConfigError(f"model.encoder.name={encoder_name!r} is unknown; use costvolume or depthsplat")
    if family != run.baseline:
        raise ConfigError(
            f"baseline={run.baseline} does not match model/encoder ({encoder_name}, a {family} encoder); "
            f"use baseline={family} or a {run.baseline} encoder preset"
        )
    required = container.get("requires_baseline")
    if required is not None and required != run.baseline:
        raise ConfigError(
            f"this experiment preset is for baseline={required} but baseline={run.baseline} was given; "
            f"drop the baseline override or pick the {run.baseline} preset"
        )
    if run.optimizer.lr_monodepth > 0 and family != "depthsplat":
        raise ConfigError(
            "optimizer.lr_monodepth > 0 only applies to DepthSplat's ViT ('pretrained' parameters); "
            "MVSplat has none: set optimizer.lr_monodepth=0"
        )
    names = [next(iter(vars(loss))) for loss in run.losses]
    if run.mode == "train" and not names:
        raise ConfigError("loss=[] is empty; training needs at least one loss (e.g. loss=[mse])")
    if run.mode == "train":
        check_loss_configs(run.losses, container)
    if "depth" in names and run.train.depth_mode is None:
        raise ConfigError("loss 'depth' needs a rendered depth: set train.depth_mode=depth")
    max_steps = run.trainer.get("max_steps", -1)
    if run.mode == "train" and run.optimizer.cosine_lr and (max_steps is None or max_steps < 1):
        raise ConfigError(
            f"optimizer.cosine_lr (OneCycle over max_steps + 10) needs trainer.max_steps >= 1, got {max_steps}"
        )
    if run.mode == "test" and run.data_loader.test.batch_size != 1:
        raise ConfigError(f"mode=test needs data_loader.test.batch_size=1, got {run.data_loader.test.batch_size}")
    view_sampler = run.dataset.view_sampler
    contexts = getattr(view_sampler, "num_context_views", 2)
    if family == "mvsplat" and contexts < 2:
        raise ConfigError(f"MVSplat needs dataset.view_sampler.num_context_views >= 2, got {contexts}")
    if run.mode == "train" and getattr(view_sampler, "name", None) == "evaluation":
        raise ConfigError(
            "dataset/view_sampler=evaluation is a test-time sampler; train with bounded/boundedv2 or set mode=test"
        )
    if family == "mvsplat" and any(
        getattr(run.checkpointing, k) for k in ("pretrained_monodepth", "pretrained_mvdepth", "pretrained_depth")
    ):
        raise ConfigError("checkpointing.pretrained_{monodepth,mvdepth,depth} are DepthSplat keys; unset them for MVSplat")


def validate_files(run: RunConfig) -> None:
    """The dataset split folder and every configured checkpoint file exist."""
    for root in run.dataset.roots:
        split = "train" if run.mode == "train" else "test"
        if not (Path(root) / split).is_dir():
            hint = (
                f"generate it with `pmsplat data synth --out {root}`"
                if run.dataset.name == "synthetic"
                else "download/convert the dataset there or set dataset.roots=[...]"
            )
            raise ConfigError(f"dataset.roots entry {root} has no '{split}/' folder; {hint}")
    for key in ("load", "pretrained_model", "pretrained_monodepth", "pretrained_mvdepth", "pretrained_depth"):
        path = getattr(run.checkpointing, key)
        if path is not None and not Path(path).is_file():
            raise CheckpointError(f"checkpointing.{key}={path} does not exist; fix the path or set it to null")


# ---------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------


def build_model(cfg: DictConfig, run: RunConfig | None = None, step_tracker: Any = None):
    """The :class:`~splatcore.model.ModelWrapper` of a composed config (weights not loaded)."""
    from .decoder import Decoder
    from .loss import get_losses
    from .model.model_wrapper import ModelWrapper

    run = run or typed_config(cfg, check_files=False)
    encoder = build_encoder(cfg)
    decoder = Decoder(run.decoder, run.dataset)
    max_steps = run.trainer.get("max_steps")
    return ModelWrapper(
        run.optimizer, run.test, run.train, encoder, decoder, get_losses(run.losses),
        step_tracker=step_tracker, run_name=run.run_name, max_steps=max_steps if max_steps and max_steps > 0 else None,
    )


def load_pretrained(model, run: RunConfig) -> None:
    """Weights-only loading of ``checkpointing.pretrained_*`` (upstream order, §5.2)."""
    from .model.checkpoints import load_weights

    ck = run.checkpointing
    strict = not ck.no_strict_load
    predictor = getattr(model.encoder, "depth_predictor", None)
    if run.mode == "train" and ck.pretrained_monodepth:
        load_weights(predictor, ck.pretrained_monodepth, sub_key=None, strict=False, what="pretrained_monodepth")
        strict = False  # upstream: a monodepth init forces non-strict later loads
    if run.mode == "train" and ck.pretrained_mvdepth:
        load_weights(predictor, ck.pretrained_mvdepth, sub_key="model", strict=False, what="pretrained_mvdepth")
    if ck.pretrained_model:
        load_weights(model.encoder, ck.pretrained_model, prefix="encoder.", strict=strict, what="pretrained_model")
    if ck.pretrained_depth:
        load_weights(predictor, ck.pretrained_depth, sub_key="model", strict=True, what="pretrained_depth")


class HistoryWriter(Callback):
    """Appends ``pl_module.last_train_record`` (+ the first group's lr) to a CSV after each
    training step (rank 0), so a loss curve survives an interrupted run; ``rows`` keeps them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, float]] = []
        self.columns: list[str] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_rank != 0 or not pl_module.last_train_record:
            return
        row = dict(pl_module.last_train_record)
        row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.rows.append(row)
        if self.columns is None:
            self.columns = ["step"] + sorted(k for k in row if k != "step")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow([row.get(c, "") for c in self.columns])


@dataclass
class RunResult:
    """What :func:`run` returns. ``scores`` (test mode, ``compute_scores``): mean over scenes of
    each metric (``ScoreBook.averages()``); ``history``: one dict per training step."""

    output_dir: Path
    checkpoint_path: Path | None
    scores: dict[str, float] | None
    history: list[dict[str, float]]


def _trainer_kwargs(run: RunConfig) -> dict[str, Any]:
    t = dict(run.trainer)
    accelerator = t.pop("accelerator", "auto")
    devices = t.pop("devices", "auto")
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError("trainer.accelerator=gpu but no CUDA device is available; use trainer.accelerator=cpu")
    gpu_count = torch.cuda.device_count() if accelerator == "gpu" else 0
    multi = accelerator == "gpu" and (devices == "auto" and gpu_count > 1 or isinstance(devices, int) and devices > 1)
    val_check_interval = t.pop("val_check_interval", 1.0)
    kwargs: dict[str, Any] = dict(
        accelerator=accelerator,
        devices=devices if accelerator == "gpu" else (1 if devices == "auto" else devices),
        strategy="ddp" if multi else "auto",
        max_epochs=-1,
        max_steps=t.pop("max_steps", -1),
        gradient_clip_val=t.pop("gradient_clip_val", 0.5),
        num_sanity_val_steps=t.pop("num_sanity_val_steps", 2),
        num_nodes=t.pop("num_nodes", 1),
        limit_val_batches=t.pop("limit_val_batches", 1.0),
        enable_progress_bar=t.pop("enable_progress_bar", True),
        log_every_n_steps=run.train.print_log_every_n_steps,
        val_check_interval=val_check_interval,
    )
    if isinstance(val_check_interval, int) and not isinstance(val_check_interval, bool):
        kwargs["check_val_every_n_epoch"] = None  # step-based validation across epoch boundaries
    kwargs.update(t)  # any other Lightning Trainer argument given under trainer.*
    return kwargs


def run(cfg: DictConfig) -> RunResult:
    """Train or test in-process as the config says; see the module docstring."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from .dataset import DataModule, SkipReportCallback, StepTracker

    run_cfg = typed_config(cfg)
    torch.set_float32_matmul_precision("high")
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))
    torch.manual_seed(run_cfg.seed + rank)
    output_dir = run_cfg.output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    step_tracker = StepTracker()
    model = build_model(cfg, run_cfg, step_tracker)
    data_module = DataModule(
        run_cfg.dataset, run_cfg.data_loader, step_tracker, global_rank=rank,
    )
    history = HistoryWriter(output_dir / HISTORY_FILE)
    checkpoint_dir = output_dir / "checkpoints"
    callbacks = [
        ModelCheckpoint(
            dirpath=checkpoint_dir,
            every_n_train_steps=run_cfg.checkpointing.every_n_train_steps,
            save_top_k=run_cfg.checkpointing.save_top_k,
            monitor="info/global_step",
            mode="max",
        ),
        SkipReportCallback(data_module),
        history,
    ]
    ModelCheckpoint.CHECKPOINT_EQUALS_CHAR = "_"
    trainer = Trainer(
        logger=CSVLogger(output_dir, name="logs"),
        callbacks=callbacks,
        default_root_dir=output_dir,
        **_trainer_kwargs(run_cfg),
    )
    ck = run_cfg.checkpointing
    load_pretrained(model, run_cfg)
    if run_cfg.mode == "train":
        ckpt_path = None
        if ck.load is not None and ck.resume:
            ckpt_path = ck.load
        elif ck.load is not None:
            from .model.checkpoints import load_weights

            load_weights(model, ck.load, strict=not ck.no_strict_load, what="checkpointing.load")
        trainer.fit(model, datamodule=data_module, ckpt_path=ckpt_path)
        last = checkpoint_dir / "last.ckpt"
        trainer.save_checkpoint(last)
        return RunResult(output_dir, last, None, history.rows)
    if ck.load is not None:
        from .model.checkpoints import load_weights

        load_weights(model, ck.load, strict=True, what="checkpointing.load")
    trainer.test(model, datamodule=data_module)
    scores = model.score_book.averages() if model.score_book is not None else None
    if scores is not None:
        scores = {k: float(v) for k, v in scores.items()}
    return RunResult(output_dir, Path(ck.load) if ck.load else None, scores, [])


__all__ = ["RunResult", "build_encoder", "build_model", "compose_config", "encoder_cfg", "load_pretrained", "run", "typed_config"]
