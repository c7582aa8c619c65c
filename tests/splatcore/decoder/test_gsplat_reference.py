"""The gsplat backend against gsplat's own code, on CPU (gsplat 1.5.3 is a test dependency; its
CUDA kernels never run here):

- the backend's exact ``gsplat.rasterization`` call binds to the real function's signature;
- the projection gsplat computes from that call (``gsplat.cuda._torch_impl._fully_fused_projection``:
  world-to-camera ``viewmats``, pixel ``Ks``, ``eps2d``, near plane) equals the torch rasteriser's
  (``project_gaussians``): 2D means, conics, depths; its footprint is gsplat's opacity-aware CUDA
  box (``min(3.33, sqrt(2 ln(o / (1/255)))) * sqrt(cov2d)``) up to the ceil, and every Gaussian
  the torch rasteriser keeps is one gsplat keeps;
- SH colours: gsplat's ``_spherical_harmonics`` at the permuted direction equals the project's SH
  basis for degrees 0-3 (values and gradients);
- the compositing constants the torch rasteriser shares with gsplat's ``classic`` mode (alpha
  threshold, alpha cap, transmittance stop, the 3.33-sigma bound) read from gsplat's CUDA sources.
"""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import pytest
import torch

from splatcore.decoder import Decoder, DecoderSplattingCfg, backend_gsplat
from splatcore.decoder.composite_backward import ALPHA_CAP
from splatcore.decoder.projection import ALPHA_THRESHOLD, EPS2D, project_gaussians
from splatcore.decoder.rasterize_torch import TRANSMITTANCE_STOP
from splatcore.decoder.sh import permuted_sh_basis

from .test_gsplat_plumbing import scene

GSPLAT_VERSION = "1.5.3"  # the private reference names below are this version's


@pytest.fixture(scope="module")
def gsplat():
    module = pytest.importorskip("gsplat", reason=f"gsplat is a test dependency: pip install gsplat=={GSPLAT_VERSION}")
    if module.__version__ != GSPLAT_VERSION:
        pytest.skip(f"these checks use gsplat {GSPLAT_VERSION}'s private references; found {module.__version__}")
    return module


@pytest.fixture
def recorded_call(gsplat, monkeypatch):
    """Render the plumbing test's random scene (8 Gaussians moved behind the near plane) through the decoder's gsplat path with
    ``gsplat.rasterization`` replaced by a recorder that binds the call to the real signature."""
    real = gsplat.rasterization
    calls = []

    def recorder(*args, **kwargs):
        bound = inspect.signature(real).bind(*args, **kwargs)  # TypeError on a wrong keyword
        bound.apply_defaults()
        calls.append(bound.arguments)
        images, height, width = kwargs["means"].shape[0], kwargs["height"], kwargs["width"]
        channels = kwargs["colors"].shape[-1]
        return torch.zeros(images, 1, height, width, channels), torch.zeros(images, 1, height, width, 1), {}

    monkeypatch.setattr(gsplat, "rasterization", recorder)
    monkeypatch.setattr(backend_gsplat, "require_gsplat", lambda device: None)
    gaussians, cameras = scene()
    gaussians.means[:, :8, 2] = torch.linspace(-1.0, 0.1, 8)  # behind the camera / the near plane
    Decoder(DecoderSplattingCfg(backend="gsplat"))(gaussians, *cameras, (20, 24), "depth")
    assert len(calls) == 1
    return calls[0]


def test_the_backend_call_binds_to_gsplat_rasterization(recorded_call):
    call = recorded_call
    assert call["rasterize_mode"] == "classic" and call["render_mode"] == "RGB" and call["eps2d"] == EPS2D
    assert call["sh_degree"] is None and call["quats"] is None and call["scales"] is None and call["covars"] is not None
    assert call["viewmats"].shape[-2:] == (4, 4) and call["Ks"].shape[-2:] == (3, 3)


def test_gsplat_projection_of_the_call_equals_the_torch_rasteriser(recorded_call):
    from gsplat.cuda._torch_impl import _fully_fused_projection

    call = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in recorded_call.items()}
    height, width = call["height"], call["width"]
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        call["means"], call["covars"], call["viewmats"], call["Ks"], width, height,
        eps2d=call["eps2d"], near_plane=call["near_plane"], far_plane=call["far_plane"],
    )  # (I, 1, N, ...): one camera per image
    ours = project_gaussians(call["means"], call["covars"], call["opacities"], call["viewmats"][:, 0], call["Ks"][:, 0],
                             (height, width), near_cull=call["near_plane"])
    front = ours.depths > call["near_plane"]
    assert front.sum() > 100 and (~front).any()  # the scene has Gaussians behind the near plane too
    torch.testing.assert_close(ours.depths, depths[:, 0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.means2d[front], means2d[:, 0][front], rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(ours.conics[front], conics[:, 0][front], rtol=1e-9, atol=1e-9)
    # footprint: gsplat's opacity-aware CUDA box (ProjectionEWA3DGSFused.cu) before its ceil
    a, b, c = conics[:, 0].unbind(-1)
    det = a * c - b * b
    cov_xx, cov_yy = c / det, a / det
    extend = torch.sqrt(2 * torch.log(call["opacities"].clamp_min(1e-30) / ALPHA_THRESHOLD).clamp_min(0)).clamp_max(3.33)
    box = torch.stack((extend * cov_xx.sqrt(), extend * cov_yy.sqrt()), -1)
    kept = ours.visible
    assert kept.sum() > 50
    assert (ours.radius[kept] >= box[kept]).all()  # conservative ...
    assert (ours.radius[kept] <= torch.ceil(box[kept]) + 0.01).all()  # ... and never larger than gsplat's
    # every Gaussian the torch rasteriser keeps, gsplat keeps (gsplat's torch reference has no
    # opacity cull; its 3.33-sigma box is at least the opacity-aware one)
    assert (radii[:, 0][kept] > 0).all()
    sure = front & (call["opacities"] >= ALPHA_THRESHOLD) & (means2d[:, 0, ..., 0].clamp(0, width) == means2d[:, 0, ..., 0]) \
        & (means2d[:, 0, ..., 1].clamp(0, height) == means2d[:, 0, ..., 1])
    assert sure.any() and kept[sure].all()


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_gsplat_spherical_harmonics_equal_the_permuted_basis(gsplat, degree):
    from gsplat.cuda._torch_impl import _spherical_harmonics

    g = torch.Generator().manual_seed(degree)
    directions = torch.nn.functional.normalize(torch.randn(300, 3, generator=g, dtype=torch.float64), dim=-1)
    coeffs = torch.randn(300, (degree + 1) ** 2, 3, generator=g, dtype=torch.float64)
    ours_dirs = directions.clone().requires_grad_(True)
    ours_coeffs = coeffs.clone().requires_grad_(True)
    ours = (permuted_sh_basis(ours_dirs, degree)[..., None] * ours_coeffs).sum(-2)
    theirs_dirs = directions.clone().requires_grad_(True)
    theirs_coeffs = coeffs.clone().requires_grad_(True)
    # the upstream rasteriser evaluates the standard polynomials at (d_z, d_x, d_y)
    theirs = _spherical_harmonics(degree, theirs_dirs[..., [2, 0, 1]], theirs_coeffs)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    weights = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    torch.testing.assert_close(ours_coeffs.grad, theirs_coeffs.grad, rtol=1e-12, atol=1e-12)
    if degree > 0:
        # gsplat normalises the direction inside; compare the tangential part of the gradient
        tangential = lambda grad: grad - (grad * directions).sum(-1, keepdim=True) * directions  # noqa: E731
        torch.testing.assert_close(tangential(ours_dirs.grad), tangential(theirs_dirs.grad), rtol=1e-10, atol=1e-10)


def _cuda_source(gsplat, name: str) -> str:
    root = Path(gsplat.__file__).parent / "cuda"
    matches = list(root.rglob(name))
    assert matches, f"{name} not found under {root} (gsplat {gsplat.__version__})"
    return matches[0].read_text()


def test_compositing_constants_equal_gsplat_classic_mode(gsplat):
    common = _cuda_source(gsplat, "Common.h")
    forward = _cuda_source(gsplat, "RasterizeToPixels3DGSFwd.cu")
    projection = _cuda_source(gsplat, "ProjectionEWA3DGSFused.cu")
    threshold = re.search(r"#define ALPHA_THRESHOLD \((\d+)\.f / (\d+)\.f\)", common)
    assert threshold and float(threshold.group(1)) / float(threshold.group(2)) == pytest.approx(ALPHA_THRESHOLD, rel=1e-12)
    assert re.search(r"alpha < ALPHA_THRESHOLD", forward)
    stop = re.search(r"if \(next_T <= ([0-9.e-]+)f\)", forward)
    assert stop and float(stop.group(1)) == TRANSMITTANCE_STOP  # gsplat stops at <=, upstream at < (see backend_gsplat)
    cap = re.search(r"float alpha = min\(([0-9.]+)f, opac \* __expf\(-sigma\)\)", forward)
    # gsplat caps alpha at 0.999, the upstream rule (and the torch rasteriser) at 0.99: the
    # backend passes min(o, 0.99) as opacity (backend_gsplat.saturate_opacity)
    assert cap and float(cap.group(1)) == 0.999 and ALPHA_CAP == 0.99
    bound = re.search(r"float extend = ([0-9.]+)f;", projection)
    assert bound and float(bound.group(1)) == pytest.approx(math.sqrt(2 * math.log(255)), abs=5e-3)
