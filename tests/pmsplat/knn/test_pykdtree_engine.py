"""The pykdtree engine: exactness against brute force, the "auto" choice, and the fallback to
scipy's cKDTree (or a clear error for an explicit request) when pykdtree is not installed."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch

import pmsplat.knn as knn
from pmsplat.errors import MissingDependencyError
from pmsplat.knn import auto_method, brute_force_search, nearest_neighbors, pykdtree_search

try:
    import pykdtree  # noqa: F401

    HAVE_PYKDTREE = True
except ImportError:
    HAVE_PYKDTREE = False
needs_pykdtree = pytest.mark.skipif(not HAVE_PYKDTREE, reason="pykdtree is not installed")


def _distance(queries: torch.Tensor, references: torch.Tensor, index: torch.Tensor) -> np.ndarray:
    """Float64 squared distance from each query to references[index] (the true metric)."""
    gathered = torch.gather(references.double(), 1, index[..., None].expand(-1, -1, 3))
    return ((queries.double() - gathered) ** 2).sum(-1).numpy()


def _truth(queries: torch.Tensor, references: torch.Tensor, mask: torch.Tensor | None = None) -> np.ndarray:
    """Float64 nearest squared distance by a full numpy matrix (independent of every engine)."""
    q, r = queries.double().numpy(), references.double().numpy()
    out = np.empty(q.shape[:2])
    for b in range(q.shape[0]):
        refs = r[b] if mask is None else r[b][mask[b].numpy()]
        out[b] = ((q[b][:, None] - refs[None]) ** 2).sum(-1).min(1)
    return out


@needs_pykdtree
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_indices_equal_brute_force_on_random_points(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    queries = torch.randn(3, 900, 3, generator=g, dtype=torch.float64).to(dtype)
    references = (torch.randn(3, 600, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)).to(dtype)
    index = pykdtree_search(queries, references)
    assert index.dtype == torch.int64 and index.shape == (3, 900)
    if dtype == torch.float64:
        assert torch.equal(index, brute_force_search(queries, references))
    # float32 inputs: exact in the true (float64) metric, no float32 rounding swaps
    np.testing.assert_array_equal(_distance(queries, references, index), _truth(queries, references))


@needs_pykdtree
def test_float32_near_ties_are_resolved_in_the_true_metric() -> None:
    """Two float32 references whose distances to the query differ below float32 resolution
    (|r1| = |r2| rounded): a float32 search picks the farther one about 1 time in 4; the
    float64 search must always pick the truly closer one."""
    rng = np.random.default_rng(1)
    xy = rng.uniform(0.3, 0.7, (300, 2)).astype(np.float32)
    r1 = np.zeros((300, 3), np.float32)
    r1[:, 2] = np.sqrt((xy.astype(np.float64) ** 2).sum(1)).astype(np.float32)
    r2 = np.concatenate([xy, np.zeros((300, 1), np.float32)], 1)
    references = torch.from_numpy(np.stack([r1, r2], 1))  # (300, 2, 3): one query per element
    queries = torch.zeros(300, 1, 3)
    index = pykdtree_search(queries, references)
    np.testing.assert_array_equal(_distance(queries, references, index), _truth(queries, references))


@needs_pykdtree
def test_surface_with_depth_jumps_and_mask_matches_brute_force() -> None:
    """Pixel-grid surface with a step (the PM-Loss shape), NaN in masked references, ties allowed."""
    g = torch.Generator().manual_seed(2)
    v, u = torch.meshgrid(torch.linspace(-1, 1, 40), torch.linspace(-1, 1, 60), indexing="ij")
    depth = 2 + 0.3 * torch.sin(3 * u) + 0.5 * (u > 0.2).double()
    surface = torch.stack([u * depth, v * depth, depth], -1).reshape(1, -1, 3).double().repeat(2, 1, 1)
    references = surface + 0.01 * torch.randn(surface.shape, generator=g, dtype=torch.float64)
    queries = surface + 0.01 * torch.randn(surface.shape, generator=g, dtype=torch.float64)
    mask = torch.rand(references.shape[:2], generator=g) < 0.7
    poisoned = references.clone()
    poisoned[~mask] = float("nan")
    index = pykdtree_search(queries, poisoned, mask)
    assert bool(torch.gather(mask, 1, index).all())
    np.testing.assert_array_equal(_distance(queries, references, index), _truth(queries, references, mask))
    reference_index = brute_force_search(queries, references, mask)
    ties = _distance(queries, references, index) == _distance(queries, references, reference_index)
    assert ties.all()


@needs_pykdtree
def test_nearest_neighbors_method_pykdtree_and_duplicates() -> None:
    g = torch.Generator().manual_seed(3)
    references = torch.randint(0, 4, (2, 600, 3), generator=g).double()  # many exact duplicates
    queries = torch.cat([references[:, :50], references[:, :50] + 0.5], 1)
    index, squared = nearest_neighbors(queries, references, method="pykdtree")
    np.testing.assert_allclose(squared.numpy(), _truth(queries, references), rtol=0, atol=0)
    assert bool((squared[:, :50] == 0).all())
    single = nearest_neighbors(queries, references[:, :1], method="pykdtree")[0]
    assert bool((single == 0).all())


@needs_pykdtree
def test_auto_picks_pykdtree_on_cpu_for_large_problems() -> None:
    assert auto_method(10, 10, "cpu") == "brute"
    assert auto_method(10_000, 10_000, "cpu") == "pykdtree"
    assert auto_method(10_000, 10_000, "cuda") == "grid"


def _hide_pykdtree(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "pykdtree" or name.startswith("pykdtree."):
            raise ImportError(f"No module named {name!r} (hidden by the test)")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_without_pykdtree_auto_falls_back_to_ckdtree_and_explicit_request_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(4)
    queries = torch.randn(1, 400, 3, generator=g, dtype=torch.float64)
    references = torch.randn(1, 300, 3, generator=g, dtype=torch.float64)
    expected = brute_force_search(queries, references)
    _hide_pykdtree(monkeypatch)
    assert not knn.pykdtree_available()
    assert auto_method(400, 300, "cpu") == "kdtree"
    index, _ = nearest_neighbors(queries, references, method="auto")
    assert torch.equal(index, expected)
    with pytest.raises(MissingDependencyError, match="pip install pykdtree"):
        nearest_neighbors(queries, references, method="pykdtree")
    with pytest.raises(MissingDependencyError, match="pip install pykdtree"):
        pykdtree_search(queries, references)


@needs_pykdtree
def test_pm_loss_with_auto_pykdtree_equals_float64_numpy_reference() -> None:
    """pm_loss at a size where "auto" runs pykdtree: the loss equals the mean nearest squared
    distance computed by numpy in float64 on the same aligned teacher points."""
    from pmsplat.align import similarity_align
    from pmsplat.loss import pm_loss, pm_loss_details

    g = torch.Generator().manual_seed(5)
    v, u = torch.meshgrid(torch.linspace(-0.6, 0.6, 16), torch.linspace(-1, 1, 24), indexing="ij")
    depth = 2 + 0.3 * torch.sin(3 * u) * torch.cos(2 * v) + 0.3 * ((u > 0.3) & (v < 0)).float()
    surface = torch.stack([u * depth, v * depth, depth], -1).reshape(1, -1, 3).double()
    pred = surface + 0.005 * torch.randn(surface.shape, generator=g, dtype=torch.float64)
    teacher = 0.4 * (surface + 0.01 * torch.randn(surface.shape, generator=g, dtype=torch.float64)) + 1.0
    assert auto_method(pred.shape[1], teacher.shape[1], "cpu") == "pykdtree"
    details = pm_loss_details(pred, teacher)
    aligned, _ = similarity_align(teacher, pred)
    np.testing.assert_allclose(details.aligned_teacher.detach().numpy(), aligned.detach().numpy(), rtol=1e-10, atol=1e-12)
    expected = _truth(pred, aligned.detach()).mean(1)
    np.testing.assert_allclose(details.raw.detach().numpy(), expected, rtol=1e-12)
    loss_brute = pm_loss(pred, teacher, knn_method="brute")
    torch.testing.assert_close(pm_loss(pred, teacher), loss_brute, rtol=1e-12, atol=0)
