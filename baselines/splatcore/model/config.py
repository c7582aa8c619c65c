"""Dataclass configs of the model wrapper, with the upstream Hydra keys (``optimizer.*``,
``train.*``, ``test.*``, ``checkpointing.*``; upstream-facts §4.1). Defaults are MVSplat's; the
DepthSplat values come from ``config/baseline/depthsplat.yaml``. Unknown keys are ignored when
building from a mapping (dacite, as upstream); upstream keys that nothing reads are not fields
(``splatcore.run_config.IGNORED_UPSTREAM_KEYS`` warns when a config sets one).

Keys added by splatcore (absent upstream; defaults reproduce upstream behaviour):

- ``optimizer.name``: ``adam`` (MVSplat) or ``adamw`` (DepthSplat, with ``weight_decay``).
- ``test.save_image_layout``: where ``save_image`` writes (``mvsplat``:
  ``<output_path>/<name>/<scene>/color/<idx:06>.png``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pmsplat.adapter.fork import check_skip_large_sample  # PM-Loss fork
from ..errors import ConfigError

DEPTH_MODES = (None, "depth", "log", "disparity", "relative_disparity")
OPTIMIZERS = ("adam", "adamw")


@dataclass
class OptimizerCfg:
    name: str = "adam"
    lr: float = 2e-4
    warm_up_steps: int = 2000
    cosine_lr: bool = True
    lr_monodepth: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"optimizer.name must be one of {OPTIMIZERS}, got {self.name!r}")
        if not self.lr > 0:
            raise ConfigError(f"optimizer.lr must be > 0, got {self.lr}")
        if self.lr_monodepth < 0 or self.weight_decay < 0:
            raise ConfigError("optimizer.lr_monodepth and optimizer.weight_decay must be >= 0")
        if self.warm_up_steps < 1 and not self.cosine_lr:
            raise ConfigError("optimizer.warm_up_steps must be >= 1 when optimizer.cosine_lr is false")


@dataclass
class TrainCfg:
    depth_mode: str | None = None
    print_log_every_n_steps: int = 1
    # DepthSplat keys
    l1_loss: bool = False
    intermediate_loss_weight: float = 0.9
    train_ignore_large_loss: float = 0.0
    skip_large_sample_loss: float = 0.0  # PM-Loss fork (pmsplat.adapter.fork): 0 = off
    skip_large_sample_after_step: int = 300

    def __post_init__(self) -> None:
        if self.depth_mode not in DEPTH_MODES:
            raise ConfigError(f"train.depth_mode must be one of {DEPTH_MODES}, got {self.depth_mode!r}")
        if not 0 < self.intermediate_loss_weight <= 1:
            raise ConfigError(
                f"train.intermediate_loss_weight must be in (0, 1], got {self.intermediate_loss_weight}"
            )
        if self.train_ignore_large_loss < 0:
            raise ConfigError("train.train_ignore_large_loss must be >= 0")
        check_skip_large_sample(self)


@dataclass
class TestCfg:
    output_path: Path = Path("outputs/test")
    compute_scores: bool = False
    eval_time_skip_steps: int = 0
    save_image: bool = True
    render_chunk_size: int | None = None
    dec_chunk_size: int | None = None
    depth_mode: str | None = None

    def __post_init__(self) -> None:
        self.output_path = Path(self.output_path)
        if self.depth_mode not in DEPTH_MODES:
            raise ConfigError(f"test.depth_mode must be one of {DEPTH_MODES}, got {self.depth_mode!r}")
        for key in ("render_chunk_size", "dec_chunk_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"test.{key} must be null or >= 1, got {value}")

    @property
    def chunk_size(self) -> int | None:
        """Target views rendered per decoder call (``render_chunk_size`` or ``dec_chunk_size``)."""
        return self.render_chunk_size or self.dec_chunk_size


@dataclass
class CheckpointingCfg:
    load: str | None = None
    every_n_train_steps: int = 20000
    save_top_k: int = -1
    pretrained_model: str | None = None
    pretrained_monodepth: str | None = None
    pretrained_mvdepth: str | None = None
    pretrained_depth: str | None = None
    no_strict_load: bool = False
    resume: bool = True

    def __post_init__(self) -> None:
        if self.every_n_train_steps < 1:
            raise ConfigError(
                f"checkpointing.every_n_train_steps must be >= 1, got {self.every_n_train_steps}"
            )


@dataclass
class TrainerCfg(Mapping):
    """``trainer.*``: the Lightning Trainer settings pmsplat reads (defaults = what an absent key
    means), plus ``extra``: any other Lightning ``Trainer`` argument given under ``trainer.*``,
    passed through. Readable as a mapping (``cfg["max_steps"]``) over all of them."""

    max_steps: int | None = -1
    val_check_interval: float | int = 1.0
    gradient_clip_val: float | int | None = 0.5
    num_sanity_val_steps: int = 2
    num_nodes: int = 1
    accelerator: str = "auto"
    devices: Any = "auto"
    limit_val_batches: float | int = 1.0
    enable_progress_bar: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "TrainerCfg":
        """Known keys become fields (values as given: an int ``val_check_interval`` stays an int,
        i.e. step-based), the others go to ``extra``."""
        known = {f.name for f in fields(cls)} - {"extra"}
        from ..config_types import check_field_types

        values = dict(values or {})
        check_field_types(cls, values, "trainer")
        return cls(**{k: values.pop(k) for k in list(values) if k in known}, extra=values)

    @property
    def steps(self) -> int | None:
        """``max_steps`` when > 0, else None (no bound)."""
        return self.max_steps if self.max_steps and self.max_steps > 0 else None

    def _items(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        values.update(self.extra)
        return values

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


def cfg_from_dict(cls: type, values: dict[str, Any] | None, prefix: str = "") -> Any:
    """Build a config dataclass from a mapping, ignoring unknown keys (as upstream's dacite).
    Values of a wrong type are one ConfigError naming ``<prefix>.<key>`` (see config_types)."""
    import dacite

    from ..config_types import check_field_types

    check_field_types(cls, values, prefix)
    return dacite.from_dict(
        cls, dict(values or {}), config=dacite.Config(cast=[Path, float], strict=False)
    )


__all__ = [
    "CheckpointingCfg",
    "OptimizerCfg",
    "TestCfg",
    "TrainCfg",
    "TrainerCfg",
    "cfg_from_dict",
]
