"""Plane-sweep cost-volume helpers (MVSplat, DepthSplat).

Conventions (upstream-facts §7.3, §11.3):
* depth candidates are z-depth planes, uniform in inverse depth between 1/far and 1/near;
* the reference pixel grid uses integer pixel coordinates (x = column, y = row) at feature
  resolution, with K = normalised intrinsics scaled by (W_f, H_f) — cx, cy become W_f/2, H_f/2;
* ``reference_to_other`` = (other c2w)^-1 @ (reference c2w) maps reference-camera points into the
  other camera; the projected z is clamped at 1e-3 and the other view's features are sampled
  bilinearly with ``grid_sample(align_corners=True, padding_mode="zeros")``;
* correlation = <reference feature, warped feature> / sqrt(C).
Like upstream, the same (reference) intrinsics K are used to unproject and to project.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from ..errors import InputError


def inverse_depth_candidates(
    near: Float[Tensor, " batch"], far: Float[Tensor, " batch"], num_candidates: int
) -> Float[Tensor, "batch candidate"]:
    """Inverse depths (disparities) 1/far + t (1/near - 1/far), t = linspace(0, 1, D)."""
    if num_candidates < 2:
        raise InputError(f"Need at least 2 depth candidates, got {num_candidates}.")
    if not bool((far > near).all()) or not bool((near > 0).all()):
        raise InputError("near and far must satisfy 0 < near < far for every view.")
    min_disparity = (1.0 / far)[:, None]
    max_disparity = (1.0 / near)[:, None]
    steps = torch.linspace(0.0, 1.0, num_candidates, device=near.device, dtype=torch.float32)[None]
    return (min_disparity + steps * (max_disparity - min_disparity)).to(near.dtype)


def pixel_intrinsics(
    intrinsics: Float[Tensor, "*batch 3 3"], height: int, width: int
) -> Float[Tensor, "*batch 3 3"]:
    """Normalised intrinsics -> pixel units of an (height, width) map (rows 0 and 1 scaled)."""
    scaled = intrinsics.clone()
    scaled[..., 0, :] = scaled[..., 0, :] * float(width)
    scaled[..., 1, :] = scaled[..., 1, :] * float(height)
    return scaled


def relative_pose(
    reference_c2w: Float[Tensor, "*batch 4 4"], other_c2w: Float[Tensor, "*batch 4 4"]
) -> Float[Tensor, "*batch 4 4"]:
    """(other c2w)^-1 @ (reference c2w): reference-camera coordinates -> other-camera coordinates."""
    return torch.linalg.inv(other_c2w) @ reference_c2w


def warp_with_depth_candidates(
    other_features: Float[Tensor, "batch channel height width"],
    intrinsics: Float[Tensor, "batch 3 3"],
    reference_to_other: Float[Tensor, "batch 4 4"],
    depths: Float[Tensor, "batch candidate height width"],
    clamp_min_depth: float = 1e-3,
    padding_mode: str = "zeros",
) -> Float[Tensor, "batch channel candidate height width"]:
    """Sample ``other_features`` at the projections of every reference pixel placed at every
    candidate depth (z-depth in the reference camera). ``intrinsics`` are in pixel units of the
    feature map (see ``pixel_intrinsics``); ``depths`` may differ per pixel."""
    b, d, h, w = depths.shape
    c = other_features.shape[1]
    with torch.no_grad():
        ys, xs = torch.meshgrid(
            torch.arange(h, device=depths.device, dtype=depths.dtype),
            torch.arange(w, device=depths.device, dtype=depths.dtype),
            indexing="ij",
        )
        grid = torch.stack((xs, ys, torch.ones_like(xs)), dim=0).reshape(1, 3, h * w).expand(b, 3, h * w)
        rays = torch.linalg.inv(intrinsics) @ grid  # (b, 3, hw)
        rotated = (reference_to_other[:, :3, :3] @ rays)[:, :, None, :]  # (b, 3, 1, hw)
        points = rotated * depths.reshape(b, 1, d, h * w) + reference_to_other[:, :3, 3:, None]
        projected = (intrinsics @ points.reshape(b, 3, d * h * w)).reshape(b, 3, d, h * w)
        xy = projected[:, :2] / projected[:, 2:].clamp(min=clamp_min_depth)
        x_grid = 2 * xy[:, 0] / (w - 1) - 1
        y_grid = 2 * xy[:, 1] / (h - 1) - 1
        sample_grid = torch.stack((x_grid, y_grid), dim=-1).reshape(b, d * h, w, 2)
    warped = F.grid_sample(
        other_features, sample_grid, mode="bilinear", padding_mode=padding_mode, align_corners=True
    )
    return warped.reshape(b, c, d, h, w)


def correlation(
    reference_features: Float[Tensor, "batch channel height width"],
    warped_features: Float[Tensor, "batch channel candidate height width"],
) -> Float[Tensor, "batch candidate height width"]:
    """Dot product over channels divided by sqrt(C)."""
    channels = reference_features.shape[1]
    return (reference_features[:, :, None] * warped_features).sum(dim=1) / (channels**0.5)
