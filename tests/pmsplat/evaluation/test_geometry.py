"""Depth errors, point-to-surface distances and floating fraction against brute-force float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pmsplat.errors import InputError
from pmsplat.evaluation import depth_errors, floating_fraction, point_to_surface, scene_scale


def test_depth_errors_match_numpy_formulas(rng):
    gt = torch.rand(2, 6, 7, generator=rng) * 4 + 1
    pred = gt * (1 + 0.4 * (torch.rand(2, 6, 7, generator=rng) - 0.5))
    mask = torch.rand(2, 6, 7, generator=rng) > 0.3
    g, p, m = gt.double().numpy(), pred.double().numpy(), mask.numpy()
    pooled = depth_errors(pred, gt, mask)
    assert pooled["abs_rel"].ndim == 0
    assert float(pooled["abs_rel"]) == pytest.approx((np.abs(p - g) / g)[m].mean(), rel=1e-6)
    assert float(pooled["rmse"]) == pytest.approx(math.sqrt(((p - g) ** 2)[m].mean()), rel=1e-6)
    assert float(pooled["delta1"]) == pytest.approx((np.maximum(p / g, g / p) < 1.25)[m].mean(), rel=1e-9)
    per_image = depth_errors(pred, gt, mask, reduction="per_image")
    for b in range(2):
        assert float(per_image["rmse"][b]) == pytest.approx(math.sqrt(((p[b] - g[b]) ** 2)[m[b]].mean()), rel=1e-6)


def test_depth_errors_invalid_pixels_and_bad_predictions():
    gt = torch.tensor([[[2.0, 0.0, float("inf"), 4.0]]])
    pred = torch.tensor([[[2.0, 9.0, 9.0, -1.0]]])  # 2nd/3rd ignored (invalid gt); 4th negative
    errors = depth_errors(pred, gt)
    assert float(errors["delta1"]) == pytest.approx(0.5)  # the negative prediction is a miss
    assert float(errors["abs_rel"]) == pytest.approx((0 + 5 / 4) / 2)
    nothing = depth_errors(pred, gt, torch.zeros(1, 1, 4, dtype=torch.bool), reduction="per_image")
    assert all(math.isnan(float(v[0])) for v in nothing.values())


def test_point_to_surface_equals_brute_force(rng):
    pred = torch.randn(2, 300, 3, generator=rng)
    gt = torch.randn(2, 500, 3, generator=rng)
    brute = torch.cdist(pred.double(), gt.double()).min(dim=-1).values
    torch.testing.assert_close(point_to_surface(pred, gt), brute, rtol=1e-12, atol=1e-12)


def test_point_to_surface_respects_gt_mask(rng):
    gt = torch.randn(1, 50, 3, generator=rng)
    gt_mask = torch.rand(1, 50, generator=rng) > 0.5
    gt_with_nan = torch.where(gt_mask[..., None], gt, torch.full_like(gt, float("nan")))
    pred = torch.randn(1, 20, 3, generator=rng)
    brute = torch.cdist(pred.double(), gt[:, gt_mask[0]].double()).min(dim=-1).values
    torch.testing.assert_close(point_to_surface(pred, gt_with_nan, gt_mask=gt_mask), brute)
    with pytest.raises(InputError):
        point_to_surface(pred, gt_with_nan)


def _plane(n=21):
    axis = torch.linspace(-1, 1, n)
    x, y = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x, y, torch.zeros_like(x)], dim=-1).reshape(1, -1, 3)


def test_floating_fraction_on_a_plane():
    gt = _plane()
    on_surface = gt[:, ::7] + torch.tensor([0.0, 0.0, 0.01])
    floaters = torch.tensor([[[0.0, 0.0, 0.5], [0.3, -0.2, -0.8], [0.1, 0.1, 0.3]]])
    pred = torch.cat([on_surface, floaters], dim=1)
    expected = 3 / pred.shape[1]
    assert float(floating_fraction(pred, gt, 0.1)[0]) == pytest.approx(expected)
    # Relative: the plane's median radius times 0.2 lies between 0.01 and 0.3.
    scale = float(scene_scale(gt)[0])
    radii = gt[0].double().norm(dim=-1)
    assert scale == pytest.approx(float(radii.median()))
    assert float(floating_fraction(pred, gt, 0.2, relative=True)[0]) == pytest.approx(expected)
    assert float(floating_fraction(pred * 10, gt * 10, 0.2, relative=True)[0]) == pytest.approx(expected)
    # precomputed distances / scale (as the geometry scene metric passes them) give the same value
    reused = floating_fraction(pred, gt, 0.2, relative=True, distances=point_to_surface(pred, gt), scale=scene_scale(gt))
    assert torch.equal(reused, floating_fraction(pred, gt, 0.2, relative=True))
    with pytest.raises(InputError, match="threshold"):
        floating_fraction(pred, gt, 0.0)
