"""Shared Gaussian adapter against independent references: reprojection of the means, scipy
rotations for the covariances (xyzw quaternions), the MVSplat / DepthSplat scale formulas and SH
rotation equivariance evaluated with e3nn's spherical harmonics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from e3nn import o3
from scipy.spatial.transform import Rotation

from splatcore.model.gaussian_adapter import (
    ClampedExpScale,
    GaussianAdapter,
    GaussianAdapterCfg,
    rotate_sh,
    sh_mask,
)
from splatcore.errors import InputError


def _random_cameras(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rotations = Rotation.random(count, random_state=seed).as_matrix()
    c2w = np.tile(np.eye(4), (count, 1, 1))
    c2w[:, :3, :3] = rotations
    c2w[:, :3, 3] = np.random.default_rng(seed).normal(size=(count, 3))
    k = np.tile(np.eye(3), (count, 1, 1))
    k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2] = 0.9, 1.1, 0.5, 0.5
    return torch.tensor(c2w), torch.tensor(k)


@pytest.fixture
def adapter_inputs(rng):
    views, pixels, sh_degree = 2, 6, 2
    d_sh = (sh_degree + 1) ** 2
    c2w, k = _random_cameras(views, seed=3)
    coordinates = torch.rand(views, pixels, 2, generator=rng, dtype=torch.float64)
    depths = 1 + 5 * torch.rand(views, pixels, generator=rng, dtype=torch.float64)
    raw = torch.randn(views, pixels, 7 + 3 * d_sh, generator=rng, dtype=torch.float64)
    opacities = torch.rand(views, pixels, generator=rng, dtype=torch.float64)
    return dict(
        extrinsics=c2w[:, None], intrinsics=k[:, None], coordinates=coordinates, depths=depths,
        opacities=opacities, raw_gaussians=raw, image_shape=(16, 24),
    ), sh_degree  # fmt: skip


def test_means_reproject_to_their_pixels_at_ray_distance(adapter_inputs):
    inputs, sh_degree = adapter_inputs
    adapter = GaussianAdapter(GaussianAdapterCfg(0.5, 15.0, sh_degree))
    out = adapter(**inputs)
    c2w, k = inputs["extrinsics"], inputs["intrinsics"]
    centres = c2w[..., :3, 3]
    camera_points = torch.einsum("vnji,vnj->vni", c2w[..., :3, :3].expand(-1, 6, -1, -1), out.means - centres)
    projected = torch.einsum("vnij,vnj->vni", k.expand(-1, 6, -1, -1), camera_points)
    torch.testing.assert_close(projected[..., :2] / projected[..., 2:], inputs["coordinates"])
    torch.testing.assert_close((out.means - centres).norm(dim=-1), inputs["depths"])  # distance, not z
    assert bool((camera_points[..., 2] > 0).all())


def test_covariances_scales_and_rotations_match_scipy(adapter_inputs):
    inputs, sh_degree = adapter_inputs
    adapter = GaussianAdapter(GaussianAdapterCfg(0.5, 15.0, sh_degree))
    out = adapter(**inputs)
    raw = inputs["raw_gaussians"].numpy()
    h, w = inputs["image_shape"]
    for v in range(2):
        c2w = inputs["extrinsics"][v, 0].numpy()
        k = inputs["intrinsics"][v, 0].numpy()
        for n in range(6):
            footprint = 0.1 * (1 / (k[0, 0] * w) + 1 / (k[1, 1] * h))
            scales = (0.5 + 14.5 / (1 + np.exp(-raw[v, n, :3]))) * inputs["depths"][v, n].item() * footprint
            np.testing.assert_allclose(out.scales[v, n].numpy(), scales, rtol=1e-10)
            quaternion = raw[v, n, 3:7] / np.linalg.norm(raw[v, n, 3:7])
            np.testing.assert_allclose(out.rotations[v, n].numpy(), quaternion, rtol=1e-6)
            rotation = Rotation.from_quat(quaternion).as_matrix()  # scipy: x, y, z, w
            covariance = c2w[:3, :3] @ rotation @ np.diag(scales**2) @ rotation.T @ c2w[:3, :3].T
            # the 1e-8 epsilons of the quaternion normalisation bound the agreement
            np.testing.assert_allclose(out.covariances[v, n].numpy(), covariance, rtol=1e-6, atol=1e-8 * np.abs(covariance).max())


def test_clamped_exp_scale_is_depthsplat_formula():
    raw = torch.tensor([[-2.0, 4.0, 9.0]], dtype=torch.float64)
    scales = ClampedExpScale(scale_max=0.3)(raw, torch.ones(1, dtype=torch.float64), torch.eye(3)[None].double(), (4, 4))
    torch.testing.assert_close(scales, torch.tensor([[math.exp(-6), 0.3, 0.3]], dtype=torch.float64))


def test_sh_mask_values():
    torch.testing.assert_close(
        sh_mask(2), torch.tensor([1.0] + [0.025] * 3 + [0.00625] * 5), rtol=0, atol=1e-9
    )


def test_harmonics_are_masked_and_rotated_equivariantly(adapter_inputs):
    """Rotated coefficients evaluated at R d equal the masked camera-frame coefficients at d,
    with e3nn's real SH basis (the basis upstream's rasteriser uses)."""
    inputs, sh_degree = adapter_inputs
    adapter = GaussianAdapter(GaussianAdapterCfg(0.5, 15.0, sh_degree))
    out = adapter(**inputs)
    d_sh = (sh_degree + 1) ** 2
    masked = inputs["raw_gaussians"][..., 7:].reshape(2, 6, 3, d_sh) * sh_mask(sh_degree).double()
    directions = torch.nn.functional.normalize(torch.randn(20, 3, dtype=torch.float64), dim=-1)
    basis = o3.spherical_harmonics(list(range(sh_degree + 1)), directions, normalize=True)  # (20, d_sh)
    for v in range(2):
        rotation = inputs["extrinsics"][v, 0, :3, :3]
        rotated_basis = o3.spherical_harmonics(list(range(sh_degree + 1)), directions @ rotation.T, normalize=True)
        camera_values = torch.einsum("ncd,sd->ncs", masked[v], basis)
        world_values = torch.einsum("ncd,sd->ncs", out.harmonics[v], rotated_basis)
        torch.testing.assert_close(world_values, camera_values)
    torch.testing.assert_close(out.harmonics[..., 0], masked[..., 0])  # degree 0 is invariant


def test_rotate_sh_identity_and_bad_dimension(rng):
    coefficients = torch.randn(5, 3, 16, generator=rng, dtype=torch.float64)
    torch.testing.assert_close(rotate_sh(coefficients, torch.eye(3, dtype=torch.float64)), coefficients)
    with pytest.raises(InputError, match="square"):
        rotate_sh(torch.zeros(2, 3, 5), torch.eye(3))


def test_wrong_raw_channel_count_is_rejected(adapter_inputs):
    inputs, _ = adapter_inputs
    adapter = GaussianAdapter(GaussianAdapterCfg(0.5, 15.0, sh_degree=4))
    with pytest.raises(InputError, match="raw Gaussian channels"):
        adapter(**inputs)
