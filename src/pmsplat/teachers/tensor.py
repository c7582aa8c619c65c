"""A teacher that serves given pointmaps (tests, examples, precomputed caches)."""

from __future__ import annotations

import torch
from torch import Tensor

from pmsplat.errors import InputError
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.registry import register_teacher


@register_teacher("tensor", install="pmsplat.teachers.tensor", real=False)
class TensorTeacher:
    """Serves fixed pointmaps, whatever the images show.

    points: (B, V, H', W', 3) world points in any frame/scale; confidence: optional (B, V, H', W')
    positive. ``patch_size`` is what PM-Loss rounds the image size down to before the call (1 =
    no resizing). The returned tensors are moved to the images' device; their resolution is the
    stored one (PM-Loss resizes them to the prediction's H x W with nearest interpolation).
    The stored tensors are not parameters and never receive gradients.
    """

    def __init__(
        self,
        points: Tensor,
        confidence: Tensor | None = None,
        patch_size: int = 1,
    ) -> None:
        if not isinstance(points, Tensor) or points.ndim != 5 or points.shape[-1] != 3 or not points.is_floating_point():
            shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            raise InputError(f"TensorTeacher: 'points' must be a floating-point tensor (B, V, H, W, 3), got {shape}.")
        if confidence is not None and (
            not isinstance(confidence, Tensor) or tuple(confidence.shape) != tuple(points.shape[:4])
        ):
            shape = tuple(confidence.shape) if isinstance(confidence, Tensor) else type(confidence).__name__
            raise InputError(f"TensorTeacher: 'confidence' must have shape {tuple(points.shape[:4])}, got {shape}.")
        if not isinstance(patch_size, int) or patch_size < 1:
            raise InputError(f"TensorTeacher: 'patch_size' must be an int >= 1, got {patch_size!r}.")
        self.points = points.detach()
        self.confidence = None if confidence is None else confidence.detach()
        self.patch_size = patch_size

    def __call__(
        self,
        images: Tensor,
        context: dict | None = None,
    ) -> TeacherOutput:
        """The stored pointmap for ``images`` (B, V, 3, H, W); B and V must match the stored ones."""
        if not isinstance(images, Tensor) or images.ndim != 5 or tuple(images.shape[:2]) != tuple(self.points.shape[:2]):
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise InputError(
                f"TensorTeacher: 'images' must be ({self.points.shape[0]}, {self.points.shape[1]}, 3, H, W) to match "
                f"the stored pointmaps {tuple(self.points.shape)}, got {shape}."
            )
        device = images.device
        confidence = None if self.confidence is None else self.confidence.to(device)
        return TeacherOutput(self.points.to(device), confidence)
