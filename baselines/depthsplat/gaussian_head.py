"""DepthSplat's Gaussian branch after the feature upsampler: the Gaussian regressor U-Net, the
Gaussian head and the sub-pixel offset modes.

gaussian_regressor = Sequential(conv3x3 (3 + 1 + 1 + F -> C), GroupNorm, GELU,
    UNet(C, channel_mult [1,2,4,4,4] if color_large_unet or C == 16 else [1,1,1,1,1], attention at
    downsampling 16, 32 channels per head (16 when C < 32), pre-norm, cross-view attention),
    conv3x3 C -> C)
    input: concat(image, metric depth, match probability, upsampled features)
gaussian_head = Sequential(conv3x3 (C + 3 + F + 1 -> 2P if F == 128 else P, replicate padding),
    GELU, conv3x3 (-> P, replicate padding))
    input: concat(regressor output, image, features, match probability)
Raw head channels: 0 opacity logit, [1 confidence when confidence_activation is set], then 2 xy
offset, 3 scale, 4 quaternion (xyzw), 3 * d_sh SH (colour-major).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from splatcore.nn import UNet, group_norm

from .errors import DepthSplatError


def build_gaussian_regressor(in_channels: int, channels: int, color_large_unet: bool) -> nn.Sequential:
    large = color_large_unet or channels == 16
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1),
        group_norm(channels),
        nn.GELU(),
        UNet(
            channels, channels, channels, num_res_blocks=1, attention_resolutions=(16,),
            channel_mult=(1, 2, 4, 4, 4) if large else (1, 1, 1, 1, 1),
            num_head_channels=32 if channels >= 32 else 16, pre_norm=True, num_views=2,
        ),
        nn.Conv2d(channels, channels, 3, padding=1),
    )


def build_gaussian_head(in_channels: int, raw_channels: int, feature_channels: int) -> nn.Sequential:
    hidden = 2 * raw_channels if feature_channels == 128 else raw_channels
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1, padding_mode="replicate"),
        nn.GELU(),
        nn.Conv2d(hidden, raw_channels, 3, padding=1, padding_mode="replicate"),
    )


def pixel_offsets(raw: Float[Tensor, "*batch 2"], mode: str, factor: float) -> Float[Tensor, "*batch 2"]:
    """Sub-pixel offset of each Gaussian's ray, in pixels:
    ``ori``/``origin`` sigmoid(x) - 0.5 (DepthSplat, within +-0.5 px); ``pixel`` tanh(x) * factor / 2;
    ``unconstrained`` x * factor (PM-Loss, unbounded)."""
    if mode in ("ori", "origin"):
        return raw.sigmoid() - 0.5
    if mode == "pixel":
        return torch.tanh(raw) * factor / 2
    if mode == "unconstrained":
        return raw * factor
    raise DepthSplatError(f"offset_mode must be 'ori', 'origin', 'pixel' or 'unconstrained', got {mode!r}")
