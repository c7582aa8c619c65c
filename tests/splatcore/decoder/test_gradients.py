"""Finite-difference gradient checks (float64) of the torch backend: means, covariances, SH,
opacities -- through projection, SH direction, compositing and the depth pass."""

from __future__ import annotations

import pytest
import torch

from splatcore.decoder import Decoder, DecoderSplattingCfg
from splatcore.types import Gaussians

F64 = torch.float64
SHAPE = (8, 9)


def tiny_scene():
    g = torch.Generator().manual_seed(11)
    count = 4
    means = torch.tensor(
        [[0.1, -0.1, 3.0], [-0.2, 0.15, 3.6], [0.25, 0.2, 4.2], [-0.05, -0.25, 2.6]], dtype=F64
    )[None]
    q, _ = torch.linalg.qr(torch.randn(count, 3, 3, generator=g, dtype=F64))
    scales = torch.tensor([[0.3, 0.2, 0.25], [0.35, 0.3, 0.2], [0.4, 0.25, 0.3], [0.2, 0.25, 0.3]], dtype=F64)
    cov = (q @ torch.diag_embed(scales**2) @ q.transpose(-1, -2))[None]
    harmonics = (torch.randn(1, count, 3, 9, generator=g, dtype=F64) * 0.3)
    opacities = torch.tensor([[0.6, 0.8, 0.7, 0.5]], dtype=F64)
    extrinsics = torch.eye(4, dtype=F64).expand(1, 2, 4, 4).clone()
    extrinsics[0, 1, :3, 3] = torch.tensor([0.3, -0.1, 0.2], dtype=F64)
    intrinsics = torch.tensor([[0.8, 0, 0.5], [0, 0.9, 0.5], [0, 0, 1]], dtype=F64).expand(1, 2, 3, 3)
    near = torch.tensor([[1.0, 0.5]], dtype=F64)
    far = torch.full((1, 2), 20.0, dtype=F64)
    return (means, cov, harmonics, opacities), (extrinsics, intrinsics, near, far)


def make_function(which: int, params, cameras, **cfg):
    decoder = Decoder(DecoderSplattingCfg(backend="torch", validate_inputs=False, **cfg)).to(F64)
    g = torch.Generator().manual_seed(5)
    w_colour = torch.rand(1, 2, 3, *SHAPE, generator=g, dtype=F64)
    w_depth = torch.rand(1, 2, *SHAPE, generator=g, dtype=F64)
    w_alpha = torch.rand(1, 2, *SHAPE, generator=g, dtype=F64)

    def function(x):
        values = list(params)
        values[which] = x
        out = decoder(Gaussians(*values), *cameras, SHAPE, "depth")
        return (out.color * w_colour).sum(), (out.depth * w_depth).sum(), (out.alpha * w_alpha).sum()

    return function


@pytest.mark.parametrize("which, name", [(0, "means"), (1, "covariances"), (2, "harmonics"), (3, "opacities")])
def test_gradcheck(which, name):
    params, cameras = tiny_scene()
    function = make_function(which, params, cameras)
    x = params[which].clone().requires_grad_(True)
    outputs = function(x)
    assert all(o.item() != 0 for o in outputs)
    assert torch.autograd.gradcheck(function, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_covariance_gradient_reaches_the_upper_triangle_only():
    params, cameras = tiny_scene()
    function = make_function(1, params, cameras)
    x = params[1].clone().requires_grad_(True)
    sum(function(x)).backward()
    lower = torch.tril(torch.ones(3, 3, dtype=torch.bool), diagonal=-1)
    assert torch.all(x.grad[..., lower] == 0)
    assert torch.all(x.grad[..., ~lower] != 0)


def test_culled_gaussians_get_exact_zero_finite_gradients():
    params, cameras = tiny_scene()
    means = params[0].clone()
    means[0, 1] = torch.tensor([0.0, 0.0, -2.0], dtype=F64)  # behind both cameras
    leaves = [means.requires_grad_(True)] + [p.clone().requires_grad_(True) for p in params[1:]]
    out = Decoder(DecoderSplattingCfg(backend="torch")).to(F64)(Gaussians(*leaves), *cameras, SHAPE, "disparity")
    (out.color.sum() + out.depth.sum()).backward()
    for leaf in leaves:
        assert torch.isfinite(leaf.grad).all()
        assert torch.all(leaf.grad[0, 1] == 0)
        assert leaf.grad[0, 0].abs().sum() > 0
