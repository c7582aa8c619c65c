"""Nearest-view selection: DepthSplat ranks the context views of each view by camera-centre
distance; the view itself comes first, then the others nearest first, and the first
``nearest_n`` entries (self included) are kept. The partners are those entries minus the view
itself; with nearest_n None (or >= V) every other view is a partner, in distance order."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int64
from torch import Tensor

from .errors import DepthSplatInputError


def nearest_view_partners(
    extrinsics: Float[Tensor, "batch view 4 4"], nearest_n: int | None
) -> Int64[Tensor, "batch view partner"]:
    b, v = extrinsics.shape[:2]
    if v < 2:
        raise DepthSplatInputError(f"DepthSplat needs at least 2 context views, got {v}")
    if nearest_n is not None and nearest_n < 2:
        raise DepthSplatInputError(f"nearest-view count must be >= 2 (the view itself + 1), got {nearest_n}")
    keep = v - 1 if nearest_n is None else min(nearest_n, v) - 1
    centres = extrinsics[..., :3, 3].detach().double()
    distances = torch.cdist(centres, centres)  # (b, v, v)
    eye = torch.eye(v, dtype=torch.bool, device=extrinsics.device)
    distances = distances.masked_fill(eye, -1.0)  # the view itself always ranks first
    order = torch.sort(distances, dim=-1, stable=True).indices
    return order[..., 1 : 1 + keep]
