"""Depth-discontinuity band: where floating Gaussians and blurred edges show up first.

Depth here is any positive per-pixel distance in the camera frame (z-depth or ray distance);
the edge test is relative, so it does not depend on the scene's scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from pmsplat.errors import InputError


def depth_edges(
    depth: Float[Tensor, "batch height width"],
    *,
    rel_jump: float = 0.1,
    valid: Bool[Tensor, "batch height width"] | None = None,
) -> Bool[Tensor, "batch height width"]:
    """Pixels on either side of a depth discontinuity.

    Two 4-neighbours p, q form a discontinuity when ``|d_p - d_q| / min(d_p, d_q) > rel_jump``;
    both p and q are marked. ``depth`` must be positive and finite where ``valid`` (default:
    everywhere); pairs involving an invalid pixel are ignored and invalid pixels are never marked.
    """
    if rel_jump <= 0:
        raise InputError(f"depth_edges: 'rel_jump' must be > 0, got {rel_jump}.")
    if valid is None:
        valid = torch.ones_like(depth, dtype=torch.bool)
    elif valid.shape != depth.shape or valid.dtype != torch.bool:
        raise InputError(f"depth_edges: 'valid' must be bool of shape {tuple(depth.shape)}, got {valid.dtype} {tuple(valid.shape)}.")
    _check_depth(depth, valid)
    depth = torch.where(valid, depth, torch.ones_like(depth))
    edges = torch.zeros_like(depth, dtype=torch.bool)
    a, b = depth[:, 1:], depth[:, :-1]
    vertical = ((a - b).abs() / torch.minimum(a, b) > rel_jump) & valid[:, 1:] & valid[:, :-1]
    a, b = depth[:, :, 1:], depth[:, :, :-1]
    horizontal = ((a - b).abs() / torch.minimum(a, b) > rel_jump) & valid[:, :, 1:] & valid[:, :, :-1]
    edges[:, 1:] |= vertical
    edges[:, :-1] |= vertical
    edges[:, :, 1:] |= horizontal
    edges[:, :, :-1] |= horizontal
    return edges


def depth_boundary_mask(
    depth: Float[Tensor, "batch height width"],
    *,
    rel_jump: float = 0.1,
    band_px: int = 2,
    valid: Bool[Tensor, "batch height width"] | None = None,
) -> Bool[Tensor, "batch height width"]:
    """A band of half-width ``band_px`` pixels around the depth discontinuities of ``depth``.

    :func:`depth_edges` (relative jump between 4-neighbours above ``rel_jump``) dilated by a
    ``(2 band_px + 1)``-square structuring element, i.e. every pixel within Chebyshev distance
    ``band_px`` of an edge pixel (clipped at the image border). ``band_px=0`` returns the edge
    pixels themselves. ``valid`` as in :func:`depth_edges` (the band may cover invalid pixels).
    """
    if band_px < 0:
        raise InputError(f"depth_boundary_mask: 'band_px' must be >= 0, got {band_px}.")
    edges = depth_edges(depth, rel_jump=rel_jump, valid=valid)
    if band_px == 0:
        return edges
    size = 2 * band_px + 1
    dilated = F.max_pool2d(edges[:, None].float(), kernel_size=size, stride=1, padding=band_px)
    return dilated[:, 0] > 0.5


def camera_z_depth(
    points: Float[Tensor, "batch height width 3"], extrinsics: Float[Tensor, "batch 4 4"]
) -> Float[Tensor, "batch height width"]:
    """z-depth of world-space points in the camera given by ``extrinsics`` (camera-to-world,
    OpenCV axes: +z forward), e.g. to find the depth edges of a teacher's pointmap:
    ``z = (R^T (p - t))_z`` with ``R, t`` the rotation and centre of the camera."""
    rotation = extrinsics[:, :3, :3]
    centre = extrinsics[:, :3, 3]
    relative = points - centre[:, None, None, :]
    return torch.einsum("bhwi,bi->bhw", relative, rotation[:, :, 2])


def _check_depth(depth: Tensor, valid: Tensor) -> None:
    values = depth[valid]
    if not bool(torch.isfinite(values).all()):
        raise InputError(
            "depth_boundary_mask: 'depth' holds NaN or infinite values; mark them invalid with 'valid'."
        )
    if values.numel() and not bool((values > 0).all()):
        raise InputError(
            "depth_boundary_mask: 'depth' must be positive (z-depth or ray distance in the camera frame); "
            f"got a minimum of {float(values.min()):.4g}. World-space coordinates are not depths "
            "(use camera_z_depth), and pixels behind the camera can be excluded with 'valid'."
        )
