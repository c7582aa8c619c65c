"""Normalisation layers with the upstream numerics.

* ``group_norm_groups``: the group-count rule of the MVSplat/DepthSplat U-Nets — 8 groups, or 4
  when the channel count is not a multiple of 8 (parity README, "Hyper-parameters that the state
  dict does not reveal").
* ``GroupNormFloat32``: a GroupNorm that always computes in (at least) float32 and casts back to the input
  dtype (as the upstream U-Nets do), so bf16/fp16 autocast does not change its statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ..errors import ConfigError


def group_norm_groups(channels: int, preferred: int = 8, fallback: int = 4) -> int:
    """Number of GroupNorm groups for ``channels``: ``preferred`` when it divides the channel
    count, else ``fallback`` (which must divide it)."""
    if channels % preferred == 0:
        return preferred
    if channels % fallback == 0:
        return fallback
    raise ConfigError(
        f"GroupNorm needs a channel count divisible by {preferred} or {fallback}, got {channels}; "
        "change the feature width."
    )


class GroupNormFloat32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype; the result has the input dtype."""

    def forward(self, x: Float[Tensor, "batch channel *spatial"]) -> Float[Tensor, "batch channel *spatial"]:
        dtype = torch.promote_types(x.dtype, torch.float32)  # float32, or float64 for float64 input
        weight = None if self.weight is None else self.weight.to(dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        return F.group_norm(x.to(dtype), self.num_groups, weight, bias, self.eps).type(x.dtype)


def group_norm(channels: int, groups: int | None = None) -> GroupNormFloat32:
    """A float32 GroupNorm with affine parameters; ``groups`` defaults to ``group_norm_groups``."""
    return GroupNormFloat32(groups if groups is not None else group_norm_groups(channels), channels)
