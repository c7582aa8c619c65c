"""SH colour of the splatting decoder: the e3nn-permuted real basis, degree <= 3, +0.5, clamp >= 0.

References: scipy's complex spherical harmonics turned into the real basis, and e3nn.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from splatcore.errors import InputError
from splatcore.decoder.sh import permuted_sh_basis, sh_degree_of, sh_to_rgb


def unit_directions(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    d = torch.randn(count, 3, generator=generator, dtype=torch.float64)
    return d / d.norm(dim=-1, keepdim=True)


def scipy_real_sh(l: int, m: int, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Real orthonormal SH from scipy's complex Y_l^m (which carries the Condon-Shortley phase):
    m < 0: sqrt2 Im Y_l^|m|, m = 0: Y_l^0, m > 0: sqrt2 Re Y_l^m, at polar angle acos z and
    azimuth atan2(y, x)."""
    theta = np.arccos(np.clip(z, -1.0, 1.0))
    phi = np.arctan2(y, x)
    value = sph_harm_y(l, abs(m), theta, phi)
    if m < 0:
        return math.sqrt(2.0) * value.imag
    if m == 0:
        return value.real
    return math.sqrt(2.0) * value.real


def test_basis_matches_scipy_real_sh_with_the_upstream_permutation():
    d = unit_directions(500)
    ours = permuted_sh_basis(d, 3).numpy()
    # Upstream applies the 3DGS polynomials to (x, y, z) := (d_z, d_x, d_y).
    x, y, z = d[:, 2].numpy(), d[:, 0].numpy(), d[:, 1].numpy()
    expected = np.stack(
        [scipy_real_sh(l, m, x, y, z) for l in range(4) for m in range(-l, l + 1)], axis=-1
    )
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_basis_is_e3nn_with_condon_shortley_phase():
    o3 = pytest.importorskip("e3nn.o3")
    d = unit_directions(300, seed=1)
    ours = permuted_sh_basis(d, 3)
    for l in range(4):
        reference = o3.spherical_harmonics(l, d, normalize=True, normalization="integral")
        signs = torch.tensor([(-1.0) ** m for m in range(-l, l + 1)], dtype=torch.float64)
        torch.testing.assert_close(ours[:, l * l : (l + 1) ** 2], reference * signs, rtol=0, atol=1e-12)


def test_degree_one_formula_from_upstream_facts():
    d = unit_directions(50, seed=2)
    c1 = math.sqrt(3.0 / (4.0 * math.pi))
    expected = torch.stack((-c1 * d[:, 0], c1 * d[:, 1], -c1 * d[:, 2]), dim=-1)
    torch.testing.assert_close(permuted_sh_basis(d, 1)[:, 1:], expected, rtol=0, atol=1e-14)


def test_basis_is_orthonormal_on_the_sphere():
    # Monte-Carlo-free check: a Lebedev-like dense Fibonacci grid integrates degree <= 6 products.
    n = 20000
    k = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * k / n
    r = torch.sqrt(1 - z * z)
    phi = math.pi * (1 + math.sqrt(5.0)) * k
    d = torch.stack((r * torch.cos(phi), r * torch.sin(phi), z), dim=-1)
    basis = permuted_sh_basis(d, 3)
    gram = basis.T @ basis * (4 * math.pi / n)
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), rtol=0, atol=2e-3)


def test_colour_is_basis_dot_coefficients_plus_half_clamped_below_only():
    generator = torch.Generator().manual_seed(3)
    d = unit_directions(40, seed=3)
    coefficients = torch.randn(40, 3, 16, generator=generator, dtype=torch.float64) * 2.0
    rgb = sh_to_rgb(coefficients, d)
    raw = torch.einsum("nck,nk->nc", coefficients, permuted_sh_basis(d, 3)) + 0.5
    torch.testing.assert_close(rgb, raw.clamp_min(0.0), rtol=0, atol=1e-13)
    assert (raw < 0).any() and (raw > 1).any()  # both sides exercised: only the lower one clamps
    assert rgb.max() > 1.0


def test_degree_four_coefficients_are_ignored_and_get_zero_gradient():
    generator = torch.Generator().manual_seed(4)
    d = unit_directions(30, seed=4)
    coefficients = torch.randn(30, 3, 25, generator=generator, dtype=torch.float64) * 0.2
    coefficients.requires_grad_(True)
    rgb = sh_to_rgb(coefficients, d)
    changed = coefficients.detach().clone()
    changed[..., 16:] += 10.0
    torch.testing.assert_close(sh_to_rgb(changed, d), rgb.detach(), rtol=0, atol=0)
    rgb.sum().backward()
    assert torch.all(coefficients.grad[..., 16:] == 0)
    assert torch.all(coefficients.grad[..., :16].abs().sum(dim=(0, 1)) > 0)


@pytest.mark.parametrize("d_sh, degree", [(1, 0), (4, 1), (9, 2), (16, 3), (25, 4)])
def test_lower_degrees_use_the_leading_coefficients(d_sh, degree):
    assert sh_degree_of(d_sh) == degree
    d = unit_directions(10, seed=5)
    coefficients = torch.randn(10, 3, d_sh, dtype=torch.float64) * 0.3
    padded = torch.zeros(10, 3, 16, dtype=torch.float64)
    padded[..., : min(d_sh, 16)] = coefficients[..., :16]
    torch.testing.assert_close(sh_to_rgb(coefficients, d), sh_to_rgb(padded, d), rtol=0, atol=1e-14)


@pytest.mark.parametrize("d_sh", [0, 2, 5, 15])
def test_non_square_coefficient_count_is_an_error(d_sh):
    with pytest.raises(InputError, match="d_sh"):
        sh_to_rgb(torch.zeros(2, 3, d_sh), unit_directions(2).float())
