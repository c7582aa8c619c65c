"""Exact nearest neighbour by a chunked brute-force scan (the reference engine; any device).

Memory is bounded by ``block_elements`` query-reference pairs at a time: no N x M matrix is ever
built. Distances come from ``torch.cdist`` in its difference-based mode (sqrt of the sum of squared
coordinate differences, no matrix-product expansion and so no cancellation), whose minimiser is
the squared-distance minimiser up to exact ties.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int64
from torch import Tensor


@torch.no_grad()
def brute_force_search(
    queries: Float[Tensor, "batch query 3"],
    references: Float[Tensor, "batch reference 3"],
    reference_mask: Bool[Tensor, "batch reference"] | None = None,
    block_elements: int = 1 << 22,
) -> Int64[Tensor, "batch query"]:
    """Index of each query's nearest (valid) reference, by exhaustive scan in blocks.

    queries (B, N, 3) and references (B, M, 3) must be finite where used; references excluded by
    ``reference_mask`` (False) are never returned. Ties go to the lowest reference index.
    """
    batch, n_query = queries.shape[:2]
    n_ref = references.shape[1]
    q_block = max(1, min(n_query, int((block_elements // max(batch, 1)) ** 0.5)))
    r_block = max(1, min(n_ref, block_elements // max(batch * q_block, 1)))
    penalty = None
    if reference_mask is not None:
        zero = torch.zeros((), dtype=queries.dtype, device=queries.device)
        inf = torch.full((), float("inf"), dtype=queries.dtype, device=queries.device)
        penalty = torch.where(reference_mask, zero, inf)
        # Masked references may hold NaN/inf: replace them so that inf - inf never appears.
        references = torch.where(reference_mask[..., None], references, zero)
    index = torch.empty(batch, n_query, dtype=torch.int64, device=queries.device)
    for q0 in range(0, n_query, q_block):
        q = queries[:, q0 : q0 + q_block]
        best = torch.full(q.shape[:2], float("inf"), dtype=queries.dtype, device=queries.device)
        best_index = torch.zeros(q.shape[:2], dtype=torch.int64, device=queries.device)
        for r0 in range(0, n_ref, r_block):
            r = references[:, r0 : r0 + r_block]
            # Fused difference-based kernel (no |q|^2 - 2 q.r + |r|^2 cancellation); the Euclidean
            # distance has the same minimiser as the squared one.
            distance = torch.cdist(q, r, compute_mode="donot_use_mm_for_euclid_dist")
            if penalty is not None:
                distance = distance + penalty[:, None, r0 : r0 + r_block]
            value, arg = distance.min(dim=-1)
            better = value < best
            best = torch.where(better, value, best)
            best_index = torch.where(better, arg + r0, best_index)
        index[:, q0 : q0 + q_block] = best_index
    return index
