"""CUDA checks of the splatting decoder: gsplat backend vs torch backend (same Gaussians, float32),
and the torch backend on CUDA vs on CPU. Skipped without a CUDA device (see conftest.py)."""

from __future__ import annotations

import pytest
import torch

from splatcore.decoder import Decoder, DecoderSplattingCfg
from splatcore.types import Gaussians

pytestmark = pytest.mark.gpu


def random_scene(seed: int, device: str, dtype=torch.float32, max_opacity: float = 0.99):
    g = torch.Generator().manual_seed(seed)
    batch, views, count = 2, 2, 400
    means = torch.randn(batch, count, 3, generator=g, dtype=torch.float64) * torch.tensor([1.5, 1.0, 1.0], dtype=torch.float64)
    means[..., 2] += 4.0
    q, _ = torch.linalg.qr(torch.randn(batch, count, 3, 3, generator=g, dtype=torch.float64))
    scales = torch.rand(batch, count, 3, generator=g, dtype=torch.float64) * 0.15 + 0.01
    cov = q @ torch.diag_embed(scales**2) @ q.transpose(-1, -2)
    harmonics = torch.randn(batch, count, 3, 25, generator=g, dtype=torch.float64) * 0.3
    opacities = torch.rand(batch, count, generator=g, dtype=torch.float64) * max_opacity
    extrinsics = torch.eye(4, dtype=torch.float64).repeat(batch, views, 1, 1)
    extrinsics[:, 1, :3, 3] = torch.tensor([0.4, -0.1, 0.3], dtype=torch.float64)
    angle = torch.tensor(0.1, dtype=torch.float64)
    extrinsics[:, 1, 0, 0] = extrinsics[:, 1, 2, 2] = torch.cos(angle)
    extrinsics[:, 1, 0, 2], extrinsics[:, 1, 2, 0] = torch.sin(angle), -torch.sin(angle)
    intrinsics = torch.tensor([[0.9, 0, 0.5], [0, 1.2, 0.5], [0, 0, 1]], dtype=torch.float64).repeat(batch, views, 1, 1)
    near = torch.tensor([1.0, 0.5], dtype=torch.float64).repeat(batch, 1)
    far = torch.full((batch, views), 100.0, dtype=torch.float64)
    params = [t.to(device, dtype) for t in (means, cov, harmonics, opacities)]
    cameras = [t.to(device, dtype) for t in (extrinsics, intrinsics, near, far)]
    return params, cameras


def render_with_grads(backend: str, params, cameras, shape, depth_mode="depth", weights_seed=0):
    leaves = [p.clone().requires_grad_(True) for p in params]
    decoder = Decoder(DecoderSplattingCfg(backend=backend)).to(params[0].device)
    out = decoder(Gaussians(*leaves), *cameras, shape, depth_mode)
    g = torch.Generator().manual_seed(weights_seed)
    w = torch.rand(out.color.shape, generator=g).to(out.color)
    loss = (out.color * w).sum() + 0.1 * out.depth.sum() + out.alpha.sum()
    loss.backward()
    return out, [leaf.grad for leaf in leaves]


def assert_images_close(a: torch.Tensor, b: torch.Tensor, name: str) -> None:
    """Float32 agreement; a handful of pixels may differ where an alpha is within rounding of the
    1/255 threshold or T of the 1e-4 stop (a discrete decision), so outliers are bounded
    separately from the bulk."""
    diff = (a - b).abs()
    assert diff.mean() < 1e-5, f"{name}: mean |diff| {diff.mean():.3g}"
    assert (diff > 1e-4).float().mean() < 1e-3, f"{name}: {(diff > 1e-4).sum()} pixels differ by > 1e-4"
    assert diff.max() < 2e-2, f"{name}: max |diff| {diff.max():.3g}"


def assert_grads_close(a: torch.Tensor, b: torch.Tensor, name: str) -> None:
    assert torch.isfinite(a).all() and torch.isfinite(b).all(), name
    relative = (a - b).norm() / b.norm().clamp_min(1e-12)
    assert relative < 2e-3, f"gradient w.r.t. {name}: relative error {relative:.3g}"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("depth_mode", ["depth", "disparity"])
def test_gsplat_matches_torch_backend(seed, depth_mode):
    params, cameras = random_scene(seed, "cuda")
    shape = (48, 64)
    out_g, grads_g = render_with_grads("gsplat", params, cameras, shape, depth_mode)
    out_t, grads_t = render_with_grads("torch", params, cameras, shape, depth_mode)
    assert out_t.alpha.max() > 0.9 and (out_t.alpha == 0).any()
    assert_images_close(out_g.color, out_t.color, "color")
    assert_images_close(out_g.depth, out_t.depth, "depth")
    assert_images_close(out_g.alpha, out_t.alpha, "alpha")
    for name, a, b in zip(("means", "covariances", "harmonics", "opacities"), grads_g, grads_t):
        assert_grads_close(a, b, name)


def test_gsplat_opacity_above_the_cap_is_a_bounded_deviation():
    # gsplat hard-codes min(0.999, o e^-s); the backend passes min(o, 0.99), exact for o <= 0.99 and
    # at most 1 - 0.99/o (< 1.01 %) of alpha off for o in (0.99, 1].
    params, cameras = random_scene(2, "cuda")
    params[3] = 0.99 + 0.01 * torch.rand_like(params[3])
    decoder_g = Decoder(DecoderSplattingCfg(backend="gsplat")).cuda()
    decoder_t = Decoder(DecoderSplattingCfg(backend="torch")).cuda()
    out_g = decoder_g(Gaussians(*params), *cameras, (48, 64))
    out_t = decoder_t(Gaussians(*params), *cameras, (48, 64))
    assert (out_g.alpha - out_t.alpha).abs().max() < 0.02
    assert (out_g.color - out_t.color).abs().max() < 0.05


def test_torch_backend_on_cuda_matches_cpu_in_float64():
    params, cameras = random_scene(3, "cpu", torch.float64)
    shape = (24, 32)
    out_cpu, grads_cpu = render_with_grads("torch", params, cameras, shape)
    params_cuda = [p.cuda() for p in params]
    cameras_cuda = [c.cuda() for c in cameras]
    out_cuda, grads_cuda = render_with_grads("torch", params_cuda, cameras_cuda, shape)
    for a, b in ((out_cpu.color, out_cuda.color), (out_cpu.depth, out_cuda.depth), (out_cpu.alpha, out_cuda.alpha)):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-9, atol=1e-10)
    for a, b in zip(grads_cpu, grads_cuda):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-7, atol=1e-9)


def test_auto_backend_uses_gsplat_on_cuda():
    assert Decoder(DecoderSplattingCfg(backend="auto")).resolve_backend(torch.device("cuda")) == "gsplat"
