"""similarity_align against scikit-image's Umeyama estimator, closed-form cases and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from skimage.transform import EuclideanTransform, SimilarityTransform as SkSimilarity

from pmsplat.align import SimilarityTransform, similarity_align
from pmsplat.errors import DegenerateInputError, InputError


def _random_similarity(rng: np.random.Generator, reflect: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
    rotation = Rotation.random(random_state=rng).as_matrix()
    if reflect:
        rotation = rotation @ np.diag([1.0, 1.0, -1.0])
    return float(rng.uniform(0.2, 5.0)), rotation, rng.normal(size=3) * 3


def _skimage_fit(source: np.ndarray, target: np.ndarray, scale: bool = True) -> np.ndarray:
    estimator = SkSimilarity if scale else EuclideanTransform
    return estimator.from_estimate(source, target).params if hasattr(estimator, "from_estimate") else _legacy(estimator, source, target)


def _legacy(estimator, source, target):  # scikit-image < 0.26
    tf = estimator(dimensionality=3)
    assert tf.estimate(source, target)
    return tf.params


def _as_matrix(transform: SimilarityTransform, b: int) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = transform.scale[b].item() * transform.rotation[b].double().numpy()
    m[:3, 3] = transform.translation[b].double().numpy()
    return m


@pytest.mark.parametrize("reflect", [False, True])
def test_matches_skimage_on_noisy_similarities(reflect: bool) -> None:
    rng = np.random.default_rng(1)
    batch, count = 4, 200
    sources, targets = [], []
    for _ in range(batch):
        s, r, t = _random_similarity(rng, reflect)
        x = rng.normal(size=(count, 3)) * rng.uniform(0.5, 2, size=3)
        sources.append(x)
        targets.append(s * x @ r.T + t + rng.normal(scale=0.3, size=(count, 3)))
    source = torch.tensor(np.stack(sources))
    target = torch.tensor(np.stack(targets))
    aligned, transform = similarity_align(source, target)
    for b in range(batch):
        reference = _skimage_fit(sources[b], targets[b])
        np.testing.assert_allclose(_as_matrix(transform, b), reference, atol=1e-9, rtol=0)
        expected = sources[b] @ reference[:3, :3].T + reference[:3, 3]
        np.testing.assert_allclose(aligned[b].numpy(), expected, atol=1e-9, rtol=0)
    determinant = torch.linalg.det(transform.rotation)
    torch.testing.assert_close(determinant, torch.ones(batch, dtype=torch.float64), atol=1e-12, rtol=0)
    assert bool((transform.scale > 0).all())


def test_exact_recovery_of_known_transform() -> None:
    rng = np.random.default_rng(2)
    params = [_random_similarity(rng) for _ in range(3)]
    x = rng.normal(size=(3, 50, 3))
    y = np.stack([s * x[b] @ r.T + t for b, (s, r, t) in enumerate(params)])
    aligned, transform = similarity_align(torch.tensor(x), torch.tensor(y))
    for b, (s, r, t) in enumerate(params):
        assert transform.scale[b].item() == pytest.approx(s, abs=1e-12)
        np.testing.assert_allclose(transform.rotation[b].numpy(), r, atol=1e-12)
        np.testing.assert_allclose(transform.translation[b].numpy(), t, atol=1e-11)
    np.testing.assert_allclose(aligned.numpy(), y, atol=1e-11)
    torch.testing.assert_close(transform.apply(torch.tensor(x)), aligned, atol=1e-12, rtol=0)


def test_reflected_target_gives_proper_rotation_matching_skimage() -> None:
    """A mirror image cannot be reached by a rotation: the fit must stay a rotation (det +1)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 40, 3)) * np.array([3.0, 2.0, 1.0])
    y = x * np.array([1.0, 1.0, -1.0])
    _, transform = similarity_align(torch.tensor(x), torch.tensor(y))
    assert torch.linalg.det(transform.rotation[0]).item() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(_as_matrix(transform, 0), _skimage_fit(x[0], y[0]), atol=1e-9)
    # Without the sign fix the SVD solution would be the reflection itself: make sure it is not.
    assert not np.allclose(transform.rotation[0].numpy(), np.diag([1.0, 1.0, -1.0]), atol=1e-3)


def test_rigid_mode_matches_skimage_euclidean() -> None:
    rng = np.random.default_rng(4)
    s, r, t = _random_similarity(rng)
    x = rng.normal(size=(60, 3))
    y = s * x @ r.T + t + rng.normal(scale=0.1, size=(60, 3))
    _, transform = similarity_align(torch.tensor(x[None]), torch.tensor(y[None]), with_scale=False)
    assert transform.scale.item() == 1.0
    np.testing.assert_allclose(_as_matrix(transform, 0), _skimage_fit(x, y, scale=False), atol=1e-9)


def test_integer_weights_equal_repeated_points_and_mask_equals_subset() -> None:
    rng = np.random.default_rng(5)
    count = 80
    x = rng.normal(size=(count, 3))
    s, r, t = _random_similarity(rng)
    y = s * x @ r.T + t + rng.normal(scale=0.5, size=(count, 3))
    weights = rng.integers(0, 4, size=count).astype(float)
    repeated = np.repeat(np.arange(count), weights.astype(int))
    _, transform = similarity_align(torch.tensor(x[None]), torch.tensor(y[None]), torch.tensor(weights[None]))
    np.testing.assert_allclose(_as_matrix(transform, 0), _skimage_fit(x[repeated], y[repeated]), atol=1e-9)

    mask = rng.random(count) < 0.6
    x_bad = x.copy()
    x_bad[~mask] = np.nan  # masked points may hold anything
    _, masked = similarity_align(torch.tensor(x_bad[None]), torch.tensor(y[None]), mask=torch.tensor(mask[None]))
    np.testing.assert_allclose(_as_matrix(masked, 0), _skimage_fit(x[mask], y[mask]), atol=1e-9)


def test_batch_is_solved_jointly_like_one_by_one_and_keeps_dtype() -> None:
    torch.manual_seed(6)
    x = torch.randn(5, 30, 3)
    y = 2.0 * x.flip(-1) + torch.randn(5, 30, 3) * 0.1
    aligned, transform = similarity_align(x, y)
    assert aligned.dtype == torch.float32 and transform.rotation.dtype == torch.float32
    for b in range(5):
        one, single = similarity_align(x[b : b + 1], y[b : b + 1])
        torch.testing.assert_close(one[0], aligned[b])
        torch.testing.assert_close(single.scale[0], transform.scale[b])


def test_gradcheck_through_the_fit() -> None:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(2, 6, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    y = torch.randn(2, 6, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    w = torch.rand(2, 6, dtype=torch.float64, generator=generator) + 0.5

    def aligned(source, target):
        return similarity_align(source, target, w)[0]

    assert torch.autograd.gradcheck(aligned, (x, y), eps=1e-6, atol=1e-6)


def test_detach_fit_stops_gradient_into_target_only() -> None:
    torch.manual_seed(8)
    x = torch.randn(1, 20, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(1, 20, 3, dtype=torch.float64, requires_grad=True)
    aligned, transform = similarity_align(x, y, detach_fit=True)
    aligned.square().sum().backward()
    assert y.grad is None
    # d/dx sum |sRx + t|^2 with (s, R, t) constant: 2 s R^T (sRx + t)
    expected = 2 * transform.scale[0] * aligned.detach()[0] @ transform.rotation[0]
    torch.testing.assert_close(x.grad[0], expected)
    aligned2, _ = similarity_align(x, y)
    grad_y = torch.autograd.grad(aligned2.square().sum(), y)[0]
    assert grad_y.abs().max() > 1e-3  # the default lets gradients reach the target


def test_degenerate_inputs_raise_naming_the_batch_element() -> None:
    torch.manual_seed(9)
    good = torch.randn(3, 10, 3, dtype=torch.float64)
    target = torch.randn(3, 10, 3, dtype=torch.float64)

    identical = good.clone()
    identical[1] = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    with pytest.raises(DegenerateInputError, match=r"'source'.*identical.*\[1\]"):
        similarity_align(identical, target)

    collinear = good.clone()
    collinear[2] = torch.linspace(0, 1, 10, dtype=torch.float64)[:, None] * torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    with pytest.raises(DegenerateInputError, match=r"collinear.*\[2\]"):
        similarity_align(collinear, target)
    with pytest.raises(DegenerateInputError, match=r"'target'.*collinear.*\[2\]"):
        similarity_align(target, collinear)

    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, 2:] = False
    with pytest.raises(DegenerateInputError, match=r"fewer than 3.*\[0\]"):
        similarity_align(good, target, mask=mask)

    weights = torch.ones(3, 10, dtype=torch.float64)
    weights[1] = 0
    with pytest.raises(DegenerateInputError, match=r"\[1\]"):
        similarity_align(good, target, weights)


def test_nearly_degenerate_but_valid_input_is_accepted_and_finite() -> None:
    """Points on a thin slab (planar up to 1e-3) are fine: no error, no NaN, exact recovery."""
    torch.manual_seed(10)
    x = torch.randn(1, 100, 3, dtype=torch.float64) * torch.tensor([1.0, 1.0, 1e-3], dtype=torch.float64)
    y = 3.0 * x + 1.0
    _, transform = similarity_align(x, y)
    assert transform.scale.item() == pytest.approx(3.0, abs=1e-9)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"source": torch.zeros(2, 5, 2), "target": torch.zeros(2, 5, 2)}, "'source' must have shape"),
        ({"source": torch.zeros(2, 5, 3), "target": torch.zeros(2, 6, 3)}, "same shape"),
        ({"source": torch.zeros(2, 5, 3), "target": torch.zeros(2, 5, 3, dtype=torch.float64)}, "dtype and device"),
        ({"source": torch.zeros(0, 5, 3), "target": torch.zeros(0, 5, 3)}, "empty"),
        ({"source": torch.zeros(2, 5, 3, dtype=torch.int64), "target": torch.zeros(2, 5, 3, dtype=torch.int64)}, "floating"),
        ({"source": torch.zeros(2, 5, 3), "target": torch.zeros(2, 5, 3), "weights": torch.ones(2, 4)}, "'weights'"),
        ({"source": torch.zeros(2, 5, 3), "target": torch.zeros(2, 5, 3), "weights": -torch.ones(2, 5)}, "non-negative"),
        ({"source": torch.zeros(2, 5, 3), "target": torch.zeros(2, 5, 3), "mask": torch.ones(2, 5)}, "'mask'"),
        ({"source": torch.zeros(2, 5, 3), "target": torch.zeros(2, 5, 3, device="meta")}, "device"),
    ],
)
def test_bad_input_is_rejected(kwargs, match) -> None:
    with pytest.raises(InputError, match=match):
        similarity_align(**kwargs)
