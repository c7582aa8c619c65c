"""View-dependent colour from real spherical harmonics, in the basis of the upstream rasteriser.

The upstream (``diff-gaussian-rasterization-modified``) renderer evaluates the standard 3DGS
real-SH polynomials (orthonormal on the sphere, Condon-Shortley sign pattern, order m = -l..l)
at the *permuted* unit direction (x, y, z) := (d_z, d_x, d_y), where d = normalise(mean - camera
centre) in world coordinates. Relation to e3nn (polar axis y, same m = -l..l order; checked in
tests/splatcore/decoder/test_sh.py)::

    permuted_sh_basis(d)[l*l + l + m] == (-1)**m * e3nn.o3.spherical_harmonics(
        l, d, normalize=True, normalization="integral")[l + m]

i.e. e3nn's orthonormal basis with the Condon-Shortley phase. The encoders rotate their SH
coefficients with e3nn Wigner-D matrices; the official checkpoints were trained with this exact
basis. Only degrees 0..3
are evaluated: with d_sh = 25 (degree 4) the last nine coefficients are ignored (zero gradient).
The colour is sum_k c_k Y_k(d) + 0.5, clamped at >= 0 (no upper clamp).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import InputError

MAX_EVALUATED_DEGREE = 3

# Normalisation constants of the real orthonormal SH (the usual 3DGS values).
SH_C0 = 0.5 / math.sqrt(math.pi)
SH_C1 = math.sqrt(3.0 / (4.0 * math.pi))
SH_C2 = (
    0.5 * math.sqrt(15.0 / math.pi),
    -0.5 * math.sqrt(15.0 / math.pi),
    0.25 * math.sqrt(5.0 / math.pi),
    -0.5 * math.sqrt(15.0 / math.pi),
    0.25 * math.sqrt(15.0 / math.pi),
)
SH_C3 = (
    -0.25 * math.sqrt(35.0 / (2.0 * math.pi)),
    0.5 * math.sqrt(105.0 / math.pi),
    -0.25 * math.sqrt(21.0 / (2.0 * math.pi)),
    0.25 * math.sqrt(7.0 / math.pi),
    -0.25 * math.sqrt(21.0 / (2.0 * math.pi)),
    0.25 * math.sqrt(105.0 / math.pi),
    -0.25 * math.sqrt(35.0 / (2.0 * math.pi)),
)


def sh_degree_of(d_sh: int) -> int:
    """The SH degree l with (l + 1)^2 == d_sh; raises when d_sh is not a square."""
    degree = math.isqrt(d_sh) - 1
    if d_sh < 1 or (degree + 1) ** 2 != d_sh:
        raise InputError(
            f"harmonics have d_sh={d_sh} coefficients per channel; d_sh must be (degree + 1)^2 "
            "(1, 4, 9, 16, 25, ...)."
        )
    return degree


def permuted_sh_basis(
    directions: Float[Tensor, "*batch 3"], degree: int
) -> Float[Tensor, "*batch basis"]:
    """The upstream rasteriser's SH basis, (min(degree, 3) + 1)^2 values per unit direction.

    ``directions`` must be unit vectors (world axes). The standard 3DGS polynomials are applied to
    (x, y, z) = (d_z, d_x, d_y); e.g. degree 1 is (-C1 d_x, C1 d_y, -C1 d_z).
    """
    degree = min(degree, MAX_EVALUATED_DEGREE)
    x, y, z = directions[..., 2], directions[..., 0], directions[..., 1]
    basis = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        basis += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        basis += [
            SH_C2[0] * x * y,
            SH_C2[1] * y * z,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * x * z,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        basis += [
            SH_C3[0] * y * (3.0 * xx - yy),
            SH_C3[1] * x * y * z,
            SH_C3[2] * y * (4.0 * zz - xx - yy),
            SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            SH_C3[4] * x * (4.0 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(basis, dim=-1)


def sh_to_rgb(
    harmonics: Float[Tensor, "*batch 3 d_sh"], directions: Float[Tensor, "*batch 3"]
) -> Float[Tensor, "*batch 3"]:
    """Colour of each Gaussian seen along ``directions`` (unit, mean - camera centre).

    Coefficients beyond degree 3 are not used (they receive zero gradient), as upstream.
    Returns sum_k harmonics[..., c, k] * Y_k + 0.5 clamped at >= 0.
    """
    degree = sh_degree_of(harmonics.shape[-1])
    basis = permuted_sh_basis(directions, degree)
    used = harmonics[..., : basis.shape[-1]]
    rgb = (used * basis[..., None, :]).sum(dim=-1) + 0.5
    return rgb.clamp_min(0.0)
