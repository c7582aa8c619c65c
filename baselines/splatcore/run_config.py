"""The typed run configuration: the composed Hydra tree turned into dataclasses once, at start-up.

``compose_config(overrides)`` composes ``config/`` (importing the baselines named by the
``baseline/`` group so that their encoders and presets are registered, see
:mod:`splatcore.registry`); ``typed_config(cfg)`` converts the whole tree to one
:class:`RunConfig` (encoder, decoder, dataset, losses with their own typed pieces such as the
PM-Loss teacher, optimizer, train/test/checkpointing, trainer) and checks every cross-group
combination before anything is built. Components then receive their typed piece only.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from . import registry
from .config_dir import DEFAULT_CONFIG_DIR, available_baselines, config_directory
from .model.config import CheckpointingCfg, OptimizerCfg, TestCfg, TrainCfg, TrainerCfg, cfg_from_dict
from .errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

MODES = ("train", "test")

# Upstream keys nothing here reads. They are not in config/ (nor in the dataclasses); an upstream
# config or override that still sets one (``+train.viz_depth=true``) loads, with a warning that the
# key is ignored by pmsplat.
IGNORED_UPSTREAM_KEYS = (
    "wandb.project", "wandb.entity", "wandb.mode", "wandb.id",
    "train.extended_visualization", "train.eval_model_every_n_val", "train.eval_data_length",
    "train.eval_deterministic", "train.eval_time_skip_steps", "train.eval_save_model", "train.no_viz_video",
    "train.viz_depth", "train.forward_depth_only", "train.no_log_projections",
    "test.save_video", "test.save_gt_image", "test.save_input_images", "test.save_depth", "test.save_depth_npy",
)


def compose_config(overrides: Sequence[str] = (), config_dir: str | Path | None = None, config_name: str = "main") -> DictConfig:
    """Compose the Hydra tree (``config/main.yaml`` + overrides) without changing directory or
    starting a Hydra run. Unknown groups/keys give Hydra's error, re-raised as ConfigError."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    directory = config_directory(config_dir)
    if not (directory / f"{config_name}.yaml").is_file():
        raise ConfigError(f"config {directory / (config_name + '.yaml')} not found; pass config_dir=")
    try:
        with initialize_config_dir(config_dir=str(directory), version_base=None):
            loader = GlobalHydra.instance().config_loader()
            registry.discover_baselines(loader.get_group_options("baseline"))
            registry.import_baselines()
            registry.store_presets()
            return compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        unknown = _unknown_key_message(overrides, error, config_dir, config_name)
        raise ConfigError(unknown or f"invalid overrides {list(overrides)}: {error}") from error


def _unknown_key_message(overrides: Sequence[str], error: Exception, config_dir, config_name: str) -> str | None:
    """For Hydra's "Could not override 'k'" (a key the tree does not have): one sentence naming the
    override and the closest keys of the tree composed without it (Hydra's own hint, ``+k=v``,
    would add a key that nothing reads). None for any other error."""
    import difflib
    import re

    match = re.search(r"Could not override '([^']+)'", str(error))
    if match is None:
        return None
    key = match.group(1)
    culprits = [o for o in overrides if o.split("=", 1)[0] == key]
    if not culprits:
        return None
    try:
        tree = compose_config([o for o in overrides if o not in culprits], config_dir, config_name)
    except ConfigError:
        return None
    close = difflib.get_close_matches(key, _leaf_keys(OmegaConf.to_container(tree, resolve=False)), n=2, cutoff=0.8)
    value = culprits[0].split("=", 1)[1] if "=" in culprits[0] else ""
    parent = key.rsplit(".", 1)[0] if "." in key else "the top level"
    hint = ("did you mean " + " or ".join(f"{k}={value}" for k in close) + "?") if close else (
        f"`pmsplat train --cfg <the other overrides>` prints the keys under {parent}.")
    return f"invalid override {culprits[0]!r}: the config has no key {key!r}; {hint}"


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """Every leaf key of a nested dict as ``a.b.c``."""
    keys = []
    for name, value in node.items():
        dotted = f"{prefix}{name}"
        keys += _leaf_keys(value, dotted + ".") if isinstance(value, dict) and value else [dotted]
    return keys


@dataclass
class RunConfig:
    """The whole run, typed (see :func:`typed_config`)."""

    mode: str
    baseline: str
    encoder: Any
    decoder: Any
    dataset: Any
    data_loader: Any
    optimizer: OptimizerCfg
    train: TrainCfg
    test: TestCfg
    checkpointing: CheckpointingCfg
    losses: list[Any]
    output_dir: Path
    run_name: str
    seed: int
    trainer: TrainerCfg = field(default_factory=TrainerCfg)
    requires_baseline: str | None = None

    @property
    def encoder_spec(self) -> registry.EncoderSpec:
        return registry.ENCODERS[self.encoder.name]

    @property
    def loss_names(self) -> list[str]:
        return [next(iter(vars(loss))) for loss in self.losses]

    @property
    def teacher(self) -> Any:
        """The typed teacher config of the loss that asks one (PM-Loss), else None."""
        for loss in self.losses:
            teacher = getattr(next(iter(vars(loss).values())), "teacher", None)
            if teacher is not None:
                return teacher
        return None

    @property
    def max_steps(self) -> int | None:
        """``trainer.max_steps`` when set (> 0), else None."""
        return self.trainer.steps


def encoder_cfg(cfg: DictConfig) -> Any:
    """The encoder's dataclass config from ``model.encoder`` (extra keys ignored, as upstream)."""
    values = OmegaConf.to_container(cfg.model.encoder, resolve=True)
    return registry.encoder_config(values, cfg.get("baseline"))


def _warn_ignored(container: dict[str, Any]) -> None:
    for dotted in IGNORED_UPSTREAM_KEYS:
        group, key = dotted.split(".")
        node = container.get(group)
        if isinstance(node, dict) and key in node:
            warnings.warn(f"{dotted}={node[key]!r} is ignored by pmsplat (an upstream key nothing here reads)", UserWarning)


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
    _warn_ignored(container)
    loaders = container.get("data_loader", {})
    data_loader = DataLoaderCfg(
        **{stage: cfg_from_dict(DataLoaderStageCfg, loaders.get(stage), f"data_loader.{stage}") for stage in ("train", "test", "val") if stage in loaders}
    )
    baseline = container.get("baseline")
    if not baseline:
        raise ConfigError("the config selects no baseline; set baseline=<name> (a config/baseline/ option)")
    output_dir = container.get("output_dir") or "outputs/local"
    run = RunConfig(
        mode=mode,
        baseline=baseline,
        encoder=registry.encoder_config(container["model"]["encoder"], baseline),
        decoder=decoder_cfg_from_dict(container["model"]["decoder"]),
        dataset=dataset_cfg_from_dict(container["dataset"]),
        data_loader=data_loader,
        optimizer=cfg_from_dict(OptimizerCfg, container.get("optimizer"), "optimizer"),
        train=cfg_from_dict(TrainCfg, container.get("train"), "train"),
        test=cfg_from_dict(TestCfg, container.get("test"), "test"),
        checkpointing=cfg_from_dict(CheckpointingCfg, container.get("checkpointing"), "checkpointing"),
        losses=loss_cfgs_from_dict(container.get("loss") or {}),
        output_dir=Path(output_dir),
        run_name=str(container.get("wandb", {}).get("name") or "local"),
        seed=int(container.get("seed", 111123)),
        trainer=TrainerCfg.from_dict(container.get("trainer")),
        requires_baseline=container.get("requires_baseline"),
    )
    validate(run)
    if check_files:
        validate_files(run)
    return run


def check_loss_configs(run: RunConfig) -> None:
    """Let each loss check the whole typed run config at start-up: a loss class may define
    ``check_run_config(cfg_wrapper, run)`` raising a ConfigError (e.g. a loss that needs a
    dataset key the config does not set), so that the run fails before any data is read."""
    from .loss import LOSSES, unwrap_cfg

    for cfg in run.losses:
        check = getattr(LOSSES[unwrap_cfg(cfg)[0]][1], "check_run_config", None)
        if check is not None:
            check(cfg, run)


def validate(run: RunConfig) -> None:
    """Invalid combinations, reported before anything is built; then the baseline's own checks
    (its ``EncoderSpec.validate``)."""
    spec = run.encoder_spec
    if spec.baseline != run.baseline:
        raise ConfigError(
            f"baseline={run.baseline} does not match model/encoder ({spec.name}, a {spec.baseline} encoder); "
            f"use baseline={spec.baseline} or a {run.baseline} encoder preset"
        )
    required = run.requires_baseline
    if required is not None and required != run.baseline:
        raise ConfigError(
            f"this experiment preset is for baseline={required} but baseline={run.baseline} was given; "
            f"drop the baseline override or pick the {run.baseline} preset"
        )
    if spec.validate is not None:
        spec.validate(run)
    names = run.loss_names
    if run.mode == "train" and not names:
        raise ConfigError("loss=[] is empty; training needs at least one loss (e.g. loss=[mse])")
    if run.mode == "train":
        check_loss_configs(run)
    if "depth" in names and run.train.depth_mode is None:
        raise ConfigError("loss 'depth' needs a rendered depth: set train.depth_mode=depth")
    max_steps = run.trainer.max_steps
    if run.mode == "train" and run.optimizer.cosine_lr and (max_steps is None or max_steps < 1):
        raise ConfigError(
            f"optimizer.cosine_lr (OneCycle over max_steps + 10) needs trainer.max_steps >= 1, got {max_steps}"
        )
    if run.mode == "test" and run.data_loader.test.batch_size != 1:
        raise ConfigError(f"mode=test needs data_loader.test.batch_size=1, got {run.data_loader.test.batch_size}")
    if run.mode == "train" and getattr(run.dataset.view_sampler, "name", None) == "evaluation":
        raise ConfigError(
            "dataset/view_sampler=evaluation is a test-time sampler; train with bounded/boundedv2 or set mode=test"
        )


def validate_files(run: RunConfig) -> None:
    """The dataset split folder, its index.json and every chunk file it lists (unless
    ``dataset.skip_missing_chunks``) and every configured checkpoint file exist: a partly copied
    dataset fails here, before a model is built, not at the first batch."""
    from .dataset.chunks import read_index, without_missing_chunks

    for root in run.dataset.roots:
        split = "train" if run.mode == "train" else "test"
        if not (Path(root) / split).is_dir():
            hint = (
                f"generate it with `pmsplat data synth --out {root}`"
                if run.dataset.name == "synthetic"
                else "download/convert the dataset there or set dataset.roots=[...]"
            )
            raise ConfigError(f"dataset.roots entry {root} has no '{split}/' folder; {hint}")
        if not run.dataset.skip_missing_chunks:
            without_missing_chunks(Path(root) / split, read_index(Path(root) / split), skip=False)
    check_output_dir(Path(run.output_dir))
    for key in ("load", "pretrained_model", "pretrained_monodepth", "pretrained_mvdepth", "pretrained_depth"):
        path = getattr(run.checkpointing, key)
        if path is not None and not Path(path).is_file():
            raise CheckpointError(f"checkpointing.{key}={path} does not exist; fix the path or set it to null")


def check_output_dir(out: Path) -> None:
    """``output_dir`` can be created: its nearest existing ancestor is a writable folder (not a
    file), so a bad path is one error at start-up rather than a NotADirectoryError mid-run."""
    import os

    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"output_dir={out} cannot be created: {parent} is a file, not a folder; choose another output_dir.")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"output_dir={out} cannot be created: {parent} is not writable; choose another output_dir.")
            return


__all__ = ["DEFAULT_CONFIG_DIR", "check_output_dir", "MODES", "available_baselines", "config_directory", "RunConfig", "compose_config", "encoder_cfg", "typed_config", "validate", "validate_files"]
