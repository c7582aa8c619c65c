"""Which context views each view cross-attends to and builds its cost volume with ("partners").

With a nearest-view restriction ``nearest_n`` (``costvolume_nearest_n_views``; upstream-facts §8:
the same index restricts the transformer's cross-attention and the cost volume), DepthSplat ranks
the context views of each view by camera-centre distance, the view itself first, then the others
nearest first, and keeps the first ``min(nearest_n, V)`` entries (self included): the partners are
those entries minus the view itself, **in distance order** (parity README: "with n=3 and V <= 3 all
views are used, in distance order"). Without a restriction (``nearest_n`` None) every other view is
a partner in **increasing view index** (the transformer's default, as MVSplat: view 1 of 3 sees
(0, 2)).

The order matters beyond the cost volume's float summation: at V >= 3 the transformer's
shifted-window mask depends on the partner slot (upstream-facts, MVSplat multi-view transformer),
so the transformer is not view-permutation-equivariant.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int64
from torch import Tensor

from .errors import DepthSplatError


def nearest_view_partners(
    extrinsics: Float[Tensor, "batch view 4 4"], nearest_n: int | None
) -> Int64[Tensor, "batch view partner"]:
    """Partner view indices [B, V, P] (P = V - 1, or min(nearest_n, V) - 1) from camera-to-world
    ``extrinsics``; see the module docstring for the order."""
    b, v = extrinsics.shape[:2]
    if v < 2:
        raise DepthSplatError(f"DepthSplat needs at least 2 context views, got {v}")
    if nearest_n is not None and nearest_n < 2:
        raise DepthSplatError(f"nearest-view count must be >= 2 (the view itself + 1), got {nearest_n}")
    if nearest_n is None:
        others = [[j for j in range(v) if j != i] for i in range(v)]
        return torch.tensor(others, dtype=torch.int64, device=extrinsics.device).expand(b, v, v - 1)
    keep = min(nearest_n, v) - 1
    centres = extrinsics[..., :3, 3].detach().double()
    distances = torch.cdist(centres, centres)  # (b, v, v)
    eye = torch.eye(v, dtype=torch.bool, device=extrinsics.device)
    distances = distances.masked_fill(eye, -1.0)  # the view itself always ranks first
    order = torch.sort(distances, dim=-1, stable=True).indices
    return order[..., 1 : 1 + keep]
