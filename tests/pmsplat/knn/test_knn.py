"""Exact nearest neighbours: every engine against an independent numpy brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pmsplat.errors import InputError
from pmsplat.knn import brute_force_search, grid_search, kdtree_search, nearest_neighbors
from pmsplat.knn.pykdtree_engine import pykdtree_available

ENGINES = ["brute", "kdtree", "grid"] + (["pykdtree"] if pykdtree_available() else [])


def _numpy_nearest(queries: np.ndarray, references: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Squared distance to the nearest valid reference, float64, by an explicit full matrix."""
    out = np.empty(queries.shape[:2])
    for b in range(queries.shape[0]):
        refs = references[b] if mask is None else references[b][mask[b]]
        d = ((queries[b][:, None, :].astype(np.float64) - refs[None].astype(np.float64)) ** 2).sum(-1)
        out[b] = d.min(1)
    return out


def _check_engine(method: str, queries: torch.Tensor, references: torch.Tensor, mask=None, exact_index: bool = True):
    index, squared = nearest_neighbors(queries, references, reference_mask=mask, method=method)
    assert index.dtype == torch.int64 and index.shape == queries.shape[:2]
    expected = _numpy_nearest(queries.numpy(), references.numpy(), None if mask is None else mask.numpy())
    tolerance = 1e-12 if queries.dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(squared.double().numpy(), expected, rtol=tolerance, atol=tolerance * 1e-2)
    if mask is not None:
        assert bool(torch.gather(mask, 1, index).all()), "a masked-out reference was returned"
    if exact_index:
        reference_index = brute_force_search(queries, references, mask)
        assert torch.equal(index, reference_index)
    return index, squared


def _surface(n: int, generator: torch.Generator, batch: int = 2) -> torch.Tensor:
    uv = torch.rand(batch, n, 2, generator=generator, dtype=torch.float64) * 4 - 2
    height = 0.3 * torch.sin(3 * uv[..., :1]) * torch.cos(2 * uv[..., 1:])
    return torch.cat([uv, height], -1)


@pytest.mark.parametrize("method", ENGINES)
def test_random_points_match_brute_force(method: str) -> None:
    g = torch.Generator().manual_seed(0)
    queries = torch.randn(3, 700, 3, generator=g, dtype=torch.float64)
    references = torch.randn(3, 500, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
    _check_engine(method, queries, references)
    # queries far outside the references' box (forces the grid to coarsen several levels)
    _check_engine(method, queries * 20 + 5, references)


@pytest.mark.parametrize("method", ENGINES)
def test_surface_like_points_float32(method: str) -> None:
    g = torch.Generator().manual_seed(1)
    references = _surface(3000, g).float()
    queries = (references[:, :1500] + 0.02 * torch.randn(2, 1500, 3, generator=g, dtype=torch.float64).float())
    _check_engine(method, queries, references, exact_index=False)


@pytest.mark.parametrize("method", ENGINES)
def test_duplicates_and_ties_compare_distances(method: str) -> None:
    """Integer lattice references, many duplicated; queries at cell centres are equidistant to 8."""
    g = torch.Generator().manual_seed(2)
    references = torch.randint(0, 4, (2, 600, 3), generator=g).double()
    queries = torch.cat(
        [torch.randint(0, 4, (2, 100, 3), generator=g).double() + 0.5, torch.randint(0, 4, (2, 50, 3), generator=g).double()], 1
    )
    index, squared = _check_engine(method, queries, references, exact_index=False)
    exact_hits = squared[:, 100:]
    assert bool((exact_hits == 0).all())  # duplicated lattice points found exactly


@pytest.mark.parametrize("method", ENGINES)
def test_reference_mask_excludes_points_even_when_nan(method: str) -> None:
    g = torch.Generator().manual_seed(3)
    queries = torch.randn(2, 400, 3, generator=g, dtype=torch.float64)
    references = torch.cat([queries[:, :200] + 1e-4, torch.randn(2, 300, 3, generator=g, dtype=torch.float64)], 1)
    mask = torch.rand(2, 500, generator=g) < 0.5
    poisoned = references.clone()
    poisoned[~mask] = float("nan")
    index, _ = nearest_neighbors(queries, poisoned, reference_mask=mask, method=method)
    expected = _numpy_nearest(queries.numpy(), references.numpy(), mask.numpy())
    gathered = torch.gather(references, 1, index[..., None].expand(-1, -1, 3))
    np.testing.assert_allclose(((queries - gathered) ** 2).sum(-1).numpy(), expected, rtol=1e-12)
    assert bool(torch.gather(mask, 1, index).all())


def test_query_mask_gives_minus_one_and_zero_distance() -> None:
    g = torch.Generator().manual_seed(4)
    queries = torch.randn(1, 50, 3, generator=g, dtype=torch.float64, requires_grad=True)
    references = torch.randn(1, 40, 3, generator=g, dtype=torch.float64)
    query_mask = torch.rand(1, 50, generator=g) < 0.5
    with torch.no_grad():
        poisoned = queries.clone()
        poisoned[~query_mask] = float("inf")
    poisoned.requires_grad_(True)
    index, squared = nearest_neighbors(poisoned, references, query_mask=query_mask)
    assert bool((index[~query_mask] == -1).all()) and bool((squared[~query_mask] == 0).all())
    expected = _numpy_nearest(queries.detach().numpy(), references.numpy())
    np.testing.assert_allclose(squared[query_mask].detach().numpy(), expected[query_mask.numpy()], rtol=1e-12)
    squared.sum().backward()
    assert torch.isfinite(poisoned.grad).all() and bool((poisoned.grad[~query_mask] == 0).all())


def test_distance_gradient_flows_to_both_sets() -> None:
    g = torch.Generator().manual_seed(5)
    queries = torch.randn(2, 10, 3, generator=g, dtype=torch.float64, requires_grad=True)
    references = torch.randn(2, 8, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, r: nearest_neighbors(q, r)[1], (queries, references), eps=1e-7, atol=1e-6)
    # and the closed form: d/dq |q - r|^2 = 2 (q - r)
    index, squared = nearest_neighbors(queries, references)
    squared.sum().backward()
    nearest = torch.gather(references.detach(), 1, index[..., None].expand(-1, -1, 3))
    torch.testing.assert_close(queries.grad, 2 * (queries.detach() - nearest))


def test_grid_pair_budget_splitting_and_single_or_identical_references() -> None:
    g = torch.Generator().manual_seed(6)
    queries = torch.randn(2, 100, 3, generator=g, dtype=torch.float64)
    references = torch.randint(0, 2, (2, 400, 3), generator=g).double()  # 8 sites, ~50 copies each
    index = grid_search(queries, references, block_pairs=997)
    gathered = torch.gather(references, 1, index[..., None].expand(-1, -1, 3))
    np.testing.assert_allclose(((queries - gathered) ** 2).sum(-1).numpy(), _numpy_nearest(queries.numpy(), references.numpy()))
    single = torch.randn(2, 1, 3, generator=g, dtype=torch.float64)
    assert bool((grid_search(queries, single) == 0).all())
    identical = torch.ones(1, 64, 3, dtype=torch.float64)
    index = grid_search(queries[:1], identical)
    assert bool(((index >= 0) & (index < 64)).all())


def test_grid_handles_per_example_scales_and_many_points() -> None:
    """Batch elements at very different scales share one key space; 20k points, surface-like."""
    g = torch.Generator().manual_seed(7)
    references = _surface(20000, g, batch=2) * torch.tensor([1e-3, 1e3], dtype=torch.float64)[:, None, None]
    queries = references[:, ::4] + torch.randn(2, 5000, 3, generator=g, dtype=torch.float64) * 0.05 * torch.tensor(
        [1e-3, 1e3], dtype=torch.float64
    )[:, None, None]
    index = grid_search(queries, references)
    truth = kdtree_search(queries, references)
    distance = lambda i: ((queries - torch.gather(references, 1, i[..., None].expand(-1, -1, 3))) ** 2).sum(-1)  # noqa: E731
    torch.testing.assert_close(distance(index), distance(truth), rtol=0, atol=0)


def test_brute_force_blocks_do_not_change_the_result() -> None:
    g = torch.Generator().manual_seed(8)
    queries = torch.randn(2, 101, 3, generator=g, dtype=torch.float64)
    references = torch.randn(2, 77, 3, generator=g, dtype=torch.float64)
    assert torch.equal(brute_force_search(queries, references, block_elements=2000), brute_force_search(queries, references))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"queries": torch.zeros(2, 5, 2), "references": torch.zeros(2, 5, 3)}, "'queries'"),
        ({"queries": torch.zeros(2, 5, 3), "references": torch.zeros(3, 5, 3)}, "batch size"),
        ({"queries": torch.zeros(0, 5, 3), "references": torch.zeros(0, 5, 3)}, "batch size"),
        ({"queries": torch.zeros(2, 5, 3), "references": torch.zeros(2, 0, 3)}, "empty"),
        ({"queries": torch.zeros(2, 5, 3), "references": torch.zeros(2, 5, 3, dtype=torch.float64)}, "dtype and device"),
        ({"queries": torch.zeros(2, 5, 3), "references": torch.zeros(2, 4, 3), "reference_mask": torch.ones(2, 5, dtype=torch.bool)}, "'reference_mask'"),
        ({"queries": torch.zeros(2, 5, 3), "references": torch.zeros(2, 4, 3), "query_mask": torch.ones(2, 5)}, "'query_mask'"),
        ({"queries": torch.zeros(2, 5, 3), "references": torch.zeros(2, 4, 3), "reference_mask": torch.zeros(2, 4, dtype=torch.bool)}, "no valid reference"),
        ({"queries": torch.zeros(2, 5, 3), "references": torch.full((2, 4, 3), float("nan"))}, "non-finite"),
        ({"queries": torch.full((2, 5, 3), float("inf")), "references": torch.zeros(2, 4, 3)}, "non-finite"),
        ({"queries": torch.zeros(2, 5, 3), "references": torch.zeros(2, 4, 3), "method": "octree"}, "unknown method"),
    ],
)
def test_bad_input_is_rejected(kwargs, match) -> None:
    with pytest.raises(InputError, match=match):
        nearest_neighbors(**kwargs)


@pytest.mark.gpu
def test_grid_on_cuda_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(9)
    references = _surface(200_000, g).float().cuda()
    queries = (references[:, ::2] + 0.01 * torch.randn(references[:, ::2].shape, generator=g).cuda()).contiguous()
    index, squared = nearest_neighbors(queries, references, method="grid")
    reference = brute_force_search(queries, references)
    truth = ((queries - torch.gather(references, 1, reference[..., None].expand(-1, -1, 3))) ** 2).sum(-1)
    torch.testing.assert_close(squared, truth, rtol=0, atol=0)
