"""Pixel-aligned Gaussian adapter shared by MVSplat and DepthSplat (upstream-facts §7.9, §11).

Turns per-pixel network outputs into 3D Gaussians:

* means: unit-norm camera ray through the (offset) pixel centre, rotated to world,
  ``mean = camera centre + ray * depth`` — the predicted "depth" is a distance along the ray;
* scales: a pluggable activation (MVSplat: ``SigmoidRangeDepthScale``; DepthSplat:
  ``ClampedExpScale``), in the camera frame;
* rotations: normalised quaternions in **x, y, z, w** order, in the camera frame;
* covariances: ``R_c2w (R_q S S^T R_q^T) R_c2w^T`` (world frame);
* harmonics: raw SH (colour-major, 3 x d_sh) times ``sh_mask`` (1 for degree 0, 0.1 * 0.25**l
  for degree l >= 1), rotated to world with e3nn Wigner-D matrices of the c2w rotation (e3nn's own
  real SH basis and angle convention, as upstream);
* opacities: passed through.

Conventions: extrinsics are camera-to-world OpenCV matrices; intrinsics are normalised (row 0
divided by W, row 1 by H); ``coordinates`` are normalised pixel positions, pixel centres at
((col + 0.5) / W, (row + 0.5) / H). All inputs share broadcastable leading dimensions ``*batch``
(typically (B, V, H*W, surfaces, gaussians_per_pixel), with cameras of shape (B, V, 1, 1, 1, ...)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..errors import ConfigError, InputError


@dataclass
class GaussianAdapterCfg:
    """Upstream ``gaussian_adapter`` config keys."""

    gaussian_scale_min: float
    gaussian_scale_max: float
    sh_degree: int


@dataclass
class AdapterGaussians:
    """Unflattened Gaussians (leading dims ``*batch`` as given to the adapter).

    means (*, 3) and covariances (*, 3, 3) in world coordinates; harmonics (*, 3, d_sh) rotated
    to world; opacities (*); scales (*, 3) and rotations (*, 4, xyzw) in the camera frame.
    """

    means: Tensor
    covariances: Tensor
    harmonics: Tensor
    opacities: Tensor
    scales: Tensor
    rotations: Tensor


@runtime_checkable
class ScaleActivation(Protocol):
    """Maps raw scale features (*, 3) to positive camera-frame scales (*, 3)."""

    def __call__(
        self,
        raw_scales: Tensor,
        depths: Tensor,
        intrinsics: Tensor,
        image_shape: tuple[int, int],
    ) -> Tensor: ...


def pixel_footprint(
    intrinsics: Float[Tensor, "*batch 3 3"], image_shape: tuple[int, int], multiplier: float = 0.1
) -> Float[Tensor, " *batch"]:
    """``multiplier * sum(inverse(K[:2, :2]) @ (1/W, 1/H))`` = 0.1 (1/(fx W) + 1/(fy H)) for
    normalised K: the size of a pixel at unit depth, times 0.1."""
    height, width = image_shape
    dtype = torch.promote_types(intrinsics.dtype, torch.float32)
    pixel_size = torch.tensor((1.0 / width, 1.0 / height), dtype=dtype, device=intrinsics.device)
    inverse = torch.linalg.inv(intrinsics[..., :2, :2].to(dtype))
    return multiplier * (inverse @ pixel_size).sum(dim=-1)


@dataclass
class SigmoidRangeDepthScale:
    """MVSplat: ``(min + (max - min) sigmoid(raw)) * depth * pixel_footprint(K)``."""

    scale_min: float
    scale_max: float

    def __call__(self, raw_scales: Tensor, depths: Tensor, intrinsics: Tensor, image_shape: tuple[int, int]) -> Tensor:
        scales = self.scale_min + (self.scale_max - self.scale_min) * raw_scales.sigmoid()
        return scales * depths[..., None] * pixel_footprint(intrinsics, image_shape)[..., None]


@dataclass
class ClampedExpScale:
    """DepthSplat (Oct 2024): ``min(exp(raw - offset), scale_max)`` (no minimum, no depth factor)."""

    scale_max: float
    offset: float = 4.0

    def __call__(self, raw_scales: Tensor, depths: Tensor, intrinsics: Tensor, image_shape: tuple[int, int]) -> Tensor:
        return torch.clamp(torch.exp(raw_scales - self.offset), max=self.scale_max)


def sh_mask(sh_degree: int) -> Float[Tensor, " d_sh"]:
    """1 for degree 0, 0.1 * 0.25**l for the 2l + 1 coefficients of degree l >= 1."""
    mask = torch.ones((sh_degree + 1) ** 2, dtype=torch.float32)
    for degree in range(1, sh_degree + 1):
        mask[degree**2 : (degree + 1) ** 2] = 0.1 * 0.25**degree
    return mask


def quaternion_to_matrix(quaternions: Float[Tensor, "*batch 4"], eps: float = 1e-8) -> Float[Tensor, "*batch 3 3"]:
    """Rotation matrices of (not necessarily unit) quaternions in x, y, z, w order."""
    x, y, z, w = torch.unbind(quaternions, dim=-1)
    two_s = 2 / ((quaternions * quaternions).sum(dim=-1) + eps)
    rows = (
        1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
        two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
        two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y),
    )  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*quaternions.shape[:-1], 3, 3)


def build_covariance(
    scales: Float[Tensor, "*#batch 3"], rotations_xyzw: Float[Tensor, "*#batch 4"]
) -> Float[Tensor, "*#batch 3 3"]:
    """R S S^T R^T with S = diag(scales), R from the xyzw quaternion."""
    rotation = quaternion_to_matrix(rotations_xyzw)
    scale = torch.diag_embed(scales)
    return rotation @ scale @ scale.transpose(-1, -2) @ rotation.transpose(-1, -2)


def rotate_sh(
    harmonics: Float[Tensor, "*batch d_sh"], rotations: Float[Tensor, "*rot_batch 3 3"]
) -> Float[Tensor, "*batch d_sh"]:
    """Rotate real SH coefficients (e3nn basis) by rotation matrices (broadcast against the
    leading dimensions of ``harmonics``) with e3nn's Wigner-D matrices."""
    from e3nn.o3 import matrix_to_angles, wigner_D

    d_sh = harmonics.shape[-1]
    degrees = math.isqrt(d_sh)
    if degrees * degrees != d_sh:
        raise InputError(f"The SH dimension must be a square (sh_degree + 1)^2, got {d_sh}.")
    alpha, beta, gamma = matrix_to_angles(rotations)
    rotated = []
    with torch.device(harmonics.device):
        for degree in range(degrees):
            wigner = wigner_D(degree, alpha, beta, gamma).type(harmonics.dtype)
            block = harmonics[..., degree**2 : (degree + 1) ** 2]
            rotated.append(torch.einsum("...ij,...j->...i", wigner, block))
    return torch.cat(rotated, dim=-1)


def pixel_rays(
    coordinates: Float[Tensor, "*#batch 2"],
    extrinsics: Float[Tensor, "*#batch 4 4"],
    intrinsics: Float[Tensor, "*#batch 3 3"],
) -> tuple[Float[Tensor, "*#batch 3"], Float[Tensor, "*#batch 3"]]:
    """World-space ray origins (camera centres) and unit directions through normalised pixel
    coordinates: d = R_c2w normalise(K^-1 (x, y, 1))."""
    homogeneous = torch.cat((coordinates, torch.ones_like(coordinates[..., :1])), dim=-1)
    directions = torch.einsum("...ij,...j->...i", torch.linalg.inv(intrinsics), homogeneous)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    directions = torch.einsum("...ij,...j->...i", extrinsics[..., :3, :3], directions)
    origins = extrinsics[..., :3, 3].broadcast_to(directions.shape)
    return origins, directions


class GaussianAdapter(nn.Module):
    """Per-pixel raw features -> Gaussians (see the module docstring).

    Raw features per Gaussian: 3 scale + 4 quaternion (xyzw) + 3 * d_sh SH (colour-major).
    ``scale_activation`` defaults to MVSplat's ``SigmoidRangeDepthScale(min, max)``.
    """

    def __init__(self, cfg: GaussianAdapterCfg, scale_activation: ScaleActivation | None = None):
        super().__init__()
        if cfg.sh_degree < 0:
            raise ConfigError(f"sh_degree must be >= 0, got {cfg.sh_degree}.")
        self.cfg = cfg
        self.scale_activation = scale_activation or SigmoidRangeDepthScale(
            cfg.gaussian_scale_min, cfg.gaussian_scale_max
        )
        self.register_buffer("sh_mask", sh_mask(cfg.sh_degree), persistent=False)

    @property
    def d_sh(self) -> int:
        return (self.cfg.sh_degree + 1) ** 2

    @property
    def d_in(self) -> int:
        """Raw channels per Gaussian: 7 + 3 * d_sh."""
        return 7 + 3 * self.d_sh

    def forward(
        self,
        extrinsics: Float[Tensor, "*#batch 4 4"],
        intrinsics: Float[Tensor, "*#batch 3 3"],
        coordinates: Float[Tensor, "*#batch 2"],
        depths: Float[Tensor, "*#batch"],
        opacities: Float[Tensor, "*#batch"],
        raw_gaussians: Float[Tensor, "*#batch channel"],
        image_shape: tuple[int, int],
        eps: float = 1e-8,
    ) -> AdapterGaussians:
        if raw_gaussians.shape[-1] != self.d_in:
            raise InputError(
                f"Expected {self.d_in} raw Gaussian channels (3 scale + 4 rotation + 3*{self.d_sh} SH), "
                f"got {raw_gaussians.shape[-1]}."
            )
        raw_scales, raw_rotations, raw_sh = raw_gaussians.split((3, 4, 3 * self.d_sh), dim=-1)
        scales = self.scale_activation(raw_scales, depths, intrinsics, image_shape)
        rotations = raw_rotations / (raw_rotations.norm(dim=-1, keepdim=True) + eps)
        batch_shape = torch.broadcast_shapes(opacities.shape, scales.shape[:-1])
        sh = raw_sh.reshape(*raw_sh.shape[:-1], 3, self.d_sh)
        sh = sh.broadcast_to((*batch_shape, 3, self.d_sh)) * self.sh_mask.to(sh.dtype)
        c2w_rotations = extrinsics[..., :3, :3]
        covariances = c2w_rotations @ build_covariance(scales, rotations) @ c2w_rotations.transpose(-1, -2)
        origins, directions = pixel_rays(coordinates, extrinsics, intrinsics)
        means = origins + directions * depths[..., None]
        harmonics = rotate_sh(sh, c2w_rotations[..., None, :, :])
        return AdapterGaussians(
            means=means,
            covariances=covariances,
            harmonics=harmonics,
            opacities=opacities,
            scales=scales,
            rotations=rotations.broadcast_to((*scales.shape[:-1], 4)),
        )
