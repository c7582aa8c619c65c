"""Configuration of the MVSplat encoder, with the upstream Hydra keys (``model.encoder.*`` of
config/model/encoder/costvolume.yaml + config/experiment/re10k.yaml).

Unlike upstream, nothing is read from a global config at construction. Upstream reads
``dataset.view_sampler.num_context_views`` there and fixes the U-Nets' cross-view group size to
it; the port takes the view count from each batch instead (see ``EncoderCostVolume.forward``), so
there is no view-count field: the same encoder runs 2, 3, ... 6 context views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from splatcore.model.gaussian_adapter import GaussianAdapterCfg


@dataclass
class OpacityMappingCfg:
    """Opacity = 0.5 (1 - (1 - p)^e + p^(1/e)), e = 2^x, x ramps from ``initial`` to ``final`` over
    ``warm_up`` steps (identity when both are 0, as in every released config)."""

    initial: float = 0.0
    final: float = 0.0
    warm_up: int = 1


@dataclass
class EncoderVisualizerCostVolumeCfg:
    num_samples: int = 8
    min_resolution: int = 256
    export_ply: bool = False


def _default_adapter() -> GaussianAdapterCfg:
    return GaussianAdapterCfg(gaussian_scale_min=0.5, gaussian_scale_max=15.0, sh_degree=4)


@dataclass
class EncoderCostVolumeCfg:
    """All keys of the upstream ``EncoderCostVolumeCfg``; defaults = the released re10k model."""

    name: Literal["costvolume"] = "costvolume"
    d_feature: int = 128
    num_depth_candidates: int = 128
    num_surfaces: int = 1
    visualizer: EncoderVisualizerCostVolumeCfg = field(default_factory=EncoderVisualizerCostVolumeCfg)
    gaussian_adapter: GaussianAdapterCfg = field(default_factory=_default_adapter)
    opacity_mapping: OpacityMappingCfg = field(default_factory=OpacityMappingCfg)
    gaussians_per_pixel: int = 1
    unimatch_weights_path: str | None = "checkpoints/gmdepth-scale1-resumeflowthings-scannet-5d9d7964.pth"
    downscale_factor: int = 4
    shim_patch_size: int = 4
    multiview_trans_attn_split: int = 2
    costvolume_unet_feat_dim: int = 128
    costvolume_unet_channel_mult: list[int] = field(default_factory=lambda: [1, 1, 1])
    costvolume_unet_attn_res: list[int] = field(default_factory=lambda: [4])
    depth_unet_feat_dim: int = 32
    depth_unet_attn_res: list[int] = field(default_factory=lambda: [16])
    depth_unet_channel_mult: list[int] = field(default_factory=lambda: [1, 1, 1, 1, 1])
    wo_depth_refine: bool = False
    wo_cost_volume: bool = False
    wo_backbone_cross_attn: bool = False
    wo_cost_volume_refine: bool = False
    use_epipolar_trans: bool = False
