"""pm_loss against an independent float64 reference (scipy cKDTree + scikit-image Umeyama)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from skimage.transform import SimilarityTransform as SkSimilarity

from pmsplat.errors import DegenerateInputError, InputError
from torch import Tensor

from pmsplat.loss import PMLossConfig, pm_loss, pm_loss_details, stabilise


def _reference(
    pred: np.ndarray,
    teacher: np.ndarray,
    *,
    confidence: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    bidirectional: bool = False,
    robust: str = "none",
    delta: float = 0.1,
    trim: float = 0.1,
    threshold: float | None = 100.0,
    scale_invariant: bool = False,
) -> np.ndarray:
    """Per-example PM-Loss computed independently, one example at a time, in float64.

    Integer confidences are realised by repeating points, so the weighted fit is scikit-image's
    unweighted estimator on the repeated set.
    """
    losses = []
    for b in range(pred.shape[0]):
        p, t = pred[b].astype(np.float64), teacher[b].astype(np.float64)
        valid = np.isfinite(t).all(-1)
        query = np.ones(len(p), bool) if mask is None else mask[b]
        valid &= query
        c = np.ones(len(p)) if confidence is None else confidence[b].astype(np.float64)
        repeat = np.repeat(np.flatnonzero(valid), c[valid].astype(int))
        params = SkSimilarity.from_estimate(t[repeat], p[repeat]).params
        with np.errstate(invalid="ignore"):  # NaN/inf teacher points stay non-finite
            aligned = t @ params[:3, :3].T + params[:3, 3]

        def term(values, weights):
            values = values ** 2
            if robust == "huber":
                d = np.sqrt(values)
                values = np.where(d <= delta, values, 2 * delta * d - delta**2)
            if robust == "trimmed":
                keep = math.ceil(len(values) * (1 - trim))
                order = np.argsort(values, kind="stable")[:keep]
                values, weights = values[order], weights[order]
            return (weights * values).sum() / weights.sum()

        teacher_index = np.flatnonzero(valid)
        # scale_invariant: distances in units of the prediction's RMS distance to its centroid
        unit = np.sqrt(((p[query] - p[query].mean(0)) ** 2).sum(-1).mean()) if scale_invariant else 1.0
        distance, j = cKDTree(aligned[valid]).query(p[query])
        loss = term(distance / unit, c[teacher_index[j]])
        if bidirectional:
            back, _ = cKDTree(p[query]).query(aligned[valid])
            loss += term(back / unit, c[valid])
        losses.append(loss)
    out = np.nan_to_num(np.array(losses), nan=0.0)
    if threshold:
        out = np.where(out > threshold, out * 1e-5, out)
    return out


def _similar(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s, r, t = rng.uniform(0.2, 4.0), Rotation.random(random_state=rng).as_matrix(), rng.normal(size=3) * 5
    return s * points @ r.T + t


def _problem(seed: int, batch: int = 3, count: int = 600, noise: float = 0.05):
    """A prediction (depth-map-like surface) and a teacher in another similarity frame + noise."""
    rng = np.random.default_rng(seed)
    uv = rng.uniform(-1, 1, size=(batch, count, 2))
    depth = 2 + 0.4 * np.sin(3 * uv[..., :1]) * np.cos(2 * uv[..., 1:])
    pred = np.concatenate([uv * depth, depth], -1)
    teacher = np.stack([_similar(pred[b] + rng.normal(scale=noise, size=pred[b].shape), rng) for b in range(batch)])
    return pred, teacher, rng


@pytest.mark.parametrize("method", ["brute", "kdtree", "grid"])
def test_default_loss_equals_independent_reference(method: str) -> None:
    pred, teacher, _ = _problem(0)
    loss = pm_loss(torch.tensor(pred), torch.tensor(teacher), knn_method=method)
    np.testing.assert_allclose(loss.numpy(), _reference(pred, teacher), rtol=1e-9)
    assert bool((loss > 1e-4).all())  # a real, non-trivial value


def test_float32_inputs_agree_with_the_float64_reference() -> None:
    pred, teacher, _ = _problem(1)
    loss = pm_loss(torch.tensor(pred).float(), torch.tensor(teacher).float())
    assert loss.dtype == torch.float32
    np.testing.assert_allclose(loss.double().numpy(), _reference(pred, teacher), rtol=1e-3)


def test_invariant_to_any_similarity_of_the_teacher() -> None:
    pred, teacher, rng = _problem(2)
    moved = np.stack([_similar(teacher[b], rng) for b in range(len(teacher))])
    a = pm_loss(torch.tensor(pred), torch.tensor(teacher))
    b = pm_loss(torch.tensor(pred), torch.tensor(moved))
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-14)


def test_exact_similarity_copy_gives_zero() -> None:
    pred, _, rng = _problem(3)
    copy = np.stack([_similar(pred[b], rng) for b in range(len(pred))])
    details = pm_loss_details(torch.tensor(pred), torch.tensor(copy))
    assert float(details.loss.abs().max()) < 1e-18
    np.testing.assert_allclose(details.aligned_teacher.numpy(), pred, atol=1e-10)


def test_large_loss_rule_and_threshold_off() -> None:
    pred, teacher, _ = _problem(4, noise=0.0)
    rng = np.random.default_rng(40)
    pred_noisy = pred * 30 + rng.normal(scale=20.0, size=pred.shape)  # world scale x30: loss >> 100
    raw = pm_loss(torch.tensor(pred_noisy), torch.tensor(teacher), ignore_large_loss=None)
    assert bool((raw > 100).all())
    np.testing.assert_allclose(raw.numpy(), _reference(pred_noisy, teacher, threshold=None), rtol=1e-9)
    details = pm_loss_details(torch.tensor(pred_noisy), torch.tensor(teacher))
    torch.testing.assert_close(details.loss, raw * 1e-5, rtol=1e-12, atol=0)
    assert bool(details.large.all())
    small = pm_loss(torch.tensor(pred_noisy), torch.tensor(teacher), ignore_large_loss=1e9)
    torch.testing.assert_close(small, raw, rtol=1e-12, atol=0)


def test_stabilise_nan_to_zero_and_large_rule() -> None:
    raw = torch.tensor([float("nan"), 1.0, 100.0, 250.0], dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match=r"NaN.*\[0\]"):
        loss, nan, large = stabilise(raw)
    torch.testing.assert_close(loss, torch.tensor([0.0, 1.0, 100.0, 250e-5], dtype=torch.float64))
    assert nan.tolist() == [True, False, False, False] and large.tolist() == [False, False, False, True]
    loss, _, large = stabilise(raw.nan_to_num(), None)
    assert not large.any() and loss[3] == 250.0


def test_nonfinite_teacher_points_are_excluded_and_counted_not_zeroed() -> None:
    pred, teacher, rng = _problem(5)
    bad = rng.random(teacher.shape[:2]) < 0.1
    poisoned = teacher.copy()
    poisoned[bad] = np.nan
    poisoned[bad & (rng.random(bad.shape) < 0.5)] = np.inf
    details = pm_loss_details(torch.tensor(pred), torch.tensor(poisoned))
    assert details.nonfinite_teacher.tolist() == bad.sum(1).tolist()
    assert not bool(details.nan.any())
    np.testing.assert_allclose(details.loss.numpy(), _reference(pred, poisoned), rtol=1e-9)
    assert bool((details.loss > 1e-4).all())


def test_valid_mask_matches_reference_on_the_subset() -> None:
    pred, teacher, rng = _problem(6)
    mask = rng.random(pred.shape[:2]) < 0.7
    pred_poisoned = pred.copy()
    pred_poisoned[~mask] = np.nan  # excluded pixels may hold anything
    loss = pm_loss(torch.tensor(pred_poisoned), torch.tensor(teacher), valid_mask=torch.tensor(mask))
    np.testing.assert_allclose(loss.numpy(), _reference(pred, teacher, mask=mask), rtol=1e-9)


def test_confidence_weighting_matches_repeated_points_reference() -> None:
    pred, teacher, rng = _problem(7, count=300)
    confidence = rng.integers(1, 4, size=pred.shape[:2]).astype(np.float64)
    loss = pm_loss(torch.tensor(pred), torch.tensor(teacher), confidence=torch.tensor(confidence))
    np.testing.assert_allclose(loss.numpy(), _reference(pred, teacher, confidence=confidence), rtol=1e-9)
    assert not np.allclose(loss.numpy(), _reference(pred, teacher), rtol=1e-6)


@pytest.mark.parametrize("robust", ["none", "huber", "trimmed"])
def test_bidirectional_and_robust_options_match_reference(robust: str) -> None:
    pred, teacher, _ = _problem(8, noise=0.1)
    kwargs = dict(robust=robust, huber_delta=0.05, trim_fraction=0.2)
    loss = pm_loss(torch.tensor(pred), torch.tensor(teacher), bidirectional=True, **kwargs)
    expected = _reference(pred, teacher, bidirectional=True, robust=robust, delta=0.05, trim=0.2)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-9)
    if robust != "none":
        single = pm_loss(torch.tensor(pred), torch.tensor(teacher), **kwargs)
        np.testing.assert_allclose(single.numpy(), _reference(pred, teacher, robust=robust, delta=0.05, trim=0.2), rtol=1e-9)
        assert bool((single < pm_loss(torch.tensor(pred), torch.tensor(teacher))).all())


def test_gradient_through_the_alignment_by_gradcheck() -> None:
    pred, teacher, _ = _problem(9, batch=2, count=12, noise=0.2)
    p = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(teacher)
    assert torch.autograd.gradcheck(lambda x: pm_loss(x, t, knn_method="brute"), (p,), eps=1e-6, atol=1e-6)


def test_stop_gradient_alignment_gives_the_plain_chamfer_gradient() -> None:
    pred, teacher, _ = _problem(10, batch=2, count=200, noise=0.2)
    p = torch.tensor(pred, requires_grad=True)
    details = pm_loss_details(p, torch.tensor(teacher), stop_gradient_alignment=True)
    details.loss.sum().backward()
    aligned = details.aligned_teacher.detach()
    tree_index = [cKDTree(aligned[b].numpy()).query(pred[b])[1] for b in range(2)]
    nearest = torch.stack([aligned[b, tree_index[b]] for b in range(2)])
    torch.testing.assert_close(p.grad, 2 * (p.detach() - nearest) / pred.shape[1])
    full = torch.autograd.grad(pm_loss(p, torch.tensor(teacher)).sum(), p)[0]
    assert (full - p.grad).abs().max() > 1e-6  # the default also differentiates the fit


def test_config_defaults_are_the_official_ones() -> None:
    cfg = PMLossConfig()
    assert (cfg.weight, cfg.ignore_large_loss, cfg.large_loss_factor) == (0.005, 100.0, 1e-5)
    assert not (cfg.bidirectional or cfg.confidence_weighting or cfg.stop_gradient_alignment)
    assert cfg.robust == "none"
    with pytest.raises(InputError, match="robust"):
        PMLossConfig(robust="cauchy")


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda p, t: (p[..., :2], t), "'pred_points'"),
        (lambda p, t: (p, t[:, :-1]), "'teacher_points' must have the shape"),
        (lambda p, t: (p, t.float()), "dtype and device"),
        (lambda p, t: (p, t.to("meta")), "dtype and device"),
        (lambda p, t: (p[:0], t[:0]), "empty"),
        (lambda p, t: (p.clone().index_fill_(1, torch.tensor([3]), float("nan")), t), "non-finite"),
        (lambda p, t: (p.clone().index_fill_(1, torch.tensor([3]), float("inf")), t), "non-finite"),
    ],
)
def test_bad_input_is_rejected(build, match) -> None:
    pred, teacher, _ = _problem(11, batch=2, count=20)
    p, t = build(torch.tensor(pred), torch.tensor(teacher))
    with pytest.raises(InputError, match=match):
        pm_loss(p, t)


def test_bad_options_and_masks_are_rejected() -> None:
    pred, teacher, _ = _problem(12, batch=2, count=20)
    p, t = torch.tensor(pred), torch.tensor(teacher)
    with pytest.raises(InputError, match="'confidence'"):
        pm_loss(p, t, confidence=torch.ones(2, 19, dtype=torch.float64))
    with pytest.raises(InputError, match="non-negative"):
        pm_loss(p, t, confidence=-torch.ones(2, 20, dtype=torch.float64))
    with pytest.raises(InputError, match="'valid_mask'"):
        pm_loss(p, t, valid_mask=torch.ones(2, 20))
    with pytest.raises(InputError, match="knn_method"):
        pm_loss(p, t, knn_method="faiss")
    with pytest.raises(DegenerateInputError, match=r"\[1\]"):
        mask = torch.ones(2, 20, dtype=torch.bool)
        mask[1, 2:] = False
        pm_loss(p, t, valid_mask=mask)


# ---------------------------------------------------------------- scale_invariant (off by default)


@pytest.mark.parametrize(
    "options",
    [{}, {"bidirectional": True}, {"robust": "huber", "huber_delta": 0.05}, {"robust": "trimmed", "trim_fraction": 0.2}],
)
def test_scale_invariant_matches_the_float64_reference(options) -> None:
    pred, teacher, _ = _problem(20, noise=0.1)
    reference_options = {
        "bidirectional": options.get("bidirectional", False), "robust": options.get("robust", "none"),
        "delta": options.get("huber_delta", 0.1), "trim": options.get("trim_fraction", 0.1),
    }
    loss = pm_loss(torch.tensor(pred), torch.tensor(teacher), scale_invariant=True, **options)
    expected = _reference(pred, teacher, scale_invariant=True, **reference_options)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-9)
    plain = _reference(pred, teacher, **reference_options)
    assert not np.allclose(expected, plain, rtol=1e-3)  # the option changes the value


def test_scale_invariant_with_a_valid_mask_matches_the_reference() -> None:
    pred, teacher, rng = _problem(21)
    mask = rng.random(pred.shape[:2]) < 0.6
    poisoned = pred.copy()
    poisoned[~mask] = np.nan  # excluded pixels must not enter the normaliser either
    loss = pm_loss(torch.tensor(poisoned), torch.tensor(teacher), valid_mask=torch.tensor(mask), scale_invariant=True)
    np.testing.assert_allclose(loss.numpy(), _reference(pred, teacher, mask=mask, scale_invariant=True), rtol=1e-9)


def test_scale_invariant_loss_does_not_change_when_the_prediction_is_scaled() -> None:
    pred, teacher, rng = _problem(22, noise=0.1)
    t = torch.tensor(teacher)
    base = pm_loss(torch.tensor(pred), t, scale_invariant=True, ignore_large_loss=None)
    official = pm_loss(torch.tensor(pred), t, ignore_large_loss=None)
    for s in (1e-3, 0.37, 2.5, 40.0):
        moved = np.stack([s * (pred[b] @ Rotation.random(random_state=rng).as_matrix().T) + rng.normal(size=3) * 3
                          for b in range(len(pred))])
        scaled = pm_loss(torch.tensor(moved), t, scale_invariant=True, ignore_large_loss=None)
        torch.testing.assert_close(scaled, base, rtol=1e-9, atol=0)
        # the official loss scales with the prediction's squared scale (what the option removes)
        torch.testing.assert_close(pm_loss(torch.tensor(moved), t, ignore_large_loss=None), official * s**2, rtol=1e-9, atol=0)


def test_scale_invariant_gradient_has_no_component_along_the_scaling_direction() -> None:
    pred, teacher, _ = _problem(23, batch=2, count=300, noise=0.1)
    p = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(teacher)
    radial = p.detach() - p.detach().mean(1, keepdim=True)  # d/ds of c + s (p - c) at s = 1

    def along_scaling(**options) -> Tensor:
        (grad,) = torch.autograd.grad(pm_loss(p, t, **options).sum(), p)
        return (grad * radial).sum((1, 2)) / (grad.norm(dim=(1, 2)) * radial.norm(dim=(1, 2)))

    assert float(along_scaling(scale_invariant=True).abs().max()) < 1e-10
    assert bool((along_scaling() > 1e-3).all())  # official loss: gradient descent shrinks the prediction


def test_scale_invariant_gradient_by_gradcheck() -> None:
    pred, teacher, _ = _problem(24, batch=2, count=12, noise=0.2)
    p = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(teacher)
    assert torch.autograd.gradcheck(lambda x: pm_loss(x, t, knn_method="brute", scale_invariant=True), (p,), eps=1e-6, atol=1e-6)


def test_scale_invariant_is_off_by_default_and_reaches_the_module() -> None:
    from pmsplat import PMLoss
    from pmsplat.teachers.tensor import TensorTeacher

    assert PMLossConfig().scale_invariant is False
    pred, teacher, _ = _problem(25, batch=1, count=64)
    points = torch.tensor(teacher).reshape(1, 1, 8, 8, 3)
    images = torch.rand(1, 1, 3, 8, 8, dtype=torch.float64)
    means = torch.tensor(pred)
    on = PMLoss(TensorTeacher(points), weight=1.0, scale_invariant=True, ignore_large_loss=None)(means, images)
    off = PMLoss(TensorTeacher(points), weight=1.0, ignore_large_loss=None)(means, images)
    np.testing.assert_allclose(float(on), _reference(pred, teacher, threshold=None, scale_invariant=True)[0], rtol=1e-9)
    np.testing.assert_allclose(float(off), _reference(pred, teacher, threshold=None)[0], rtol=1e-9)


def test_pykdtree_knn_method_is_accepted_and_matches_brute_force() -> None:
    pytest.importorskip("pykdtree")
    pred, teacher, _ = _problem(3, batch=2, count=50)
    p, t = torch.tensor(pred), torch.tensor(teacher)
    torch.testing.assert_close(pm_loss(p, t, knn_method="pykdtree"), pm_loss(p, t, knn_method="brute"))
