"""The torch rasteriser's forward pass and analytic backward against autograd through an
independent sequential compositor.

The reference is written straight from the upstream per-pixel rule (upstream-facts section 9):
every pixel of the image, every visible Gaussian in (depth, index) order, one at a time, with
T * (1 - alpha) < 1e-4 stopping the pixel, no tiles, no footprint boxes, no cumulative products;
its gradients come from autograd. The rasteriser under test uses tile bins, dense blocks with a
cumulative product, tile dropping, a sort of the saved pairs and a hand-written backward.
"""

from __future__ import annotations

import pytest
import torch

from splatcore.decoder.projection import project_gaussians
from splatcore.decoder.rasterize_torch import rasterize_torch

F64 = torch.float64


def sequential_composite(means2d, conics, opacities, features, depths, visible, shape):
    """(features (I, H, W, C), alpha (I, H, W), T (I, H, W)), differentiable by autograd."""
    height, width = shape
    num_images, count, channels = features.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means2d.dtype) + 0.5, torch.arange(width, dtype=means2d.dtype) + 0.5, indexing="ij"
    )
    out_f, out_a, out_t = [], [], []
    for i in range(num_images):
        order = sorted((k for k in range(count) if visible[i, k]), key=lambda k: (float(depths[i, k]), k))
        transmittance = torch.ones(height, width, dtype=means2d.dtype)
        done = torch.zeros(height, width, dtype=torch.bool)
        acc_f = torch.zeros(height, width, channels, dtype=means2d.dtype)
        acc_a = torch.zeros(height, width, dtype=means2d.dtype)
        for k in order:
            dx = means2d[i, k, 0] - xs
            dy = means2d[i, k, 1] - ys
            a, b, c = conics[i, k]
            sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
            alpha = torch.clamp_max(opacities[i, k] * torch.exp(-sigma), 0.99)
            use = ~done & (sigma >= 0) & (alpha >= 1.0 / 255.0)
            test = transmittance * (1.0 - alpha)
            stop = use & (test < 1e-4)
            done = done | stop
            use = use & ~stop
            weight = torch.where(use, alpha * transmittance, torch.zeros_like(alpha))
            acc_f = acc_f + weight[..., None] * features[i, k]
            acc_a = acc_a + weight
            transmittance = torch.where(use, test, transmittance)
        out_f.append(acc_f)
        out_a.append(acc_a)
        out_t.append(transmittance)
    return torch.stack(out_f), torch.stack(out_a), torch.stack(out_t)


def projected_scene(seed: int, count: int, shape: tuple[int, int], dtype=F64, images: int = 2):
    """Random Gaussians seen by ``images`` cameras: overlaps, early stops, capped alphas,
    Gaussians partly or fully off the image, a culled one behind the camera."""
    g = torch.Generator().manual_seed(seed)
    height, width = shape
    means = torch.randn(images, count, 3, generator=g, dtype=F64) * torch.tensor([0.9, 0.7, 0.4], dtype=F64)
    means[..., 2] += 3.0
    means[:, 0] = torch.tensor([0.0, 0.0, -1.0], dtype=F64)  # behind the camera: culled
    means[:, 1] = torch.tensor([1.8, 0.2, 3.0], dtype=F64)  # mostly off the image
    q, _ = torch.linalg.qr(torch.randn(images, count, 3, 3, generator=g, dtype=F64))
    scales = torch.rand(images, count, 3, generator=g, dtype=F64) * 0.2 + 0.03
    cov = q @ torch.diag_embed(scales**2) @ q.transpose(-1, -2)
    opacities = torch.rand(images, count, generator=g, dtype=F64) * 0.6 + 0.2
    # An opaque stack on the view axis: pixels there stop early; two Gaussians above the cap.
    means[:, 2:10] = torch.tensor([0.1, -0.05, 2.5], dtype=F64) + 0.03 * torch.randn(images, 8, 3, generator=g, dtype=F64)
    means[:, 2:10, 2] += torch.arange(8, dtype=F64) * 0.15
    cov[:, 2:10] = torch.eye(3, dtype=F64) * 0.06
    opacities[:, 2:10] = 0.97
    opacities[:, 10:12] = 0.999
    opacities[:, 12] = 0.003  # below 1/255: culled
    viewmats = torch.eye(4, dtype=F64).expand(images, 4, 4).clone()
    viewmats[1:, :3, 3] = torch.tensor([0.2, -0.1, 0.1], dtype=F64)
    pixel_k = torch.tensor([[0.9 * width, 0, width / 2], [0, 1.0 * height, height / 2], [0, 0, 1]], dtype=F64)
    projected = project_gaussians(
        means, cov, opacities, viewmats, pixel_k.expand(images, 3, 3), shape, near_cull=0.2
    )
    features = torch.randn(images, count, 4, generator=g, dtype=F64)
    means2d = projected.means2d.detach().clone()
    means2d[:, 10] = torch.tensor([1.5, 1.5], dtype=F64)  # on a pixel centre: o exp(0) > 0.99, capped
    leaves = [
        t.detach().to(dtype).clone().requires_grad_(True) for t in (means2d, projected.conics, opacities, features)
    ]
    fixed = (projected.depths.detach().to(dtype), projected.radius.to(dtype), projected.visible)
    return leaves, fixed


def losses(outputs, seed: int):
    g = torch.Generator().manual_seed(seed)
    weights = [torch.rand(o.shape, generator=g, dtype=F64).to(o.dtype) - 0.3 for o in outputs]
    return sum((o * w).sum() for o, w in zip(outputs, weights))


CONFIGS = [
    dict(tile_size=4),
    dict(tile_size=5, max_chunk_elements=25 * 3),  # blocks of 3 Gaussians: multi-block, tile drops
    dict(tile_size=16),
    dict(tile_size=1, max_chunk_elements=2),  # one pixel per tile, blocks of 2
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_forward_and_analytic_gradients_match_sequential_autograd(cfg):
    shape = (13, 17)
    leaves, (depths, radius, visible) = projected_scene(0, 40, shape)
    assert not visible[:, 0].any() and not visible[:, 12].any() and visible[:, 10].all()
    expected = sequential_composite(*leaves, depths, visible, shape)
    expected_grads = torch.autograd.grad(losses(expected, 1), leaves)
    assert (expected[2] < 1e-3).any() and (expected[1] == 0).any()  # early-stopped and empty pixels

    got = rasterize_torch(*leaves, depths, radius, visible, shape, **cfg)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    grads = torch.autograd.grad(losses(got, 1), leaves)
    for name, a, b in zip(("means2d", "conics", "opacities", "features"), grads, expected_grads):
        assert b.abs().sum() > 0, name
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)


def test_float32_matches_the_float64_reference():
    shape = (12, 12)
    leaves, (depths, radius, visible) = projected_scene(3, 30, shape, dtype=torch.float32)
    got = rasterize_torch(*leaves, depths, radius, visible, shape, tile_size=4)
    reference_leaves = [t.detach().double().requires_grad_(True) for t in leaves]
    expected = sequential_composite(*reference_leaves, depths.double(), visible, shape)
    for a, b in zip(got, expected):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=0, atol=2e-5)
    grads = torch.autograd.grad(losses(got, 2), leaves)
    expected_grads = torch.autograd.grad(losses(expected, 2), reference_leaves)
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a.double(), b, rtol=1e-3, atol=2e-4)
    assert torch.isfinite(grads[2]).all()


def test_gradcheck_of_the_composite_function_with_cap_and_early_stop():
    shape = (6, 7)
    leaves, (depths, radius, visible) = projected_scene(5, 14, shape, images=1)

    def function(means2d, conics, opacities, features):
        out = rasterize_torch(means2d, conics, opacities, features, depths, radius, visible, shape, tile_size=3)
        return out

    assert torch.autograd.gradcheck(function, tuple(leaves), eps=1e-7, atol=1e-6, rtol=1e-5, fast_mode=True)


def test_only_alpha_or_transmittance_in_the_loss_and_empty_scenes():
    shape = (9, 9)
    leaves, (depths, radius, visible) = projected_scene(7, 20, shape)
    features, alpha, transmittance = rasterize_torch(*leaves, depths, radius, visible, shape, tile_size=4)
    (grad_means,) = torch.autograd.grad(alpha.sum(), leaves[:1], retain_graph=True)
    expected = sequential_composite(*leaves, depths, visible, shape)
    (expected_means,) = torch.autograd.grad(expected[1].sum(), leaves[:1])
    torch.testing.assert_close(grad_means, expected_means, rtol=1e-9, atol=1e-11)
    (grad_opacity,) = torch.autograd.grad(transmittance.sum(), leaves[2:3])
    assert grad_opacity[visible].abs().sum() > 0

    nothing = torch.zeros_like(visible)
    features, alpha, transmittance = rasterize_torch(*leaves, depths, radius, nothing, shape)
    assert torch.all(features == 0) and torch.all(alpha == 0) and torch.all(transmittance == 1)
    grads = torch.autograd.grad(features.sum() + alpha.sum() + transmittance.sum(), leaves, allow_unused=True)
    assert all(g is None or torch.all(g == 0) for g in grads)


def test_no_graph_is_kept_without_gradients():
    shape = (10, 11)
    leaves, (depths, radius, visible) = projected_scene(9, 25, shape)
    with torch.no_grad():
        outputs = rasterize_torch(*leaves, depths, radius, visible, shape)
    assert all(o.grad_fn is None for o in outputs)
    expected = sequential_composite(*[t.detach() for t in leaves], depths, visible, shape)
    for a, b in zip(outputs, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_tile_culling_keeps_every_tile_with_a_visible_pixel():
    """Brute force over the pixel centres of each (tile, Gaussian) pair: a pair is dropped only
    when alpha < 1/255 at all of them, and the ellipse test does drop corner tiles of the box."""
    from splatcore.decoder.tiling import _reaches_tile

    g = torch.Generator().manual_seed(13)
    count, tile = 4000, 4
    mean = torch.rand(count, 2, generator=g, dtype=F64) * 40
    q, _ = torch.linalg.qr(torch.randn(count, 2, 2, generator=g, dtype=F64))
    cov = q @ torch.diag_embed(torch.rand(count, 2, generator=g, dtype=F64) * 6 + 0.3) @ q.transpose(-1, -2)
    inv = torch.linalg.inv(cov)
    conic = torch.stack((inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 1]), dim=-1)
    opacity = torch.rand(count, generator=g, dtype=F64) * 0.99 + 0.01
    x0 = torch.floor(torch.rand(count, generator=g, dtype=F64) * 10) * tile + 0.5
    y0 = torch.floor(torch.rand(count, generator=g, dtype=F64) * 10) * tile + 0.5
    reach = _reaches_tile(mean, conic, opacity, (x0, x0 + tile - 1), (y0, y0 + tile - 1))
    offsets = torch.arange(tile, dtype=F64)
    px = (x0[:, None, None] + offsets[None, None, :]) - mean[:, 0, None, None]
    py = (y0[:, None, None] + offsets[None, :, None]) - mean[:, 1, None, None]
    a, b, c = (conic[:, i, None, None] for i in range(3))
    alpha = opacity[:, None, None] * torch.exp(-(0.5 * (a * px * px + c * py * py) + b * px * py))
    visible_somewhere = (alpha >= 1 / 255).flatten(1).any(1)
    assert torch.all(reach[visible_somewhere])
    dropped = (~reach).float().mean()
    assert 0.05 < dropped and torch.all(~visible_somewhere[~reach])
    # Tight: among the kept pairs, most do have a visible pixel.
    assert visible_somewhere[reach].float().mean() > 0.9
