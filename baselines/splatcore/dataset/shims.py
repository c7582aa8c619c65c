"""Data shims with the upstream conventions (upstream-facts §2.7).

Intrinsics are normalised (row 0 / W, row 1 / H). Resizing keeps normalised fx, fy; a centre crop
multiplies them by (size before crop) / (size after crop); cx, cy are never changed (upstream
assumes 0.5). Depth (V, H, W) and pointmap (V, H, W, 3) follow the image with nearest-neighbour
resampling (centre-aligned, ``nearest-exact``) so that every value stays a true surface sample.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from ..errors import ConfigError

RESIZE_FILTER = Image.Resampling.LANCZOS  # the crop shim's PIL filter (MVSplat, DepthSplat)


def rescale_image(
    image: Float[Tensor, "3 height_in width_in"], shape: tuple[int, int]
) -> Float[Tensor, "3 height_out width_out"]:
    """Resize with PIL (:data:`RESIZE_FILTER`) after a uint8 round trip (values * 255 truncated to
    uint8), then / 255, as upstream does."""
    height, width = shape
    quantised = (image * 255).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    resized = Image.fromarray(quantised).resize((width, height), RESIZE_FILTER)
    array = np.asarray(resized, dtype=np.float64) / 255
    return torch.tensor(array, dtype=image.dtype).permute(2, 0, 1).contiguous()


def _resize_nearest(values: Tensor, shape: tuple[int, int]) -> Tensor:
    """Nearest (centre-aligned) resize of (V, H, W) or (V, H, W, C) tensors."""
    channels_last = values.ndim == 4
    grid = values.permute(0, 3, 1, 2) if channels_last else values[:, None]
    resized = F.interpolate(grid, size=shape, mode="nearest-exact")
    return resized.permute(0, 2, 3, 1).contiguous() if channels_last else resized[:, 0]


def _centre_crop_offsets(size_in: tuple[int, int], size_out: tuple[int, int]) -> tuple[int, int]:
    return (size_in[0] - size_out[0]) // 2, (size_in[1] - size_out[1]) // 2


def rescale_and_crop_views(views: dict, shape: tuple[int, int]) -> dict:
    """The crop shim on one unbatched view set: scale by s = max(h_out/h_in, w_out/w_in) to
    round(h*s) x round(w*s), centre-crop to ``shape``, and fix fx, fy (x w_scaled/w_out,
    y h_scaled/h_out). Skips the resize when the native size already equals ``shape``."""
    images: Float[Tensor, "view 3 h w"] = views["image"]
    height_in, width_in = images.shape[-2:]
    height_out, width_out = shape
    scale = max(height_out / height_in, width_out / width_in)
    scaled = (round(height_in * scale), round(width_in * scale))
    if scaled[0] < height_out or scaled[1] < width_out:  # float rounding guard
        scaled = (max(scaled[0], height_out), max(scaled[1], width_out))
    result = dict(views)
    if scaled != (height_in, width_in):
        result["image"] = torch.stack([rescale_image(image, scaled) for image in images])
        for key in ("depth", "pointmap"):
            if key in views:
                result[key] = _resize_nearest(views[key], scaled)
    top, left = _centre_crop_offsets(scaled, shape)
    result["image"] = result["image"][..., top : top + height_out, left : left + width_out]
    for key in ("depth", "pointmap"):
        if key in result:
            values = result[key]
            result[key] = (
                values[:, top : top + height_out, left : left + width_out]
                if key == "depth"
                else values[:, top : top + height_out, left : left + width_out, :]
            )
    intrinsics = views["intrinsics"].clone()
    intrinsics[..., 0, 0] *= scaled[1] / width_out
    intrinsics[..., 1, 1] *= scaled[0] / height_out
    result["intrinsics"] = intrinsics
    return result


def apply_crop_shim(example: dict, shape: tuple[int, int]) -> dict:
    """Crop shim on an unbatched example (context and target)."""
    return {
        **example,
        "context": rescale_and_crop_views(example["context"], shape),
        "target": rescale_and_crop_views(example["target"], shape),
    }


REFLECT_X = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))


def flip_views(views: dict) -> dict:
    """Horizontal flip of an unbatched view set: images (and depth/pointmap) mirrored left-right,
    extrinsics reflected as diag(-1,1,1,1) E diag(-1,1,1,1), world pointmaps reflected in x.
    cx is not changed (upstream assumes 0.5)."""
    reflect = REFLECT_X.to(views["extrinsics"])
    result = dict(views)
    result["image"] = views["image"].flip(-1)
    result["extrinsics"] = reflect @ views["extrinsics"] @ reflect
    if "depth" in views:
        result["depth"] = views["depth"].flip(-1)
    if "pointmap" in views:
        pointmap = views["pointmap"].flip(-2).clone()
        pointmap[..., 0] = -pointmap[..., 0]
        result["pointmap"] = pointmap
    return result


def apply_augmentation_shim(example: dict, generator: torch.Generator | None = None, probability: float = 0.5) -> dict:
    """Training augmentation: with probability 0.5 flip context and target together."""
    if torch.rand(tuple(), generator=generator) >= probability:
        return example
    return {**example, "context": flip_views(example["context"]), "target": flip_views(example["target"])}


def apply_patch_shim(batch: dict, patch_size: int) -> dict:
    """The model wrapper's patch shim on a batched example: centre-crop every view set to the
    largest multiple of ``patch_size`` (``shim_patch_size * downscale_factor``, 16 by default)
    and multiply fx by W/W_new, fy by H/H_new. H and W must be even (upstream assertion)."""
    if patch_size < 1:
        raise ConfigError(f"patch_size must be >= 1, got {patch_size}.")
    result = dict(batch)
    for name in ("context", "target"):
        if name in batch:
            result[name] = _patch_crop_views(batch[name], patch_size)
    return result


def _patch_crop_views(views: dict, patch_size: int) -> dict:
    height, width = views["image"].shape[-2:]
    if height % 2 or width % 2:
        raise ConfigError(
            f"The patch shim needs even image sizes, got {height}x{width}; fix dataset.image_shape."
        )
    height_new, width_new = (height // patch_size) * patch_size, (width // patch_size) * patch_size
    if height_new == 0 or width_new == 0:
        raise ConfigError(f"Images of {height}x{width} are smaller than the patch size {patch_size}.")
    top, left = _centre_crop_offsets((height, width), (height_new, width_new))
    result = dict(views)
    result["image"] = views["image"][..., top : top + height_new, left : left + width_new]
    if "depth" in views:
        result["depth"] = views["depth"][..., top : top + height_new, left : left + width_new]
    if "pointmap" in views:
        result["pointmap"] = views["pointmap"][..., top : top + height_new, left : left + width_new, :]
    intrinsics = views["intrinsics"].clone()
    intrinsics[..., 0, 0] *= width / width_new
    intrinsics[..., 1, 1] *= height / height_new
    result["intrinsics"] = intrinsics
    return result
