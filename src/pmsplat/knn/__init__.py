"""Exact nearest-neighbour search between point sets: index + differentiable squared distance.

Engines (all exact; results agree with brute force up to ties between equidistant references):

- ``"brute"``: chunked exhaustive scan in torch (:mod:`pmsplat.knn.brute`); the reference, and
  the fastest choice for small problems.
- ``"pykdtree"``: pykdtree's OpenMP k-d tree, searched in float64 (:mod:`pmsplat.knn.pykdtree_engine`);
  the CPU default when the ``pykdtree`` package imports (a declared dependency). About 2x faster
  than cKDTree (build + query) at 688k surface points; asking for it explicitly without the
  package raises MissingDependencyError naming ``pip install pykdtree``.
- ``"kdtree"``: scipy's cKDTree, multi-threaded (:mod:`pmsplat.knn.kdtree`); the CPU fallback.
- ``"grid"``: multi-level sorted voxel grid in pure torch (:mod:`pmsplat.knn.grid`); the CUDA
  default. It imports and runs on CPU too (that is how it is tested without a GPU).
- ``"auto"``: brute when N * M <= ``AUTO_BRUTE_PAIRS[device]``, else grid on CUDA, and on CPU
  (or any other device, through host copies) pykdtree when importable, else kdtree
  (:func:`auto_method` tells which).

The search runs without gradient; the squared distance is then recomputed from the gathered
reference, so it is differentiable with respect to both ``queries`` and ``references``.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int64
from torch import Tensor

from pmsplat.errors import InputError
from pmsplat.knn.brute import brute_force_search
from pmsplat.knn.grid import grid_search
from pmsplat.knn.kdtree import kdtree_search
from pmsplat.knn.pykdtree_engine import pykdtree_available, pykdtree_search

__all__ = [
    "nearest_neighbors",
    "finite_points",
    "auto_method",
    "brute_force_search",
    "grid_search",
    "kdtree_search",
    "pykdtree_search",
    "pykdtree_available",
    "AUTO_BRUTE_PAIRS",
    "METHODS",
]

#: Every accepted ``method`` of :func:`nearest_neighbors`.
METHODS = ("auto", "brute", "pykdtree", "kdtree", "grid")
_METHOD_LIST = "'auto', 'brute', 'pykdtree', 'kdtree' or 'grid'"

#: Up to this many query-reference pairs per batch element "auto" uses the brute-force scan
#: (CPU: the k-d tree wins beyond a few hundred points; CUDA: a 4k x 16k scan takes microseconds).
AUTO_BRUTE_PAIRS = {"cpu": 1 << 16, "cuda": 1 << 26}


def _check(queries: Tensor, references: Tensor, reference_mask: Tensor | None, query_mask: Tensor | None) -> None:
    for name, tensor in (("queries", queries), ("references", references)):
        if not isinstance(tensor, Tensor) or tensor.ndim != 3 or tensor.shape[-1] != 3 or not tensor.is_floating_point():
            shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise InputError(f"nearest_neighbors: '{name}' must be a floating-point tensor of shape (B, N, 3), got {shape}.")
    if queries.shape[0] != references.shape[0] or queries.shape[0] == 0:
        raise InputError(
            f"nearest_neighbors: 'queries' {tuple(queries.shape)} and 'references' {tuple(references.shape)} need the "
            "same non-zero batch size B: (B, N, 3) and (B, M, 3)."
        )
    if references.shape[1] == 0:
        raise InputError(f"nearest_neighbors: 'references' {tuple(references.shape)} is empty; expected (B, M >= 1, 3).")
    if queries.dtype != references.dtype or queries.device != references.device:
        raise InputError(
            f"nearest_neighbors: 'queries' ({queries.dtype}, {queries.device}) and 'references' ({references.dtype}, "
            f"{references.device}) must share dtype and device."
        )
    for name, mask, points in (("reference_mask", reference_mask, references), ("query_mask", query_mask, queries)):
        if mask is None:
            continue
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != tuple(points.shape[:2]):
            raise InputError(
                f"nearest_neighbors: '{name}' must be a bool tensor of shape {tuple(points.shape[:2])}, got "
                f"{(tuple(mask.shape), mask.dtype) if isinstance(mask, Tensor) else type(mask).__name__}."
            )
        if mask.device != points.device:
            raise InputError(f"nearest_neighbors: '{name}' is on {mask.device}, the points on {points.device}.")


def nearest_neighbors(
    queries: Tensor,
    references: Tensor,
    *,
    reference_mask: Tensor | None = None,
    query_mask: Tensor | None = None,
    method: str = "auto",
) -> tuple[Int64[Tensor, "batch query"], Float[Tensor, "batch query"]]:
    """For each query point, its nearest reference point (exact, squared Euclidean distance).

    queries (B, N, 3), references (B, M, 3): same dtype and device (CPU or CUDA).
    reference_mask: optional (B, M) bool; references with False are never returned (they may
        hold NaN/inf). Every batch element needs at least one valid reference.
    query_mask: optional (B, N) bool; queries with False are not searched (they may hold NaN):
        their index is -1 and their squared distance 0 (with zero gradient).
    method: "auto" | "brute" | "pykdtree" | "kdtree" | "grid" (see the module docstring).

    Returns ``(index (B, N) int64 into the reference axis, sq_dist (B, N))``; ``sq_dist`` is
    ``((queries - references[index]) ** 2).sum(-1)``, differentiable wrt both point sets.
    Memory stays O(N + M) for every engine. Arguments are validated here (InputError naming
    the argument); the shape-annotated search is :func:`_nearest`.
    """
    _check(queries, references, reference_mask, query_mask)
    if method not in METHODS:
        raise InputError(f"nearest_neighbors: unknown method {method!r}; use {_METHOD_LIST}.")
    _check_values(queries, references, reference_mask, query_mask)
    return _nearest(queries, references, reference_mask, query_mask, method)


@torch.no_grad()
def finite_points(points: Tensor) -> Tensor | None:
    """(B, N) bool, True where all 3 coordinates are finite; None when every point is finite.

    One reduction decides the common all-finite case (a sum is finite only if every term is;
    a false alarm from overflow just falls through to the exact per-point test).
    """
    if bool(torch.isfinite(points.sum())):
        return None
    return torch.isfinite(points).all(-1)


@torch.no_grad()
def _check_values(queries: Tensor, references: Tensor, reference_mask: Tensor | None, query_mask: Tensor | None) -> None:
    """InputError for an empty reference mask or unmasked non-finite points."""
    if reference_mask is not None:
        empty = ~reference_mask.any(-1)
        if bool(empty.any()):
            raise InputError(
                f"nearest_neighbors: 'reference_mask' leaves no valid reference in batch element(s) "
                f"{empty.nonzero().flatten().tolist()}."
            )
    finite = finite_points(references)
    ref_ok = None if finite is None else (finite if reference_mask is None else finite | ~reference_mask)
    if ref_ok is not None and not bool(ref_ok.all()):
        raise InputError(
            "nearest_neighbors: 'references' holds non-finite points that 'reference_mask' does not exclude "
            f"(batch element(s) {(~ref_ok).any(-1).nonzero().flatten().tolist()}); mask them out."
        )
    query_ok = finite_points(queries)
    if query_ok is not None and query_mask is not None:
        query_ok = query_ok | ~query_mask
    if query_ok is not None and not bool(query_ok.all()):
        raise InputError("nearest_neighbors: 'queries' holds non-finite points; exclude them with 'query_mask'.")


def auto_method(n_query: int, n_reference: int, device: torch.device | str) -> str:
    """The engine ``method="auto"`` runs for N = ``n_query`` queries against M = ``n_reference``
    references on ``device``: "brute" when N * M <= ``AUTO_BRUTE_PAIRS``, else "grid" on CUDA,
    else "pykdtree" when it imports, else "kdtree"."""
    is_cuda = torch.device(device).type == "cuda"
    if n_query * n_reference <= AUTO_BRUTE_PAIRS["cuda" if is_cuda else "cpu"]:
        return "brute"
    if is_cuda:
        return "grid"
    return "pykdtree" if pykdtree_available() else "kdtree"


def _nearest(
    queries: Float[Tensor, "batch query 3"],
    references: Float[Tensor, "batch reference 3"],
    reference_mask: Bool[Tensor, "batch reference"] | None,
    query_mask: Bool[Tensor, "batch query"] | None,
    method: str,
) -> tuple[Int64[Tensor, "batch query"], Float[Tensor, "batch query"]]:
    """Search + differentiable gather on validated inputs (see :func:`nearest_neighbors`): every
    batch element has a valid reference, and unmasked points are finite."""
    with torch.no_grad():
        search_queries = queries.detach()
        if query_mask is not None:
            search_queries = torch.where(query_mask[..., None], search_queries, torch.zeros_like(search_queries))
        search_refs = references.detach()
        chosen = method
        if method == "auto":
            chosen = auto_method(queries.shape[1], references.shape[1], queries.device)
        if chosen == "brute":
            index = brute_force_search(search_queries, search_refs, reference_mask)
        elif chosen == "pykdtree":
            index = pykdtree_search(search_queries, search_refs, reference_mask)
        elif chosen == "kdtree":
            index = kdtree_search(search_queries, search_refs, reference_mask)
        elif chosen == "grid":
            index = grid_search(search_queries, search_refs, reference_mask)
        else:
            raise InputError(f"nearest_neighbors: unknown method {method!r}; use {_METHOD_LIST}.")
        if query_mask is not None:
            index = torch.where(query_mask, index, torch.full_like(index, -1))
    gathered = torch.gather(references, 1, index.clamp_min(0)[..., None].expand(-1, -1, 3))
    difference = queries - gathered
    if query_mask is not None:
        difference = torch.where(query_mask[..., None], difference, torch.zeros_like(difference))
    return index, difference.square().sum(-1)
