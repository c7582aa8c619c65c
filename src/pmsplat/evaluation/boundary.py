"""Depth-discontinuity band: where floating Gaussians and blurred edges show up first."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from pmsplat.errors import InputError


def depth_edges(
    depth: Float[Tensor, "batch height width"], *, rel_jump: float = 0.1
) -> Bool[Tensor, "batch height width"]:
    """Pixels on either side of a depth discontinuity.

    Two 4-neighbours p, q form a discontinuity when ``|d_p - d_q| / min(d_p, d_q) > rel_jump``;
    both p and q are marked. ``depth`` must be positive and finite (z-depth or ray distance).
    """
    _check_depth(depth)
    if rel_jump <= 0:
        raise InputError(f"depth_edges: 'rel_jump' must be > 0, got {rel_jump}.")
    edges = torch.zeros_like(depth, dtype=torch.bool)
    vertical = (depth[:, 1:] - depth[:, :-1]).abs() / torch.minimum(depth[:, 1:], depth[:, :-1]) > rel_jump
    horizontal = (depth[:, :, 1:] - depth[:, :, :-1]).abs() / torch.minimum(depth[:, :, 1:], depth[:, :, :-1]) > rel_jump
    edges[:, 1:] |= vertical
    edges[:, :-1] |= vertical
    edges[:, :, 1:] |= horizontal
    edges[:, :, :-1] |= horizontal
    return edges


def depth_boundary_mask(
    depth: Float[Tensor, "batch height width"], *, rel_jump: float = 0.1, band_px: int = 2
) -> Bool[Tensor, "batch height width"]:
    """A band of half-width ``band_px`` pixels around the depth discontinuities of ``depth``.

    :func:`depth_edges` (relative jump between 4-neighbours above ``rel_jump``) dilated by a
    ``(2 band_px + 1)``-square structuring element, i.e. every pixel within Chebyshev distance
    ``band_px`` of an edge pixel. ``band_px=0`` returns the edge pixels themselves.
    """
    if band_px < 0:
        raise InputError(f"depth_boundary_mask: 'band_px' must be >= 0, got {band_px}.")
    edges = depth_edges(depth, rel_jump=rel_jump)
    if band_px == 0:
        return edges
    size = 2 * band_px + 1
    dilated = F.max_pool2d(edges[:, None].float(), kernel_size=size, stride=1, padding=band_px)
    return dilated[:, 0] > 0.5


def _check_depth(depth: Tensor) -> None:
    if not bool(torch.isfinite(depth).all()):
        raise InputError("depth_boundary_mask: 'depth' holds NaN or infinite values; mask or fill them first.")
    if not bool((depth > 0).all()):
        raise InputError(
            "depth_boundary_mask: 'depth' must be positive (z-depth or ray distance in the camera frame); "
            f"got a minimum of {float(depth.min()):.4g}. World-space coordinates are not depths."
        )
