"""Unprojection of z-depth maps to world pointmaps (normalised intrinsics, c2w OpenCV)."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def unproject_depth(
    depth: Float[Tensor, "view height width"],
    extrinsics: Float[Tensor, "view 4 4"],
    intrinsics: Float[Tensor, "view 3 3"],
) -> Float[Tensor, "view height width 3"]:
    """World points of the pixel centres: pixel (i, j) has normalised coordinates
    ((j + 0.5) / W, (i + 0.5) / H); ``depth`` is z-depth (camera +z), so the camera point is
    depth * K⁻¹ [u, v, 1]. Computed in float64, returned as float32."""
    views, height, width = depth.shape
    rows = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    columns = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    v, u = torch.meshgrid(rows, columns, indexing="ij")
    pixels = torch.stack([u, v, torch.ones_like(u)], dim=-1)  # (H, W, 3)
    rays = torch.einsum("vij,hwj->vhwi", torch.linalg.inv(intrinsics.double()), pixels)
    camera_points = rays * depth.double()[..., None]
    c2w = extrinsics.double()
    world = torch.einsum("vij,vhwj->vhwi", c2w[:, :3, :3], camera_points) + c2w[:, None, None, :3, 3]
    return world.float()
