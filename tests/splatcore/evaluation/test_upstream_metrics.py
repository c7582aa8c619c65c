"""PSNR and SSIM of splatcore.evaluation against closed forms and scikit-image called directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError
from skimage.metrics import structural_similarity

from splatcore.evaluation import compute_psnr, compute_ssim
from splatcore.errors import InputError


def test_psnr_closed_form_constant_offset(rng):
    gt = torch.rand(3, 3, 16, 20, generator=rng) * 0.5 + 0.25  # in [0.25, 0.75]: no clipping
    deltas = torch.tensor([0.01, 0.05, 0.2])
    pred = gt + deltas.reshape(3, 1, 1, 1)
    expected = -10 * np.log10(deltas.double().numpy() ** 2)
    np.testing.assert_allclose(compute_psnr(gt, pred).double().numpy(), expected, rtol=1e-5)


def test_psnr_clips_both_images_and_matches_float64_formula(rng):
    gt = torch.rand(2, 3, 12, 12, generator=rng) * 1.4 - 0.2
    pred = torch.rand(2, 3, 12, 12, generator=rng) * 1.4 - 0.2
    g = np.clip(gt.double().numpy(), 0, 1)
    p = np.clip(pred.double().numpy(), 0, 1)
    expected = -10 * np.log10(((g - p) ** 2).reshape(2, -1).mean(axis=1))
    np.testing.assert_allclose(compute_psnr(gt, pred).double().numpy(), expected, rtol=1e-5)
    # Values above 1 in the prediction where the target is 1 cost nothing after clipping.
    ones = torch.ones(1, 3, 8, 8)
    assert torch.isinf(compute_psnr(ones, ones + 0.5)).all()


def test_ssim_equals_skimage_on_unclipped_prediction(rng):
    gt = torch.rand(2, 3, 24, 30, generator=rng)
    pred = (gt + 0.3 * torch.randn(2, 3, 24, 30, generator=rng)).float()  # leaves [0, 1]
    assert pred.min() < 0 and pred.max() > 1
    ours = compute_ssim(gt, pred)
    for i in range(2):
        direct = structural_similarity(
            gt[i].numpy(), pred[i].numpy(), win_size=11, gaussian_weights=True,
            channel_axis=0, data_range=1.0,
        )
        clipped = structural_similarity(
            gt[i].numpy(), pred[i].clip(0, 1).numpy(), win_size=11, gaussian_weights=True,
            channel_axis=0, data_range=1.0,
        )
        assert ours[i].item() == pytest.approx(direct, abs=1e-6)
        assert abs(direct - clipped) > 1e-3  # so the test would notice a clipped prediction


def test_ssim_of_identical_images_is_one(rng):
    gt = torch.rand(1, 3, 16, 16, generator=rng)
    assert compute_ssim(gt, gt.clone()).item() == pytest.approx(1.0, abs=1e-6)


def test_bad_inputs_raise_clear_errors():
    # Under the test suite's jaxtyping hook the annotation catches the mismatch first.
    with pytest.raises((InputError, TypeCheckError)):
        compute_psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(InputError, match="NaN"):
        compute_psnr(torch.full((1, 3, 8, 8), float("nan")), torch.rand(1, 3, 8, 8))
    with pytest.raises(InputError, match="11x11"):
        compute_ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
