"""Geometry shared by the teacher adapters: turning a depth map + cameras into a world pointmap."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def pixel_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> Float[Tensor, "height width 3"]:
    """Homogeneous pixel coordinates (u, v, 1) with pixel centres at integer coordinates
    (u = column index, v = row index), the convention of VGGT's and DA3's intrinsics."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([u, v, torch.ones_like(u)], dim=-1)


def unproject_depth(
    depth: Float[Tensor, "*batch height width"],
    world_to_camera: Float[Tensor, "*batch 3 4"],
    intrinsics_pixels: Float[Tensor, "*batch 3 3"],
) -> Float[Tensor, "*batch height width 3"]:
    """World points of a z-depth map.

    depth: camera-space z (not ray distance), one value per pixel.
    world_to_camera: OpenCV [R | t] (x right, y down, z forward), camera = R @ world + t.
    intrinsics_pixels: K in pixels for this depth map's resolution, pixel centres at integers.
    Returns world = R^T (z K^-1 (u, v, 1) - t).
    """
    height, width = depth.shape[-2:]
    uv1 = pixel_grid(height, width, depth.device, depth.dtype)
    rays = torch.einsum("...ij,hwj->...hwi", torch.linalg.inv(intrinsics_pixels), uv1)
    camera_points = rays * depth[..., None]
    rotation = world_to_camera[..., :3, :3]
    translation = world_to_camera[..., :3, 3]
    shifted = camera_points - translation[..., None, None, :]
    return torch.einsum("...ji,...hwj->...hwi", rotation, shifted)
