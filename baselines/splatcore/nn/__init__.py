"""Network building blocks shared by the vendored MVSplat and DepthSplat encoders.

* ``CNNBackbone`` / ``ResidualBlock``: UniMatch CNN feature extractor (configurable strides).
* ``MultiViewTransformer``: Swin-window multi-view transformer with optional per-view partners.
* ``sine_position_encoding`` / ``add_window_position_encoding``: DETR-style sine encoding.
* ``split_windows`` / ``merge_windows`` / ``shifted_window_mask``: window partitioning.
* cost volume: ``inverse_depth_candidates``, ``pixel_intrinsics``, ``relative_pose``,
  ``warp_with_depth_candidates``, ``correlation``.
* ``UNet``: LDM-style U-Net with cross-view attention, post-norm (MVSplat) or pre-norm (DepthSplat).
* ``group_norm`` / ``group_norm_groups`` / ``GroupNormFloat32``: the upstream GroupNorm rule.
* ``IMAGENET_MEAN`` / ``IMAGENET_STD`` / ``normalize_imagenet``.
"""

from .cnn_backbone import CNNBackbone, ResidualBlock
from .cost_volume import (
    correlation,
    inverse_depth_candidates,
    pixel_intrinsics,
    relative_pose,
    warp_with_depth_candidates,
)
from .imagenet import IMAGENET_MEAN, IMAGENET_STD, normalize_imagenet
from .multiview_transformer import MultiViewTransformer, TransformerBlock, TransformerLayer, all_other_views, window_attention
from .norms import GroupNormFloat32, group_norm, group_norm_groups
from .position_encoding import add_window_position_encoding, sine_position_encoding
from .unet import AttentionBlock, Downsample, ResBlock, UNet, Upsample, multi_head_attention
from .windows import merge_windows, shifted_window_mask, split_windows

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AttentionBlock",
    "CNNBackbone",
    "Downsample",
    "GroupNormFloat32",
    "MultiViewTransformer",
    "ResBlock",
    "ResidualBlock",
    "TransformerBlock",
    "TransformerLayer",
    "UNet",
    "Upsample",
    "add_window_position_encoding",
    "all_other_views",
    "correlation",
    "group_norm",
    "group_norm_groups",
    "inverse_depth_candidates",
    "merge_windows",
    "multi_head_attention",
    "normalize_imagenet",
    "pixel_intrinsics",
    "relative_pose",
    "shifted_window_mask",
    "sine_position_encoding",
    "split_windows",
    "warp_with_depth_candidates",
    "window_attention",
]
