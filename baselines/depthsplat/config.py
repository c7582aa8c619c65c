"""Configuration of the DepthSplat encoder with the upstream Hydra keys (``model.encoder.*`` of
config/model/encoder/depthsplat.yaml, Oct-2024 release), and the released model-size presets.

Keys read by the model: num_scales, upsample_factor, lowest_feature_resolution,
monodepth_vit_type, depth_unet_channels, grid_sample_disable_cudnn, feature_upsampler_channels,
gaussian_regressor_channels, color_large_unet, init_sh_input_img, num_surfaces,
gaussian_adapter.*, shim_patch_size, downscale_factor, supervise_intermediate_depth,
return_depth, train_depth_only, costvolume_nearest_n_views, multiview_trans_nearest_n_views.
The others are accepted (so upstream configs
load unchanged) but, as upstream, unused: num_depth_candidates (128 is hard-wired), d_feature,
unimatch_weights_path, costvolume_unet_*, depth_unet_feat_dim/attn_res/channel_mult,
opacity_mapping, large_gaussian_head, multiview_trans_attn_split (2 is hard-wired),
gaussians_per_pixel, visualizer.

Nearest views: ``costvolume_nearest_n_views`` picks, per view, the partners of both the multi-view
transformer's cross-attention and the cost volume (upstream-facts §8: "the same index restricts
cross-attention and cost-volume partners"; see ``depthsplat.views``); every released config sets
``multiview_trans_nearest_n_views`` to the same value. The restriction follows the batch: with
V context views, min(n, V) - 1 partners per view.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from pmsplat.adapter.fork import check_encoder_options  # PM-Loss fork
from splatcore.model.gaussian_adapter import GaussianAdapterCfg

from .errors import DepthSplatError


@dataclass
class OpacityMappingCfg:
    initial: float = 0.0
    final: float = 0.0
    warm_up: int = 1
    no_mapping: bool = False


@dataclass
class EncoderVisualizerDepthSplatCfg:
    num_samples: int = 8
    min_resolution: int = 256
    export_ply: bool = False


def _default_adapter() -> GaussianAdapterCfg:
    return GaussianAdapterCfg(gaussian_scale_min=0.1, gaussian_scale_max=0.3, sh_degree=4)


@dataclass
class EncoderDepthSplatCfg:
    """All keys of the upstream ``EncoderDepthSplatCfg``; defaults = upstream depthsplat.yaml."""

    name: Literal["depthsplat"] = "depthsplat"
    d_feature: int = 128
    num_depth_candidates: int = 128
    num_surfaces: int = 1
    visualizer: EncoderVisualizerDepthSplatCfg = field(default_factory=EncoderVisualizerDepthSplatCfg)
    gaussian_adapter: GaussianAdapterCfg = field(default_factory=_default_adapter)
    opacity_mapping: OpacityMappingCfg = field(default_factory=OpacityMappingCfg)
    gaussians_per_pixel: int = 1
    unimatch_weights_path: str | None = "depthsplat_pretrained/gmdepth-scale1-resumeflowthings-scannet-5d9d7964.pth"
    downscale_factor: int = 4
    shim_patch_size: int = 4
    multiview_trans_attn_split: int = 2
    costvolume_unet_feat_dim: int = 128
    costvolume_unet_channel_mult: list[int] = field(default_factory=lambda: [1, 1, 1])
    costvolume_unet_attn_res: list[int] = field(default_factory=lambda: [4])
    depth_unet_feat_dim: int = 32
    depth_unet_attn_res: list[int] = field(default_factory=lambda: [16])
    depth_unet_channel_mult: list[int] = field(default_factory=lambda: [1, 1, 1, 1, 1])
    # multi-view depth branch
    num_scales: int = 1
    upsample_factor: int = 4
    lowest_feature_resolution: int = 4
    depth_unet_channels: int = 128
    grid_sample_disable_cudnn: bool = False
    costvolume_nearest_n_views: int | None = None
    multiview_trans_nearest_n_views: int | None = None
    # monocular branch
    monodepth_vit_type: str = "vits"  # vits, vitb or vitl
    # Gaussian branch
    large_gaussian_head: bool = False
    color_large_unet: bool = False
    init_sh_input_img: bool = True
    feature_upsampler_channels: int = 64
    gaussian_regressor_channels: int = 64
    # training / outputs
    supervise_intermediate_depth: bool = True
    return_depth: bool = False
    train_depth_only: bool = False
    offset_mode: str = "ori"  # PM-Loss fork (pmsplat.adapter.fork): ori, origin, pixel, unconstrained
    offset_factor: float = 0.5
    confidence_activation: str | None = None  # PM-Loss fork: null, softplus or sigmoid

    def __post_init__(self) -> None:
        checks = [
            (self.num_scales in (1, 2), f"num_scales must be 1 or 2, got {self.num_scales}"),
            (
                self.lowest_feature_resolution in (4, 8),
                f"lowest_feature_resolution must be 4 or 8, got {self.lowest_feature_resolution}",
            ),
            (self.upsample_factor in (2, 4, 8), f"upsample_factor must be 2, 4 or 8, got {self.upsample_factor}"),
            (
                self.upsample_factor * 2 ** (self.num_scales - 1) == self.lowest_feature_resolution,
                "upsample_factor * 2**(num_scales - 1) must equal lowest_feature_resolution "
                f"(got {self.upsample_factor} * 2**{self.num_scales - 1} vs {self.lowest_feature_resolution})",
            ),
            (self.monodepth_vit_type in ("vits", "vitb", "vitl"), f"unknown monodepth_vit_type {self.monodepth_vit_type!r}"),
            (self.num_surfaces == 1, f"num_surfaces must be 1 (as in every released model), got {self.num_surfaces}"),
            (
                self.feature_upsampler_channels % self.num_scales == 0,
                "feature_upsampler_channels must be divisible by num_scales",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise DepthSplatError(message)
        check_encoder_options(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EncoderDepthSplatCfg":
        """Build from a plain mapping (e.g. an upstream YAML / parity config.json section)."""
        import dacite

        return dacite.from_dict(cls, dict(values), config=dacite.Config(strict=True))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Presets (upstream scripts / MODEL_ZOO of the Oct-2024 release). Only ``dl3dv_base`` (the PM-Loss
# base) and ``re10k_small`` are checked against golden tensors; all four released presets build
# exactly the layouts of ../shared/parity/depthsplat/preset_state_dict_keys.json
# (tests/depthsplat/test_presets.py). ``cpu_tiny`` is not an upstream model.
# ---------------------------------------------------------------------------------------------


def preset_re10k_small(**overrides: Any) -> EncoderDepthSplatCfg:
    cfg = EncoderDepthSplatCfg(
        monodepth_vit_type="vits", num_scales=1, upsample_factor=4, lowest_feature_resolution=4,
        gaussian_regressor_channels=16, feature_upsampler_channels=64, color_large_unet=False,
        return_depth=True,
    )
    return replace(cfg, **overrides)


def preset_re10k_base(**overrides: Any) -> EncoderDepthSplatCfg:
    cfg = EncoderDepthSplatCfg(
        monodepth_vit_type="vitb", num_scales=2, upsample_factor=2, lowest_feature_resolution=4,
        gaussian_regressor_channels=32, feature_upsampler_channels=128, color_large_unet=True,
        return_depth=True,
    )
    return replace(cfg, **overrides)


def preset_re10k_large(**overrides: Any) -> EncoderDepthSplatCfg:
    return preset_re10k_base(monodepth_vit_type="vitl", gaussian_regressor_channels=64, **overrides)


def preset_dl3dv_base(**overrides: Any) -> EncoderDepthSplatCfg:
    """The DL3DV 256x448 base model PM-Loss fine-tunes (and the parity fixtures' layout, with
    the README evaluation override nearest-3 views)."""
    cfg = EncoderDepthSplatCfg(
        monodepth_vit_type="vitb", num_scales=2, upsample_factor=4, lowest_feature_resolution=8,
        gaussian_regressor_channels=32, feature_upsampler_channels=128, color_large_unet=True,
        return_depth=True, costvolume_nearest_n_views=3, multiview_trans_nearest_n_views=3,
        offset_mode="unconstrained", offset_factor=0.5,  # PM-Loss fork
    )
    return replace(cfg, **overrides)


def preset_cpu_tiny(**overrides: Any) -> EncoderDepthSplatCfg:
    """Smallest structurally complete model for CPU tests and the synthetic benchmark (ViT-S,
    one scale at 1/8, narrow Gaussian branch). Not an upstream model."""
    cfg = EncoderDepthSplatCfg(
        monodepth_vit_type="vits", num_scales=1, upsample_factor=8, lowest_feature_resolution=8,
        gaussian_regressor_channels=16, feature_upsampler_channels=32, color_large_unet=False,
        return_depth=True,
    )
    return replace(cfg, **overrides)


PRESETS = {
    "re10k_small": preset_re10k_small,
    "re10k_base": preset_re10k_base,
    "re10k_large": preset_re10k_large,
    "dl3dv_base": preset_dl3dv_base,
    "cpu_tiny": preset_cpu_tiny,
}
