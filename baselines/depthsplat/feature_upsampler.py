"""DepthSplat's ``ResizeConvFeatureUpsampler``: brings the per-scale depth-branch features to full
resolution for the Gaussian branch.

For scale i (resolution 1/r_i, n_i = log2 r_i up-steps), concat(CNN_i, MV_i, mono_i) goes through
``upsampler[i]`` = Sequential(
    0: Conv2d 1x1 -> c_0,
    then n_i times [Upsample nearest x2, Conv2d 3x3 replicate padding -> c_k], with a GELU
    between consecutive steps (none after the 1x1 conv, none at the end)).
With P = feature_upsampler_channels / num_scales output channels per scale, c_0 = P * 2^max(n_i - 1, 1)
and c_k = P * 2^max(n_i - 1 - k, 0) (halving down to P), as in the released checkpoints
(../shared/parity/depthsplat/preset_state_dict_keys.json): the DL3DV base model has
640 -> 256 -> 128 -> 64 -> 64 at 1/8 and 352 -> 128 -> 64 -> 64 at 1/4, the RE10K small model
640 -> 128 -> 64 -> 64 at 1/4, and the RE10K base model's 1/2 branch (one step) 544 -> 128 -> 64. The scales' outputs are
concatenated (coarsest first) into [N, feature_upsampler_channels, H, W].
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn

from .errors import DepthSplatError


def _upsampler_branch(in_channels: int, out_channels: int, factor: int) -> nn.Sequential:
    steps = int(round(math.log2(factor)))
    if 2**steps != factor or steps < 1:
        raise DepthSplatError(f"feature upsampling factor must be a power of two >= 2, got {factor}")
    width = out_channels * 2 ** max(steps - 1, 1)
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 1)]
    for k in range(1, steps + 1):
        next_width = out_channels * 2 ** max(steps - 1 - k, 0)
        if k > 1:
            layers.append(nn.GELU())
        layers += [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(width, next_width, 3, padding=1, padding_mode="replicate"),
        ]
        width = next_width
    return nn.Sequential(*layers)


class ResizeConvFeatureUpsampler(nn.Module):
    def __init__(
        self, in_channels_per_scale: list[int], factors_per_scale: list[int], out_channels: int
    ) -> None:
        """in_channels_per_scale[i] = CNN + MV + mono channels at scale i; factors_per_scale[i] =
        full resolution / scale-i resolution."""
        super().__init__()
        num_scales = len(in_channels_per_scale)
        if out_channels % num_scales:
            raise DepthSplatError(
                f"feature_upsampler_channels ({out_channels}) must be divisible by num_scales ({num_scales})"
            )
        per_scale = out_channels // num_scales
        self.upsampler = nn.ModuleList(
            _upsampler_branch(c, per_scale, f) for c, f in zip(in_channels_per_scale, factors_per_scale)
        )

    def forward(
        self,
        cnn_features: list[Float[Tensor, "batch _ _ _"]],
        mv_features: list[Float[Tensor, "batch _ _ _"]],
        mono_features: list[Float[Tensor, "batch _ _ _"]],
    ) -> Float[Tensor, "batch channel height width"]:
        """Each list holds one map per scale, coarsest first; returns the scales' outputs
        concatenated (coarsest first) at full resolution."""
        outputs = [
            branch(torch.cat((cnn, mv, mono), dim=1))
            for branch, cnn, mv, mono in zip(self.upsampler, cnn_features, mv_features, mono_features)
        ]
        return torch.cat(outputs, dim=1)
