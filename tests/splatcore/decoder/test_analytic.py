"""Analytic cases of the splatting decoder (torch backend, float64): closed-form images."""

from __future__ import annotations

import math

import pytest
import torch

from splatcore.decoder import Decoder, DecoderSplattingCfg
from splatcore.decoder.cameras import get_fov, pixel_intrinsics
from splatcore.decoder.sh import SH_C0
from splatcore.types import Gaussians

F64 = torch.float64


def scene(
    means: list[list[float]],
    stds: list[float],
    opacities: list[float],
    colours: list[list[float]],
) -> Gaussians:
    """Isotropic Gaussians (one batch element) with view-independent colours (DC only)."""
    m = torch.tensor([means], dtype=F64)
    s = torch.tensor(stds, dtype=F64)
    cov = (s[:, None, None] ** 2 * torch.eye(3, dtype=F64))[None]
    harmonics = torch.zeros(1, len(stds), 3, 4, dtype=F64)
    harmonics[0, :, :, 0] = (torch.tensor(colours, dtype=F64) - 0.5) / SH_C0
    return Gaussians(m, cov, harmonics, torch.tensor([opacities], dtype=F64))


def camera(fx: float = 1.0, fy: float = 1.0, cx: float = 0.5, cy: float = 0.5, near: float = 1.0, far: float = 100.0):
    extrinsics = torch.eye(4, dtype=F64)[None, None]
    intrinsics = torch.tensor([[[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]]], dtype=F64)
    return extrinsics, intrinsics, torch.tensor([[near]], dtype=F64), torch.tensor([[far]], dtype=F64)


def render(gaussians, cam, shape, depth_mode=None, background=None, **cfg):
    decoder = Decoder(DecoderSplattingCfg(backend="torch", **cfg), background_color=background).to(F64)
    return decoder(gaussians, *cam, shape, depth_mode)


def pixel_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of every pixel (integer pixel-centre coordinates)."""
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=F64), torch.arange(width, dtype=F64), indexing="ij"
    )
    return rows, cols


def head_on_alpha(size: int, focal_px: float, z: float, std: float, opacity: float) -> torch.Tensor:
    """Closed-form alpha of an isotropic Gaussian on the optical axis of an odd-sized image."""
    rows, cols = pixel_grid(size, size)
    centre = (size - 1) / 2
    variance_2d = (focal_px * std / z) ** 2 + 0.3
    r2 = (rows - centre) ** 2 + (cols - centre) ** 2
    alpha = torch.clamp_max(opacity * torch.exp(-0.5 * r2 / variance_2d), 0.99)
    return torch.where(alpha >= 1 / 255, alpha, torch.zeros_like(alpha))


@pytest.mark.parametrize("opacity, std, num_capped", [(0.7, 0.15, 0), (1.0, 0.15, 1), (1.0, 1.0, 5)])
def test_single_isotropic_gaussian_head_on(opacity, std, num_capped):
    size, z, colour = 31, 4.0, [0.8, 0.5, 0.2]
    out = render(scene([[0, 0, z]], [std], [opacity], [colour]), camera(), (size, size), "depth")
    alpha = head_on_alpha(size, focal_px=size * 1.0, z=z, std=std, opacity=opacity)
    expected = torch.tensor(colour, dtype=F64)[:, None, None] * alpha
    torch.testing.assert_close(out.color[0, 0], expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.alpha[0, 0], alpha, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.depth[0, 0], z * alpha, rtol=0, atol=1e-12)
    # Peak at the centre pixel; alpha capped at 0.99.
    assert out.alpha[0, 0, 15, 15].item() == pytest.approx(min(opacity, 0.99), abs=1e-12)
    capped = (out.alpha[0, 0] >= 0.99 - 1e-12).sum().item()
    variance_2d = (size * std / z) ** 2 + 0.3
    rows, cols = pixel_grid(size, size)
    r2 = (rows - 15) ** 2 + (cols - 15) ** 2
    assert capped == int((opacity * torch.exp(-0.5 * r2 / variance_2d) >= 0.99).sum())
    assert capped == num_capped  # e.g. 5: the centre and its 4 neighbours reach the cap
    # Footprint: exactly the pixels with r^2 <= 2 var ln(255 o) are touched.
    covered = out.alpha[0, 0] > 0
    radius2 = 2 * variance_2d * math.log(255 * opacity)
    assert torch.equal(covered, r2 <= radius2)
    if std < 0.5:
        assert 20 < covered.sum() < size * size


def test_two_gaussians_front_to_back_and_occlusion():
    size = 31
    front = dict(z=3.0, std=0.1, opacity=0.6, colour=[1.0, 0.0, 0.0])
    back = dict(z=5.0, std=0.3, opacity=0.9, colour=[0.0, 1.0, 0.0])
    # Listed back first: the renderer must sort by depth.
    g = scene(
        [[0, 0, back["z"]], [0, 0, front["z"]]],
        [back["std"], front["std"]],
        [back["opacity"], front["opacity"]],
        [back["colour"], front["colour"]],
    )
    out = render(g, camera(), (size, size), "depth")
    a1 = head_on_alpha(size, size, front["z"], front["std"], front["opacity"])
    a2 = head_on_alpha(size, size, back["z"], back["std"], back["opacity"])
    c1 = torch.tensor(front["colour"], dtype=F64)[:, None, None]
    c2 = torch.tensor(back["colour"], dtype=F64)[:, None, None]
    torch.testing.assert_close(out.color[0, 0], c1 * a1 + c2 * a2 * (1 - a1), rtol=0, atol=1e-12)
    torch.testing.assert_close(out.alpha[0, 0], a1 + a2 * (1 - a1), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        out.depth[0, 0], front["z"] * a1 + back["z"] * a2 * (1 - a1), rtol=0, atol=1e-12
    )
    # Back-to-front compositing would give a different centre colour.
    wrong = c2 * a2 + c1 * a1 * (1 - a2)
    assert (out.color[0, 0, :, 15, 15] - wrong[:, 15, 15]).abs().max() > 0.1


def test_opaque_front_gaussian_occludes_the_back_one():
    g = scene([[0, 0, 6.0], [0, 0, 2.0]], [0.2, 0.5], [1.0, 1.0], [[0, 1, 0], [1, 0, 0]])
    out = render(g, camera(), (21, 21))
    centre = out.color[0, 0, :, 10, 10]
    # Front alpha 0.99 at the centre: the back Gaussian shows through with weight 0.01 * 0.99.
    torch.testing.assert_close(centre, torch.tensor([0.99, 0.01 * 0.99, 0], dtype=F64), rtol=0, atol=1e-12)


def test_early_stop_when_transmittance_would_drop_below_1e_4():
    # Five Gaussians on the axis, alpha at the centre pixel = opacity. T after 0.95^3-style steps:
    # 0.05, 0.0025, 1.25e-4; the 4th would give 6.25e-6 < 1e-4, so it and everything after it
    # (even the faint 5th, which alone would keep T >= 1e-4) are not composited.
    colours = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 1, 0]]
    opacities = [0.95, 0.95, 0.95, 0.95, 0.01]
    g = scene([[0, 0, 2.0 + k] for k in range(5)], [0.3] * 5, opacities, colours)
    out = render(g, camera(), (15, 15), "depth", background=[0.0, 0.0, 0.5])
    t = [1.0, 0.05, 0.0025, 1.25e-4]
    expected = sum(0.95 * t[k] * torch.tensor(colours[k], dtype=F64) for k in range(3))
    expected = expected + t[3] * torch.tensor([0.0, 0.0, 0.5], dtype=F64)
    torch.testing.assert_close(out.color[0, 0, :, 7, 7], expected, rtol=0, atol=1e-12)
    assert out.alpha[0, 0, 7, 7].item() == pytest.approx(1 - 1.25e-4, abs=1e-12)
    expected_depth = sum(0.95 * t[k] * (2.0 + k) for k in range(3))
    assert out.depth[0, 0, 7, 7].item() == pytest.approx(expected_depth, abs=1e-12)


def test_background_shows_through_with_the_final_transmittance():
    g = scene([[0, 0, 4.0]], [0.15], [0.7], [[0.8, 0.5, 0.2]])
    background = [0.2, 0.4, 0.6]
    out = render(g, camera(), (31, 31), "depth", background=background)
    alpha = head_on_alpha(31, 31, 4.0, 0.15, 0.7)
    bg = torch.tensor(background, dtype=F64)[:, None, None]
    expected = torch.tensor([0.8, 0.5, 0.2], dtype=F64)[:, None, None] * alpha + (1 - alpha) * bg
    torch.testing.assert_close(out.color[0, 0], expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.depth[0, 0], 4.0 * alpha, rtol=0, atol=1e-12)  # depth bg is 0
    torch.testing.assert_close(out.color[0, 0, :, 0, 0], bg[:, 0, 0], rtol=0, atol=0)


def test_background_comes_from_the_dataset_config_and_is_not_saved():
    class DatasetCfg:
        background_color = [1.0, 0.0, 0.5]

    decoder = Decoder(DecoderSplattingCfg(backend="torch"), DatasetCfg())
    assert decoder.background_color.tolist() == [1.0, 0.0, 0.5]
    assert "background_color" not in decoder.state_dict()
    assert Decoder().background_color.tolist() == [0.0, 0.0, 0.0]  # black by default
    empty = scene([[0, 0, -5.0]], [0.1], [0.5], [[1, 1, 1]])  # behind the camera: nothing drawn
    out = decoder.to(F64)(empty, *camera(), (4, 5))
    assert torch.equal(out.color[0, 0], torch.tensor([1.0, 0.0, 0.5], dtype=F64)[:, None, None].expand(3, 4, 5))
    assert torch.equal(out.alpha, torch.zeros(1, 1, 4, 5, dtype=F64))


@pytest.mark.parametrize(
    "z, near, scale_invariant, visible",
    [
        (0.399, 2.0, True, False),  # z <= 0.2 near
        (0.4, 2.0, True, False),  # exactly 0.2 near: culled (<=)
        (0.401, 2.0, True, True),
        (0.3, 2.0, False, True),  # without normalisation the cull is at 0.2 world units
        (0.2, 2.0, False, False),
        (0.21, 1.0, True, True),
    ],
)
def test_near_plane_culling(z, near, scale_invariant, visible):
    g = scene([[0, 0, z]], [0.01], [0.8], [[1, 1, 1]])
    out = render(g, camera(near=near), (9, 9), scale_invariant=scale_invariant)
    assert (out.alpha.max().item() > 0) == visible


def test_no_far_culling_and_scale_invariance():
    g = scene([[0.1, -0.05, 50.0], [0, 0, 8.0]], [2.0, 0.3], [0.8, 0.5], [[1, 0, 0], [0, 1, 1]])
    out = render(g, camera(near=1.0, far=10.0), (17, 17))
    both = render(g, camera(near=1.0, far=1000.0), (17, 17))
    torch.testing.assert_close(out.color, both.color, rtol=0, atol=0)  # far has no effect
    single = render(scene([[0, 0, 8.0]], [0.3], [0.5], [[0, 1, 1]]), camera(), (17, 17))
    assert (out.color - single.color).abs().max() > 0.05  # the far Gaussian is drawn
    rescaled = render(g, camera(near=3.0, far=10.0), (17, 17))
    torch.testing.assert_close(rescaled.color, out.color, rtol=0, atol=1e-12)


def test_pixel_centres_and_symmetric_frustum():
    # Even-sized image: the optical axis falls between the four central pixels.
    out = render(scene([[0, 0, 3.0]], [0.1], [0.9], [[1, 1, 1]]), camera(), (16, 16))
    block = out.alpha[0, 0, 7:9, 7:9]
    torch.testing.assert_close(block, block[0, 0].expand(2, 2), rtol=0, atol=1e-14)
    torch.testing.assert_close(out.alpha[0, 0], out.alpha[0, 0].flip(0).flip(1), rtol=0, atol=1e-14)
    # Off-axis: a mean projecting 3 px right and 2 px up of the centre peaks at that pixel.
    z, f = 4.0, 31.0
    g = scene([[3 * z / f, -2 * z / f, z]], [0.05], [0.9], [[1, 1, 1]])
    out = render(g, camera(), (31, 31))
    peak = torch.nonzero(out.alpha[0, 0] == out.alpha[0, 0].max())[0].tolist()
    assert peak == [13, 18]
    assert out.alpha[0, 0, 13, 18].item() == pytest.approx(0.9, abs=1e-12)


def test_principal_point_is_ignored_by_default_and_optional():
    g = scene([[0, 0, 4.0]], [0.05], [0.9], [[1, 1, 1]])
    width = 41
    cx = 25.5 / width  # true principal point at pixel column 25
    default = render(g, camera(cx=cx), (21, width))
    peak_default = default.alpha[0, 0].argmax().item() % width
    assert peak_default in (19, 20)  # symmetric frustum: the axis is at column (W - 1) / 2 = 20
    torch.testing.assert_close(default.alpha[0, 0], default.alpha[0, 0].flip(1), rtol=0, atol=1e-14)
    true_pp = render(g, camera(cx=cx), (21, width), use_principal_point=True)
    assert true_pp.alpha[0, 0, 10].argmax().item() == 25
    centred = camera()
    torch.testing.assert_close(
        render(g, centred, (21, width)).color,
        render(g, centred, (21, width), use_principal_point=True).color,
        rtol=0,
        atol=1e-12,
    )


def test_get_fov_and_symmetric_pixel_intrinsics():
    k = torch.tensor([[0.8, 0, 0.5], [0, 1.3, 0.5], [0, 0, 1]], dtype=F64)
    fov = get_fov(k)
    torch.testing.assert_close(fov, 2 * torch.atan(0.5 / torch.tensor([0.8, 1.3], dtype=F64)))
    off = torch.tensor([[0.8, 0, 0.3], [0, 1.3, 0.5], [0, 0, 1]], dtype=F64)
    expected_x = math.atan(0.3 / 0.8) + math.atan(0.7 / 0.8)
    assert get_fov(off)[0].item() == pytest.approx(expected_x, abs=1e-12)
    kp = pixel_intrinsics(off, (100, 200))
    assert kp[0, 0].item() == pytest.approx(200 / (2 * math.tan(expected_x / 2)), rel=1e-12)
    assert kp[0, 2].item() == 100.0 and kp[1, 2].item() == 50.0
    # The y field of view is the 3D angle between the rays through (0.5, 0) and (0.5, 1), which
    # the off-centre cx tilts out of the y-z plane.
    a = [(0.5 - 0.3) / 0.8, -0.5 / 1.3, 1.0]
    b = [(0.5 - 0.3) / 0.8, 0.5 / 1.3, 1.0]
    cos = sum(p * q for p, q in zip(a, b)) / math.sqrt(sum(p * p for p in a) * sum(q * q for q in b))
    expected_y = math.acos(cos)
    assert get_fov(off)[1].item() == pytest.approx(expected_y, abs=1e-12)
    assert kp[1, 1].item() == pytest.approx(100 / (2 * math.tan(expected_y / 2)), rel=1e-12)


@pytest.mark.parametrize(
    "mode, value",
    [
        ("depth", 4.0),
        ("disparity", 0.25),
        ("relative_disparity", (0.25 - 0.01) / (1.0 - 0.01)),
        ("log", math.log(100.0)),  # upstream's swapped min/max: log(far) for every Gaussian
    ],
)
def test_depth_modes_are_accumulated_not_normalised(mode, value):
    g = scene([[0, 0, 4.0]], [0.15], [0.7], [[0.8, 0.5, 0.2]])
    out = render(g, camera(near=1.0, far=100.0), (31, 31), mode)
    alpha = head_on_alpha(31, 31, 4.0, 0.15, 0.7)
    torch.testing.assert_close(out.depth[0, 0], value * alpha, rtol=0, atol=1e-12)
    normalised = render(g, camera(near=1.0, far=100.0), (31, 31), mode, normalize_depth=True)
    covered = alpha > 0
    torch.testing.assert_close(
        normalised.depth[0, 0][covered], torch.full_like(alpha[covered], value), rtol=0, atol=1e-12
    )
    assert torch.all(normalised.depth[0, 0][~covered] == 0)


def test_no_depth_requested_gives_none():
    out = render(scene([[0, 0, 4.0]], [0.15], [0.7], [[1, 1, 1]]), camera(), (8, 8))
    assert out.depth is None and out.alpha is not None
