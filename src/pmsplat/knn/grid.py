"""Exact nearest neighbour with a sorted uniform voxel grid, in pure torch (the fast CUDA engine).

Algorithm (per batch element, all elements processed together by tagging cells with the batch):

1. Valid references are binned into cubic cells of side h (chosen so that an occupied cell
   holds about ``target_occupancy`` points) and sorted by cell key; occupied cells are listed
   with their start and count (``unique_consecutive``), so memory is O(M), never O(grid).
2. Each query visits the cells of its (clamped) home cell's cube of Chebyshev radius r, shell by
   shell (r = 0..1 together, then r = 2), computing exact distances to the points there.
3. Exact termination: every unvisited point lies in a cell beyond the cube along some axis, so it
   is at least ``bound`` away, the smallest distance from the query to a cube face behind which
   grid cells still exist (inf when the cube covers the whole grid). A query whose best squared
   distance is <= bound^2 is final.
4. Queries still open after r = 2 continue on a 4x coarser grid, keeping their best so far, until
   the cube covers the whole grid (so the loop always ends, exactly).

Pair expansion is bounded by ``block_pairs`` candidate pairs at a time (no N x M matrix). The
same code runs on CPU tensors (that is how the tests check it) and on CUDA, where it is the
default engine. Reference ties may return any of the tied indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int64
from torch import Tensor

#: Relative slack on the termination bound, covering float rounding of cell assignment.
BOUND_SLACK = 1e-5
MAX_KEY = 1 << 62


@dataclass
class _Grid:
    """One level of the voxel grid over the flattened valid references.

    origin (B, 3) and cell (B,) per batch element; dims (B, 3) cells per axis; base (B,) first key
    of each batch element; keys/starts/counts of the occupied cells (sorted); points/original
    index of the references in cell order.
    """

    origin: Tensor
    cell: Tensor
    dims: Tensor
    base: Tensor
    keys: Tensor
    starts: Tensor
    counts: Tensor
    points: Tensor
    original: Tensor


def _cell_keys(coords: Tensor, batch: Tensor, dims: Tensor, base: Tensor) -> Tensor:
    d = dims[batch]
    return base[batch] + (coords[..., 0] * d[..., 1] + coords[..., 1]) * d[..., 2] + coords[..., 2]


def _dims_and_base(extent: Tensor, cell: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cells per axis and per-batch key offsets; grows ``cell`` until all keys fit in int64."""
    while True:
        dims = (torch.floor(extent / cell[:, None]).to(torch.int64) + 1).clamp_min(1)
        sizes = dims.prod(-1)
        if float(sizes.double().sum()) < MAX_KEY and bool((dims < (1 << 21)).all()):
            base = torch.cumsum(sizes, 0) - sizes
            return cell, dims, base
        cell = cell * 2


def _build(points: Tensor, batch: Tensor, original: Tensor, origin: Tensor, extent: Tensor, cell: Tensor) -> _Grid:
    cell, dims, base = _dims_and_base(extent, cell)
    coords = torch.floor((points - origin[batch]) / cell[batch, None]).to(torch.int64)
    coords = torch.minimum(coords.clamp_min(0), dims[batch] - 1)
    keys = _cell_keys(coords, batch, dims, base)
    order = torch.argsort(keys)
    keys = keys[order]
    unique, counts = torch.unique_consecutive(keys, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    return _Grid(origin, cell, dims, base, unique, starts, counts, points[order], original[order])


def _occupancy(points: Tensor, batch: Tensor, origin: Tensor, extent: Tensor, cell: Tensor, n_batch: int) -> Tensor:
    """Mean number of references per occupied cell, per batch element."""
    cell, dims, base = _dims_and_base(extent, cell)
    coords = torch.floor((points - origin[batch]) / cell[batch, None]).to(torch.int64)
    coords = torch.minimum(coords.clamp_min(0), dims[batch] - 1)
    keys = torch.unique(_cell_keys(coords, batch, dims, base))
    owner = torch.searchsorted(base, keys, right=True) - 1
    occupied = torch.bincount(owner, minlength=n_batch).clamp_min(1)
    return torch.bincount(batch, minlength=n_batch) / occupied


def _shell_offsets(radius: int, inner: int, device: torch.device) -> Tensor:
    """Integer offsets o with inner <= |o|_inf <= radius, (S, 3)."""
    r = torch.arange(-radius, radius + 1, device=device)
    grid = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    norm = grid.abs().amax(-1)
    return grid[(norm >= inner) & (norm <= radius)]


def _bound(query: Tensor, home: Tensor, grid: _Grid, batch: Tensor, radius: int) -> Tensor:
    """Lower bound on the distance from each query to any reference outside the searched cube."""
    origin = grid.origin[batch]
    cell = grid.cell[batch, None]
    dims = grid.dims[batch]
    local = query - origin
    upper = (home + radius + 1).to(query.dtype) * cell - local
    lower = local - (home - radius).to(query.dtype) * cell
    inf = torch.full((), float("inf"), dtype=query.dtype, device=query.device)
    upper = torch.where(home + radius + 1 <= dims - 1, upper, inf)
    lower = torch.where(home - radius - 1 >= 0, lower, inf)
    bound = torch.minimum(upper, lower).amin(-1)
    slack = BOUND_SLACK * (local.abs().amax(-1) + cell[:, 0])
    return (bound - slack).clamp_min(0)


def _visit(
    query: Tensor,
    batch: Tensor,
    home: Tensor,
    offsets: Tensor,
    grid: _Grid,
    best: Tensor,
    best_index: Tensor,
    block_pairs: int,
) -> None:
    """Update best / best_index (in place) with the references in home + offsets cells."""
    n, n_off = query.shape[0], offsets.shape[0]
    if n == 0 or grid.keys.numel() == 0:
        return
    rows_per_chunk = max(1, block_pairs // (4 * n_off))
    for c0 in range(0, n, rows_per_chunk):
        q = query[c0 : c0 + rows_per_chunk]
        b = batch[c0 : c0 + rows_per_chunk]
        cells = home[c0 : c0 + rows_per_chunk, None, :] + offsets[None]
        dims = grid.dims[b][:, None, :]
        inside = ((cells >= 0) & (cells < dims)).all(-1)
        keys = _cell_keys(cells.clamp_min(0), b[:, None].expand(-1, n_off), grid.dims, grid.base)
        position = torch.searchsorted(grid.keys, keys).clamp_max(grid.keys.numel() - 1)
        found = inside & (grid.keys[position] == keys)
        counts = torch.where(found, grid.counts[position], torch.zeros_like(position)).flatten()
        starts = grid.starts[position].flatten()
        row_query = torch.arange(q.shape[0], device=q.device).repeat_interleave(n_off)
        keep = counts > 0
        counts, starts, row_query = counts[keep], starts[keep], row_query[keep]
        if counts.numel() == 0:
            continue
        # Split the (query, cell) rows into segments of at most block_pairs candidate pairs.
        ends = torch.cumsum(counts, 0)
        total = int(ends[-1])
        bounds = [0, counts.numel()]
        if total > block_pairs:
            marks = torch.arange(block_pairs, total, block_pairs, device=q.device)
            bounds = [0, *torch.searchsorted(ends, marks, right=True).tolist(), counts.numel()]
        chunk_best = best[c0 : c0 + rows_per_chunk]
        chunk_index = best_index[c0 : c0 + rows_per_chunk]
        for s0, s1 in zip(bounds[:-1], bounds[1:]):
            if s1 <= s0:
                continue
            seg_counts = counts[s0:s1]
            pair_row = torch.repeat_interleave(torch.arange(s1 - s0, device=q.device), seg_counts)
            first = torch.cumsum(seg_counts, 0) - seg_counts
            within = torch.arange(pair_row.numel(), device=q.device) - first[pair_row]
            ref = starts[s0:s1][pair_row] + within
            owner = row_query[s0:s1][pair_row]
            distance = (q[owner] - grid.points[ref]).square().sum(-1)
            low = torch.full_like(chunk_best, float("inf")).scatter_reduce(0, owner, distance, "amin")
            is_low = distance == low[owner]
            low_index = torch.full_like(chunk_index, torch.iinfo(torch.int64).max).scatter_reduce(
                0, owner[is_low], grid.original[ref[is_low]], "amin"
            )
            better = low < chunk_best
            chunk_best.copy_(torch.where(better, low, chunk_best))
            chunk_index.copy_(torch.where(better, low_index, chunk_index))


@torch.no_grad()
def grid_search(
    queries: Float[Tensor, "batch query 3"],
    references: Float[Tensor, "batch reference 3"],
    reference_mask: Bool[Tensor, "batch reference"] | None = None,
    target_occupancy: float = 4.0,
    block_pairs: int = 1 << 23,
    coarsening: float = 4.0,
) -> Int64[Tensor, "batch query"]:
    """Index of each query's nearest (valid) reference by a multi-level voxel grid (exact).

    queries (B, N, 3) finite; references (B, M, 3), finite where ``reference_mask`` is True;
    every batch element needs at least one valid reference (checked by the caller). Returns
    (B, N) int64 indices into the reference axis.
    """
    n_batch, n_query = queries.shape[:2]
    device, dtype = queries.device, queries.dtype
    if reference_mask is None:
        reference_mask = torch.ones(references.shape[:2], dtype=torch.bool, device=device)
    ref_batch, ref_original = reference_mask.nonzero(as_tuple=True)
    ref_points = references[ref_batch, ref_original]
    inf = torch.full((), float("inf"), dtype=dtype, device=device)
    low = torch.where(reference_mask[..., None], references, inf).amin(1)
    high = torch.where(reference_mask[..., None], references, -inf).amax(1)
    extent = (high - low).clamp_min(0)
    scale = extent.amax(-1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    count = reference_mask.sum(-1).to(dtype)

    # Cell size: volume estimate, then two corrections from the measured occupancy (surfaces fill
    # occupied cells as h^2, volumes as h^3; the exponent 1/2.5 sits between).
    padded = torch.maximum(extent, 1e-3 * scale[:, None])
    cell = (padded.prod(-1) * target_occupancy / count).pow(1.0 / 3.0)
    cell = torch.maximum(cell, scale * 2.0**-20)
    for _ in range(2):
        occupancy = _occupancy(ref_points, ref_batch, low, extent, cell, n_batch).to(dtype)
        cell = cell * (target_occupancy / occupancy).clamp(1e-3, 1e3).pow(1.0 / 2.5)
        cell = torch.maximum(cell, scale * 2.0**-20)

    flat_query = queries.reshape(-1, 3)
    flat_batch = torch.arange(n_batch, device=device).repeat_interleave(n_query)
    best = torch.full((flat_query.shape[0],), float("inf"), dtype=dtype, device=device)
    best_index = torch.zeros(flat_query.shape[0], dtype=torch.int64, device=device)
    active = torch.arange(flat_query.shape[0], device=device)
    shells = [(_shell_offsets(1, 0, device), 1), (_shell_offsets(2, 2, device), 2)]
    while active.numel() > 0:
        grid = _build(ref_points, ref_batch, ref_original, low, extent, cell)
        cell = grid.cell
        for offsets, radius in shells:
            q = flat_query[active]
            b = flat_batch[active]
            home = torch.floor((q - grid.origin[b]) / grid.cell[b, None]).to(torch.int64)
            home = torch.minimum(home.clamp_min(0), grid.dims[b] - 1)
            sub_best, sub_index = best[active], best_index[active]
            _visit(q, b, home, offsets, grid, sub_best, sub_index, block_pairs)
            best[active], best_index[active] = sub_best, sub_index
            bound = _bound(q, home, grid, b, radius)
            done = sub_best <= bound.square()
            active = active[~done]
            if active.numel() == 0:
                break
        cell = cell * coarsening
    return best_index.reshape(n_batch, n_query)
