"""The 18-float camera vector of the pixelSplat-family chunks and its conversion.

Layout per frame: ``[fx/W, fy/H, cx/W, cy/H, 0, 0, r11, r12, r13, t1, r21, ..., r33, t3]``: the
normalised intrinsics, two unused zeros, then the **world-to-camera** 3x4 ``[R|t]`` in row-major
order with OpenCV axes (x right, y down, z forward). In memory, extrinsics are **camera-to-world**
4x4 (the inverse) and intrinsics a normalised 3x3 K.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ..errors import DataError, where

CAMERA_VECTOR_LENGTH = 18
ROTATION_TOLERANCE = 1e-2


def check_camera_vectors(cameras: object, file: object = None, scene: str | None = None) -> Tensor:
    """Validate the structure of a ``cameras`` entry: a float tensor of shape (N, 18), N >= 1.
    Returns it as float32; raises :class:`DataError` naming file and scene otherwise."""
    if not isinstance(cameras, Tensor):
        raise DataError(
            f"'cameras' must be a tensor of shape (N, 18), got {type(cameras).__name__}{where(file, scene)}."
        )
    if cameras.ndim != 2 or cameras.shape[1] != CAMERA_VECTOR_LENGTH or cameras.shape[0] == 0:
        raise DataError(
            f"'cameras' must have shape (N, 18) (normalised fx, fy, cx, cy, two zeros, row-major "
            f"world-to-camera 3x4), got {tuple(cameras.shape)}{where(file, scene)}. Re-convert the "
            "scene with a converter that writes the RealEstate10K camera layout."
        )
    if not cameras.is_floating_point():
        raise DataError(f"'cameras' must be floating point, got {cameras.dtype}{where(file, scene)}.")
    return cameras.float()


def invalid_pose_mask(cameras: Float[Tensor, "frame 18"]) -> Bool[Tensor, " frame"]:
    """True for frames whose camera vector is non-finite, whose focal lengths are not positive, or
    whose 3x3 block is not a rotation (R Rᵀ = I and det R = 1 within ``ROTATION_TOLERANCE``)."""
    values = cameras.double()
    finite = torch.isfinite(values).all(dim=1)
    values = torch.where(torch.isfinite(values), values, torch.zeros_like(values))
    rotation = values[:, 6:].reshape(-1, 3, 4)[:, :, :3]
    identity = torch.eye(3, dtype=values.dtype)
    orthogonal = (rotation @ rotation.transpose(1, 2) - identity).abs().amax(dim=(1, 2)) < ROTATION_TOLERANCE
    proper = (torch.linalg.det(rotation) - 1).abs() < ROTATION_TOLERANCE
    positive_focal = (values[:, 0] > 0) & (values[:, 1] > 0)
    return ~(finite & orthogonal & proper & positive_focal)


def convert_cameras(
    cameras: Float[Tensor, "frame 18"],
) -> tuple[Float[Tensor, "frame 4 4"], Float[Tensor, "frame 3 3"]]:
    """Camera vectors -> (camera-to-world 4x4 OpenCV extrinsics, normalised 3x3 intrinsics),
    both float32. The inverse is computed in float64 for accuracy."""
    frames = cameras.shape[0]
    values = cameras.double()
    intrinsics = torch.eye(3, dtype=torch.float64).repeat(frames, 1, 1)
    intrinsics[:, 0, 0] = values[:, 0]
    intrinsics[:, 1, 1] = values[:, 1]
    intrinsics[:, 0, 2] = values[:, 2]
    intrinsics[:, 1, 2] = values[:, 3]
    world_to_camera = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
    world_to_camera[:, :3] = values[:, 6:].reshape(frames, 3, 4)
    return torch.linalg.inv(world_to_camera).float(), intrinsics.float()


def encode_cameras(
    extrinsics: Float[Tensor, "frame 4 4"],
    intrinsics: Float[Tensor, "frame 3 3"],
) -> Float[Tensor, "frame 18"]:
    """Inverse of :func:`convert_cameras`: camera-to-world extrinsics + normalised K -> (N, 18)
    float32 camera vectors (for chunk writers)."""
    frames = extrinsics.shape[0]
    world_to_camera = torch.linalg.inv(extrinsics.double())
    vectors = torch.zeros(frames, CAMERA_VECTOR_LENGTH, dtype=torch.float64)
    vectors[:, 0] = intrinsics[:, 0, 0].double()
    vectors[:, 1] = intrinsics[:, 1, 1].double()
    vectors[:, 2] = intrinsics[:, 0, 2].double()
    vectors[:, 3] = intrinsics[:, 1, 2].double()
    vectors[:, 6:] = world_to_camera[:, :3].reshape(frames, 12)
    return vectors.float()


def field_of_view_degrees(intrinsics: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch 2"]:
    """Horizontal and vertical field of view in degrees from normalised intrinsics
    (``2 atan(0.5 / f_normalised)``, the upstream ``max_fov`` filter's measure)."""
    focal = torch.stack((intrinsics[..., 0, 0], intrinsics[..., 1, 1]), dim=-1)
    return torch.rad2deg(2 * torch.atan(0.5 / focal))
