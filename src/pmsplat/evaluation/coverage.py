"""Which target pixels the context views see: the "uncovered" regions of extrapolated views.

A feed-forward model places Gaussians only along the context views' pixels, so a target pixel
whose surface point lies outside every context view's image has nothing to render it (black
borders, stretched splats). Splitting the PSNR into covered / uncovered pixels tells whether a
loss of PSNR comes from there or from what the model did see.

Conventions: camera-to-world extrinsics (4, 4), OpenCV axes (x right, y down, z forward),
normalised intrinsics (row 0 divided by the width, row 1 by the height; pixel centres at
``((col + 0.5) / W, (row + 0.5) / H)``), ``depth`` is z-depth in the target camera.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from pmsplat.errors import InputError


@torch.no_grad()
def context_coverage(
    depth: Tensor,
    extrinsics: Tensor,
    intrinsics: Tensor,
    context_extrinsics: Tensor,
    context_intrinsics: Tensor,
) -> Bool[Tensor, "view height width"]:
    """depth (V, H, W), extrinsics (V, 4, 4), intrinsics (V, 3, 3), context_extrinsics (C, 4, 4),
    context_intrinsics (C, 3, 3) -> bool (V, H, W) (shapes checked here, InputError otherwise).

    True where the target pixel's surface point (unprojected with ``depth``) projects into at
    least one context image (in front of that camera, inside [0, 1]^2 in normalised image
    coordinates). Occlusion is not tested: "covered" means "inside a context frustum".
    Pixels with a non-positive or non-finite depth are reported as not covered."""
    if not isinstance(depth, Tensor) or depth.ndim != 3:
        raise InputError(f"context_coverage: 'depth' must be a (V, H, W) tensor, got {getattr(depth, 'shape', type(depth))}.")
    views, height, width = depth.shape
    if extrinsics.shape != (views, 4, 4) or intrinsics.shape != (views, 3, 3):
        raise InputError(
            f"context_coverage: target extrinsics {tuple(extrinsics.shape)} / intrinsics {tuple(intrinsics.shape)} "
            f"must be ({views}, 4, 4) / ({views}, 3, 3) for depth {tuple(depth.shape)}."
        )
    count = context_extrinsics.shape[0]
    if context_extrinsics.shape != (count, 4, 4) or context_intrinsics.shape != (count, 3, 3) or count == 0:
        raise InputError(
            f"context_coverage: context extrinsics {tuple(context_extrinsics.shape)} / intrinsics "
            f"{tuple(context_intrinsics.shape)} must be (C >= 1, 4, 4) / (C, 3, 3)."
        )
    return _coverage(depth, extrinsics, intrinsics, context_extrinsics, context_intrinsics)


def _coverage(
    depth: Float[Tensor, "view height width"],
    extrinsics: Float[Tensor, "view 4 4"],
    intrinsics: Float[Tensor, "view 3 3"],
    context_extrinsics: Float[Tensor, "context 4 4"],
    context_intrinsics: Float[Tensor, "context 3 3"],
) -> Bool[Tensor, "view height width"]:
    """:func:`context_coverage` on checked inputs (float64 arithmetic)."""
    views, height, width = depth.shape
    count = context_extrinsics.shape[0]
    dtype = torch.float64
    z = depth.to(dtype)
    rows = (torch.arange(height, dtype=dtype, device=depth.device) + 0.5) / height
    cols = (torch.arange(width, dtype=dtype, device=depth.device) + 0.5) / width
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    pixels = torch.stack([u, v, torch.ones_like(u)], dim=-1)  # (H, W, 3)
    rays = torch.einsum("vij,hwj->vhwi", torch.linalg.inv(intrinsics.to(dtype)), pixels)  # z = 1
    camera = rays * z[..., None]
    world = torch.einsum("vij,vhwj->vhwi", extrinsics[:, :3, :3].to(dtype), camera) + extrinsics[:, None, None, :3, 3].to(dtype)
    covered = torch.zeros_like(z, dtype=torch.bool)
    world_to_context = torch.linalg.inv(context_extrinsics.to(dtype))
    for c in range(count):
        local = torch.einsum("ij,vhwj->vhwi", world_to_context[c, :3, :3], world) + world_to_context[c, :3, 3]
        image = torch.einsum("ij,vhwj->vhwi", context_intrinsics[c].to(dtype), local)
        front = local[..., 2] > 0
        uv = image[..., :2] / torch.where(front, image[..., 2], torch.ones_like(image[..., 2]))[..., None]
        inside = front & (uv >= 0).all(-1) & (uv <= 1).all(-1)
        covered |= inside
    return covered & torch.isfinite(z) & (z > 0)
