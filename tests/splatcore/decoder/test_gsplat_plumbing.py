"""CPU check of the gsplat backend's plumbing: a stand-in for ``gsplat.rasterization`` asserts
gsplat's argument contract and renders with the torch rasteriser, so the decoder's gsplat path
(per-camera 1/near scaling, covariance/K/viewmat layout, near plane, feature channels,
backgrounds, output reshaping, opacity saturation) is exercised without a GPU. The real gsplat
kernels are compared in tests/splatcore/decoder/test_gpu_parity.py (GPU only)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from splatcore.decoder import Decoder, DecoderSplattingCfg, backend_gsplat
from splatcore.decoder.projection import project_gaussians
from splatcore.decoder.rasterize_torch import rasterize_torch
from splatcore.types import Gaussians


def fake_rasterization(calls: list):
    def rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane, far_plane,
        eps2d, sh_degree, backgrounds, render_mode, rasterize_mode, covars,
    ):
        images, count = means.shape[:2]
        assert quats is None and scales is None and sh_degree is None
        assert means.shape == (images, count, 3) and covars.shape == (images, count, 3, 3)
        assert opacities.shape == (images, count) and colors.shape[:2] == (images, count)
        assert viewmats.shape == (images, 1, 4, 4) and Ks.shape == (images, 1, 3, 3)
        assert backgrounds.shape == (images, 1, colors.shape[-1])
        assert render_mode == "RGB" and rasterize_mode == "classic" and eps2d == 0.3
        assert far_plane == float("inf")
        assert all(t.dtype == torch.float32 for t in (means, covars, opacities, colors, viewmats, Ks))
        calls.append(dict(near_plane=near_plane, opacities=opacities.detach().clone(), covars=covars.detach().clone()))
        projected = project_gaussians(
            means, covars, opacities, viewmats[:, 0], Ks[:, 0], (height, width), near_cull=near_plane
        )
        features, alpha, transmittance = rasterize_torch(
            projected.means2d, projected.conics, opacities, colors, projected.depths,
            projected.radius, projected.visible, (height, width),
        )
        rendered = features + transmittance[..., None] * backgrounds[:, None, None, 0]
        return rendered[:, None], alpha[:, None, ..., None], {}

    return rasterization


@pytest.fixture
def fake_gsplat(monkeypatch):
    calls: list = []
    module = types.ModuleType("gsplat")
    module.rasterization = fake_rasterization(calls)
    monkeypatch.setitem(sys.modules, "gsplat", module)
    monkeypatch.setattr(backend_gsplat, "require_gsplat", lambda device: None)
    return calls


def scene():
    g = torch.Generator().manual_seed(7)
    batch, count = 2, 80
    means = torch.randn(batch, count, 3, generator=g) * 0.8
    means[..., 2] += 3.0
    q, _ = torch.linalg.qr(torch.randn(batch, count, 3, 3, generator=g))
    cov = q @ torch.diag_embed((torch.rand(batch, count, 3, generator=g) * 0.15 + 0.02) ** 2) @ q.transpose(-1, -2)
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    harmonics = torch.randn(batch, count, 3, 16, generator=g) * 0.3
    opacities = torch.rand(batch, count, generator=g)
    opacities[:, :5] = 0.999  # above the cap: saturated to 0.99 for gsplat
    extrinsics = torch.eye(4).repeat(batch, 2, 1, 1)
    extrinsics[:, 1, :3, 3] = torch.tensor([0.3, 0.1, -0.2])
    intrinsics = torch.tensor([[0.9, 0, 0.52], [0, 1.1, 0.47], [0, 0, 1]]).repeat(batch, 2, 1, 1)
    near = torch.tensor([[1.0, 0.5], [2.0, 0.25]])
    far = torch.full((batch, 2), 50.0)
    return Gaussians(means, cov, harmonics, opacities), (extrinsics, intrinsics, near, far)


@pytest.mark.parametrize("depth_mode", [None, "depth", "relative_disparity"])
def test_gsplat_path_plumbing_matches_torch_backend(fake_gsplat, depth_mode):
    gaussians, cameras = scene()
    background = [0.2, 0.3, 0.4]
    via_gsplat = Decoder(DecoderSplattingCfg(backend="gsplat"), background_color=background)
    via_torch = Decoder(DecoderSplattingCfg(backend="torch"), background_color=background)
    saturated = Gaussians(gaussians.means, gaussians.covariances, gaussians.harmonics, gaussians.opacities.clamp_max(0.99))
    out_g = via_gsplat(gaussians, *cameras, (20, 24), depth_mode)
    out_t = via_torch(saturated, *cameras, (20, 24), depth_mode)
    assert len(fake_gsplat) == 1  # one call for all batch elements and views
    call = fake_gsplat[0]
    assert call["near_plane"] == float(np.nextafter(np.float32(0.2), np.float32(np.inf)))
    assert call["opacities"].max() == pytest.approx(0.99)
    # Image 3 is batch 1, view 1 with near 0.25: covariances scaled by 1/near^2 = 16.
    torch.testing.assert_close(call["covars"][3], gaussians.covariances[1] * 16)
    torch.testing.assert_close(out_g.color, out_t.color, rtol=0, atol=1e-6)
    torch.testing.assert_close(out_g.alpha, out_t.alpha, rtol=0, atol=1e-6)
    if depth_mode is None:
        assert out_g.depth is None
    else:
        torch.testing.assert_close(out_g.depth, out_t.depth, rtol=1e-6, atol=1e-6)


def test_saturated_opacity_has_identity_gradient():
    o = torch.tensor([0.5, 0.99, 0.995, 1.0], requires_grad=True)
    s = backend_gsplat.saturate_opacity(o)
    assert s.tolist() == pytest.approx([0.5, 0.99, 0.99, 0.99])
    s.sum().backward()
    assert o.grad.tolist() == [1.0, 1.0, 1.0, 1.0]
