"""Dataclass configs of the dataset group, with the upstream (pixelSplat / MVSplat / DepthSplat /
PM-Loss) key names so that Hydra overrides such as ``dataset.near=0.5`` or
``dataset.view_sampler.num_target_views=8`` work unchanged.

Keys added by splatcore (absent upstream, defaults reproduce upstream behaviour):

- ``load_pointmap``: also load the world pointmap (synthetic chunks only); ``load_depth`` is the
  upstream DL3DV key and loads the per-frame z-depth.
- ``skip_bad_pose``: ``None`` follows upstream (DL3DV skips frames with a non-rotation pose,
  RE10K/ACID have no check, so pmsplat raises); ``True``/``False`` force skip/raise.
- ``bounded.mvsplat_min_gap_quirk``: MVSplat's bounded-sampler bug (the gap always equals the
  scheduled *minimum* gap). ``False`` is DepthSplat's fixed behaviour; MVSplat presets set ``True``.
- ``evaluation.match_dl3dv_prefix``: scene keys are compared with any leading ``dl3dv_`` removed,
  so DepthSplat- and PM-converted DL3DV test sets both match both kinds of index file (§2.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union

from pmsplat.adapter.fork import check_resize_filter  # PM-Loss fork
from ..errors import ConfigError

Stage = Literal["train", "val", "test"]
STAGES: tuple[str, ...] = ("train", "val", "test")


@dataclass
class ViewSamplerBoundedCfg:
    """Two context views ``gap`` frames apart, targets between them (MVSplat/DepthSplat ``bounded``)."""

    name: Literal["bounded"] = "bounded"
    num_context_views: int = 2
    num_target_views: int = 1
    min_distance_between_context_views: int = 2
    max_distance_between_context_views: int = 6
    min_distance_to_context_views: int = 0
    warm_up_steps: int = 0
    initial_min_distance_between_context_views: int = 2
    initial_max_distance_between_context_views: int = 6
    mvsplat_min_gap_quirk: bool = False


@dataclass
class ViewSamplerBoundedV2Cfg:
    """DepthSplat's ``boundedv2``: bounded plus more context views, targets outside the span."""

    name: Literal["boundedv2"] = "boundedv2"
    num_context_views: int = 2
    num_target_views: int = 1
    min_distance_between_context_views: int = 2
    max_distance_between_context_views: int = 6
    min_distance_to_context_views: int = 0
    max_distance_to_context_views: int = 0
    warm_up_steps: int = 0
    initial_min_distance_between_context_views: int = 2
    initial_max_distance_between_context_views: int = 6
    context_gap_warm_up_steps: int = 0
    target_gap_warm_up_steps: int = 0
    initial_max_distance_to_context_views: int = 0
    extra_views_sampling_strategy: Literal["random", "farthest_point", "equal"] = "random"
    target_views_replace_sample: bool = True


@dataclass
class ViewSamplerEvaluationCfg:
    """Fixed context/target indices per scene from an evaluation index JSON."""

    name: Literal["evaluation"] = "evaluation"
    index_path: Path = Path("assets/evaluation_index_re10k.json")
    num_context_views: int = 2
    match_dl3dv_prefix: bool = True


@dataclass
class ViewSamplerAllCfg:
    """Context = target = every frame of the scene."""

    name: Literal["all"] = "all"


@dataclass
class ViewSamplerArbitraryCfg:
    """Random context/target frames over the whole clip, or fixed lists."""

    name: Literal["arbitrary"] = "arbitrary"
    num_context_views: int = 2
    num_target_views: int = 1
    context_views: list[int] | None = None
    target_views: list[int] | None = None


ViewSamplerCfg = Union[
    ViewSamplerBoundedCfg,
    ViewSamplerBoundedV2Cfg,
    ViewSamplerEvaluationCfg,
    ViewSamplerAllCfg,
    ViewSamplerArbitraryCfg,
]

VIEW_SAMPLER_CFGS: dict[str, type] = {
    "bounded": ViewSamplerBoundedCfg,
    "boundedv2": ViewSamplerBoundedV2Cfg,
    "evaluation": ViewSamplerEvaluationCfg,
    "all": ViewSamplerAllCfg,
    "arbitrary": ViewSamplerArbitraryCfg,
}


@dataclass
class DatasetCfg:
    """The ``dataset`` config group (RE10K, ACID, DL3DV and the synthetic benchmark share it).

    ``image_shape`` is the (H, W) the crop shim produces; ``ori_image_shape`` the native (H, W)
    the chunks must hold (``None``: RE10K/ACID 360x640 or 720x1280 with ``highres``, DL3DV
    270x480, anything for other names). ``near``/``far`` of -1 mean the upstream defaults
    0.1/1000. ``roots`` are dataset directories holding ``train/`` and ``test/``.
    """

    name: str = "re10k"
    roots: list[Path] = field(default_factory=lambda: [Path("datasets/re10k")])
    image_shape: list[int] = field(default_factory=lambda: [256, 256])
    background_color: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    cameras_are_circular: bool = False
    overfit_to_scene: str | None = None
    view_sampler: ViewSamplerCfg = field(default_factory=ViewSamplerBoundedCfg)
    make_baseline_1: bool = False
    augment: bool = True
    baseline_epsilon: float = 1e-3
    max_fov: float = 100.0
    skip_bad_shape: bool = True
    near: float = -1.0
    far: float = -1.0
    baseline_scale_bounds: bool = True
    shuffle_val: bool = True
    test_len: int = -1
    test_chunk_interval: int = 1
    test_times_per_scene: int = 1
    train_times_per_scene: int = 1
    use_index_to_load_chunk: bool = False
    skip_missing_chunks: bool = False  # chunks listed in index.json but missing: an error unless true (a warning)
    highres: bool = False
    sort_target_index: bool = False
    sort_context_index: bool = False
    ori_image_shape: list[int] | None = None
    min_views: int = 0
    max_views: int = 0
    load_depth: bool = False
    load_pointmap: bool = False
    skip_error_data: bool = False
    error_data_path: Path | None = None
    resize_filter: str = "lanczos"  # PM-Loss fork (pmsplat.adapter.fork): "bilinear"
    skip_bad_pose: bool | None = None

    def __post_init__(self) -> None:
        self.roots = [Path(root) for root in self.roots]
        if not self.roots:
            raise ConfigError("dataset.roots is empty: give at least one dataset directory.")
        if len(self.image_shape) != 2 or min(self.image_shape) <= 0:
            raise ConfigError(
                f"dataset.image_shape must be [height, width] with positive entries, got {self.image_shape}."
            )
        if self.ori_image_shape is not None and (
            len(self.ori_image_shape) != 2 or min(self.ori_image_shape) <= 0
        ):
            raise ConfigError(
                f"dataset.ori_image_shape must be null or [height, width], got {self.ori_image_shape}."
            )
        check_resize_filter(self)
        if self.test_chunk_interval < 1:
            raise ConfigError("dataset.test_chunk_interval must be >= 1.")
        if self.train_times_per_scene < 1 or self.test_times_per_scene < 1:
            raise ConfigError("dataset.{train,test}_times_per_scene must be >= 1.")
        if self.min_views < 0 or self.max_views < 0 or (self.max_views and self.min_views > self.max_views):
            raise ConfigError(
                f"dataset.min_views/max_views must satisfy 0 <= min <= max, got {self.min_views}/{self.max_views}."
            )
        if self.skip_error_data and self.error_data_path is None:
            raise ConfigError("dataset.skip_error_data is true but dataset.error_data_path is null.")
        if isinstance(self.view_sampler, dict):
            self.view_sampler = view_sampler_cfg_from_dict(self.view_sampler)

    @property
    def near_far(self) -> tuple[float, float]:
        """(near, far) with the upstream defaults 0.1 / 1000 substituted for -1."""
        return (0.1 if self.near == -1 else self.near, 1000.0 if self.far == -1 else self.far)

    @property
    def expected_native_shape(self) -> tuple[int, int] | None:
        """The (H, W) chunk images must have, or None when any consistent size is accepted."""
        if self.ori_image_shape is not None:
            return (int(self.ori_image_shape[0]), int(self.ori_image_shape[1]))
        if self.name in ("re10k", "acid"):
            return (720, 1280) if self.highres else (360, 640)
        if self.name == "dl3dv":
            return (270, 480)
        return None

    @property
    def skips_bad_pose(self) -> bool:
        return self.name == "dl3dv" if self.skip_bad_pose is None else self.skip_bad_pose

    @property
    def skips_undecodable_image(self) -> bool:
        """DL3DV's loader skips on OSError while decoding; the RE10K loader has no such guard."""
        return self.name == "dl3dv"


def view_sampler_cfg_from_dict(values: dict) -> ViewSamplerCfg:
    """Build a view-sampler config from a plain mapping (what Hydra/OmegaConf gives)."""
    import dacite

    from ..config_types import check_field_types

    name = values.get("name")
    if name not in VIEW_SAMPLER_CFGS:
        raise ConfigError(
            f"Unknown view sampler {name!r}; choose one of {sorted(VIEW_SAMPLER_CFGS)}."
        )
    check_field_types(VIEW_SAMPLER_CFGS[name], values, "dataset.view_sampler")
    return dacite.from_dict(
        VIEW_SAMPLER_CFGS[name], dict(values), config=dacite.Config(cast=[Path], strict=False)
    )


def dataset_cfg_from_dict(values: dict) -> DatasetCfg:
    """Build a :class:`DatasetCfg` from a plain mapping; unknown upstream keys are ignored as
    upstream's dacite does (for example ``overfit_max_views``, ``mix_tartanair``)."""
    import dacite

    from ..config_types import check_field_types

    values = dict(values)
    sampler = values.pop("view_sampler", None)
    if isinstance(sampler, dict):
        view_sampler_cfg_from_dict(sampler)  # its values are checked before the dataset's
    check_field_types(DatasetCfg, values, "dataset")
    cfg = dacite.from_dict(
        DatasetCfg,
        values,
        config=dacite.Config(cast=[Path], strict=False, type_hooks={Path: Path}),
    )
    if sampler is not None:
        cfg.view_sampler = view_sampler_cfg_from_dict(sampler)
    return cfg


@dataclass
class DataLoaderStageCfg:
    """``data_loader.{train,val,test}``: worker count, persistence, batch size, generator seed."""

    num_workers: int = 0
    persistent_workers: bool = False
    batch_size: int = 1
    seed: int | None = None


@dataclass
class DataLoaderCfg:
    """``data_loader``: upstream defaults (train 10 workers/bs 4/seed 1234, test 4/1/2345,
    val 1/1/3456). CPU presets lower the worker counts."""

    train: DataLoaderStageCfg = field(default_factory=lambda: DataLoaderStageCfg(10, True, 4, 1234))
    test: DataLoaderStageCfg = field(default_factory=lambda: DataLoaderStageCfg(4, False, 1, 2345))
    val: DataLoaderStageCfg = field(default_factory=lambda: DataLoaderStageCfg(1, True, 1, 3456))
