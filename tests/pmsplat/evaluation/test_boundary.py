"""Depth-boundary band and masked PSNR against hand-made cases and scipy / closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from pmsplat.errors import InputError
from pmsplat.evaluation import camera_z_depth, depth_boundary_mask, depth_edges, masked_psnr
from splatcore.evaluation import compute_psnr


def _square_scene(height=16, width=20, top=5, left=6, size=4):
    depth = torch.full((1, height, width), 3.0)
    depth[0, top : top + size, left : left + size] = 1.0
    return depth


def _reference_band(depth: torch.Tensor, band_px: int) -> np.ndarray:
    """Pixels with a 4-neighbour of a different depth label, dilated by a square of side 2b+1."""
    square = (depth[0] == 1.0).numpy()
    cross = ndimage.generate_binary_structure(2, 1)
    edges = ndimage.binary_dilation(square, cross) & ~ndimage.binary_erosion(square, cross, border_value=1)
    if band_px == 0:
        return edges
    return ndimage.binary_dilation(edges, np.ones((2 * band_px + 1,) * 2, dtype=bool))


def test_square_edges_are_the_inner_and_outer_rings():
    depth = _square_scene()
    edges = depth_edges(depth, rel_jump=0.1)[0].numpy()
    # 4x4 square: 12 pixels on its inner ring, 16 outside it sharing an edge (no diagonals).
    assert edges.sum() == 12 + 16
    assert edges[5, 6] and edges[4, 6] and not edges[4, 5] and not edges[6, 7]
    np.testing.assert_array_equal(edges, _reference_band(depth, 0))


@pytest.mark.parametrize("band_px", [1, 2, 3])
def test_band_equals_scipy_dilation(band_px):
    depth = _square_scene()
    mask = depth_boundary_mask(depth, rel_jump=0.1, band_px=band_px)
    np.testing.assert_array_equal(mask[0].numpy(), _reference_band(depth, band_px))


def test_band_at_image_border_and_batch_independence():
    a = _square_scene(top=0, left=0)  # square touching the corner: dilation clips at the border
    b = _square_scene()
    mask = depth_boundary_mask(torch.cat([a, b]), band_px=2)
    np.testing.assert_array_equal(mask[0].numpy(), _reference_band(a, 2))
    np.testing.assert_array_equal(mask[1].numpy(), _reference_band(b, 2))


def test_smooth_ramp_has_no_boundary_and_threshold_is_relative():
    ramp = torch.linspace(1.0, 2.0, 64).repeat(1, 8, 1)  # neighbour ratio < 1.6 %
    assert not depth_boundary_mask(ramp, rel_jump=0.1).any()
    # A jump of 1 -> 1.15 is 15 %: found at rel_jump 0.1, not at 0.2; scaling depths changes nothing.
    step = torch.ones(1, 6, 6)
    step[..., 3:] = 1.15
    assert depth_edges(step, rel_jump=0.1).sum() == 12
    assert not depth_edges(step, rel_jump=0.2).any()
    assert torch.equal(depth_edges(step * 7.0, rel_jump=0.1), depth_edges(step, rel_jump=0.1))


def test_boundary_mask_rejects_non_depth_input():
    with pytest.raises(InputError, match="positive"):
        depth_boundary_mask(torch.zeros(1, 4, 4))
    with pytest.raises(InputError, match="NaN"):
        depth_boundary_mask(torch.full((1, 4, 4), float("nan")))


def test_masked_psnr_closed_form_and_full_mask(rng):
    gt = torch.rand(2, 3, 10, 12, generator=rng)
    pred = torch.rand(2, 3, 10, 12, generator=rng)
    mask = torch.rand(2, 10, 12, generator=rng) > 0.6
    ours = masked_psnr(gt, pred, mask).double().numpy()
    for b in range(2):
        diff = (gt[b] - pred[b]).double().numpy()[:, mask[b].numpy()]
        assert ours[b] == pytest.approx(-10 * math.log10((diff**2).mean()), rel=1e-5)
    full = torch.ones(2, 10, 12, dtype=torch.bool)
    torch.testing.assert_close(masked_psnr(gt, pred, full), compute_psnr(gt, pred))


def test_masked_psnr_only_counts_masked_pixels():
    gt = torch.zeros(1, 3, 8, 8)
    pred = torch.zeros(1, 3, 8, 8)
    pred[..., :4] = 0.1  # error only on the left half
    left = torch.zeros(1, 8, 8, dtype=torch.bool)
    left[..., :4] = True
    assert masked_psnr(gt, pred, left).item() == pytest.approx(20.0, rel=1e-5)  # -10 log10(0.01)
    assert math.isinf(masked_psnr(gt, pred, ~left).item())


def test_masked_psnr_empty_mask_rule():
    gt = torch.rand(2, 3, 8, 8)
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[1, 2, 2] = True
    values = masked_psnr(gt, gt * 0.5, mask)
    assert math.isnan(values[0].item()) and math.isfinite(values[1].item())
    with pytest.raises(InputError, match=r"batch element\(s\) \[0\]"):
        masked_psnr(gt, gt * 0.5, mask, empty="raise")


def test_invalid_pixels_are_ignored():
    depth = _square_scene()
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[0, :, :8] = False  # hides the square's left column and everything left of it
    depth_with_holes = torch.where(valid, depth, torch.full_like(depth, -5.0))
    edges = depth_edges(depth_with_holes, valid=valid)
    expected = _pairs_inside(valid[0])
    assert 0 < expected.sum() < _reference_band(depth, 0).sum()  # some edges hidden, some kept
    np.testing.assert_array_equal(edges[0].numpy(), expected)
    with pytest.raises(InputError, match="positive"):
        depth_edges(depth_with_holes)


def _pairs_inside(valid: torch.Tensor) -> np.ndarray:
    """Reference edges restricted to pairs of valid pixels, written out pixel by pixel."""
    square = np.zeros(valid.shape, dtype=bool)
    square[5:9, 6:10] = True
    v = valid.numpy()
    out = np.zeros_like(v)
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                k, m = i + di, j + dj
                if 0 <= k < v.shape[0] and 0 <= m < v.shape[1] and v[i, j] and v[k, m] and square[i, j] != square[k, m]:
                    out[i, j] = True
    return out


def test_camera_z_depth_inverts_unprojection(rng):
    from scipy.spatial.transform import Rotation

    height, width = 5, 6
    z = torch.rand(1, height, width, generator=rng, dtype=torch.float64) * 3 + 1
    rays = torch.randn(1, height, width, 3, generator=rng, dtype=torch.float64)
    rays[..., 2] = 1.0  # camera-frame directions with z = 1
    c2w = torch.eye(4, dtype=torch.float64)[None]
    c2w[0, :3, :3] = torch.from_numpy(Rotation.from_euler("xyz", [0.3, -0.7, 1.1]).as_matrix())
    c2w[0, :3, 3] = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    camera_points = rays * z[..., None]
    world = camera_points @ c2w[0, :3, :3].T + c2w[0, :3, 3]
    torch.testing.assert_close(camera_z_depth(world, c2w), z)
