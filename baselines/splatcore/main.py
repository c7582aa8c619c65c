"""Train / test entry point (upstream ``src/main.py``), shared by MVSplat and DepthSplat.

Python API (what ``pmsplat train`` and the reproduction pipeline call)::

    cfg = compose_config(["+experiment=mvsplat_synthetic_cpu", "trainer.max_steps=300"])
    result = run(cfg)        # RunResult(output_dir, checkpoint_path, scores, history)

``compose_config`` composes the Hydra tree in ``config/`` (or ``config_dir``) and ``typed_config``
turns it into one typed :class:`~splatcore.run_config.RunConfig` (both in :mod:`splatcore.run_config`;
encoders come from :mod:`splatcore.registry`, where the baselines register them); ``run`` types and
validates the whole configuration first (every invalid combination fails here, before any data is read),
builds encoder + decoder + losses + :class:`~splatcore.model.ModelWrapper` + DataModule and runs
Lightning in-process: ``mode=train`` fits (then returns the last checkpoint), ``mode=test`` tests
and returns the averaged scores. Seeds: ``seed + rank`` for torch (upstream),
``data_loader.<stage>.seed + rank`` for the loaders.

Several processes: ``trainer.devices=N`` (GPUs, or CPU processes with ``trainer.accelerator=cpu``:
gloo) or ``trainer.num_nodes=M`` run Lightning's DDP. Lightning starts ranks 1..N-1 itself
(``pmsplat train ... trainer.devices=8``), or takes the ranks from torchrun / SLURM::

    torchrun --nnodes 2 --nproc-per-node 8 --node-rank $NODE --master-addr $HOST -m pmsplat.cli train \
        +experiment=... trainer.devices=8 trainer.num_nodes=2
    srun --ntasks-per-node 8 pmsplat train +experiment=... trainer.devices=8 trainer.num_nodes=2

Training: every rank draws its own order of the whole training split (seed + rank, as upstream's
IterableDataset) and the gradients are averaged. Testing: each rank evaluates one contiguous block
of the test stream (no scene twice, no padding), rank 0 gathers the scores and writes every file;
checkpoints, ``config.yaml`` and ``train_history.csv`` are written by rank 0 only.

Outputs under ``output_dir``: ``checkpoints/*.ckpt`` (``encoder.*`` only; ``last.ckpt`` at the end),
``train_history.csv`` (one row per training step: step, loss/total, loss/<name>, train/psnr, lr),
``logs/`` (Lightning CSV logger), ``test/<wandb.name>/`` (score files, images), ``config.yaml``.

Modules: :mod:`splatcore.run_config` (compose + type + validate), :mod:`splatcore.registry`
(encoders registered by the baselines), :mod:`splatcore.build` (model and weights),
:mod:`splatcore.history` (the per-step CSV); this module runs Lightning.

Resume inside a run: ``checkpointing.load=<a step .ckpt of this run>`` with ``resume: true``
restores weights, optimizer, scheduler and loop counters (Lightning), the training stream's
position (:mod:`splatcore.dataset.positions`: the order derives from the seed and the position)
and the history (rows after the checkpoint's step are dropped); the model's randomness is seeded
per step. A run killed after a step checkpoint and resumed from it ends with the same weights as
one that was not interrupted (CPU; on GPU up to the kernels' own nondeterminism).

Weight loading (upstream-facts §5.1, §5.2): ``checkpointing.load`` with ``resume: true`` resumes
the full training state; with ``resume: false`` (or in test mode) it loads the weights strictly.
``checkpointing.pretrained_model`` loads weights (strict unless ``no_strict_load``); the DepthSplat
chain ``pretrained_monodepth`` -> ``pretrained_mvdepth`` -> ``pretrained_model`` -> ``pretrained_depth``
follows upstream's order and strictness.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from .build import build_encoder, build_model, load_pretrained
from .history import HISTORY_FILE, HistoryWriter
from .errors import ConfigError
from .run_config import DEFAULT_CONFIG_DIR, MODES, RunConfig, compose_config, encoder_cfg, typed_config

log = logging.getLogger(__name__)


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
    # DDP for several GPUs, several CPU processes (gloo: how the tests run it) or several nodes
    multi = (accelerator == "gpu" and devices == "auto" and gpu_count > 1) or (isinstance(devices, int) and devices > 1) \
        or int(t.get("num_nodes", 1)) > 1
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


def process_rank(run: RunConfig) -> int:
    """This process's global rank before Lightning sets up the process group: ``RANK`` (torchrun,
    SLURM through Lightning's cluster environments) or ``NODE_RANK * devices + LOCAL_RANK``
    (Lightning's own launcher, which starts ranks 1.. with these variables); 0 otherwise."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        return int(os.environ["SLURM_PROCID"])
    devices = dict(run.trainer).get("devices", 1)
    per_node = devices if isinstance(devices, int) and devices > 0 else 1
    return int(os.environ.get("NODE_RANK", 0)) * per_node + int(os.environ.get("LOCAL_RANK", 0))


def run(cfg: DictConfig) -> RunResult:
    """Train or test in-process as the config says; see the module docstring."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from .dataset import DataModule, SkipReportCallback, StepTracker
    from .dataset.positions import StepSeed

    run_cfg = typed_config(cfg)
    torch.set_float32_matmul_precision("high")
    rank = process_rank(run_cfg)
    torch.manual_seed(run_cfg.seed + rank)
    output_dir = run_cfg.output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    step_tracker = StepTracker()
    model = build_model(run_cfg, step_tracker=step_tracker)
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
            # never defer a step checkpoint that falls on the last batch of a pass to a validation
            # that may not come (Lightning drops it then): every checkpoint a resume can need exists
            save_on_train_epoch_end=True,
        ),
        SkipReportCallback(data_module),
        history,
        StepSeed(run_cfg.seed + rank),
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

        load_weights(model, ck.load, strict=not ck.no_strict_load, what="checkpointing.load")
    trainer.test(model, datamodule=data_module)
    scores = model.score_book.averages() if model.score_book is not None else None
    if scores is not None:
        scores = {k: float(v) for k, v in scores.items()}
    return RunResult(output_dir, Path(ck.load) if ck.load else None, scores, [])


__all__ = [
    "DEFAULT_CONFIG_DIR",
    "HISTORY_FILE",
    "HistoryWriter",
    "MODES",
    "RunConfig",
    "RunResult",
    "build_encoder",
    "build_model",
    "compose_config",
    "encoder_cfg",
    "load_pretrained",
    "run",
    "typed_config",
]
