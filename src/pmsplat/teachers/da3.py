"""Depth Anything 3 teacher (``depth-anything-3`` on PyPI): multi-view depth + cameras → world pointmap.

    pip install depth-anything-3

Weights: a hub id such as ``depth-anything/DA3NESTED-GIANT-LARGE`` (downloaded at construction
when there is network access) — there is no local-file path in the package's own API, so a local
snapshot directory is passed as the id.

Contract used (the package's documented ``DepthAnything3.inference(images)`` output, v0.1.x):
``prediction.depth`` (N, h, w) z-depth, ``prediction.conf`` (N, h, w), ``prediction.extrinsics``
(N, 3, 4) OpenCV world-to-camera, ``prediction.intrinsics`` (N, 3, 3) in pixels of the (h, w)
processing resolution. Points are unprojected at (h, w) and the pointmap is resized to the input
size with nearest-neighbour sampling (the same rule PM-Loss applies to VGGT's output).
The frame is DA3's (first camera, its own scale); PM-Loss's similarity alignment absorbs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from pmsplat.errors import MissingDependencyError, MissingWeightsError
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.frozen import default_device, freeze
from pmsplat.teachers.geometry import unproject_depth

DA3_PIP = "pip install depth-anything-3"


@dataclass
class DA3TeacherCfg:
    weights: str = "depth-anything/DA3NESTED-GIANT-LARGE"
    device: str | None = None
    inference_kwargs: dict = field(default_factory=dict)


def _import_da3():
    try:
        from depth_anything_3.api import DepthAnything3
    except ImportError as error:
        raise MissingDependencyError("depth-anything-3", "The Depth Anything 3 teacher", DA3_PIP) from error
    return DepthAnything3


def _as_tensor(value, device: torch.device) -> Tensor:
    return torch.as_tensor(np.asarray(value), dtype=torch.float32, device=device)


class DA3Teacher:
    """Pointmap teacher backed by a frozen Depth Anything 3 model. See the module docstring."""

    patch_size = 14

    def __init__(self, cfg: DA3TeacherCfg | None = None, model=None):
        self.cfg = cfg or DA3TeacherCfg()
        self.device = default_device(self.cfg.device)
        if model is None:
            model_class = _import_da3()
            try:
                model = model_class.from_pretrained(self.cfg.weights)
            except Exception as error:
                raise MissingWeightsError(
                    f"Depth Anything 3: could not load '{self.cfg.weights}' ({type(error).__name__}: {error}). "
                    "Without network access, download the model snapshot elsewhere and pass its local "
                    "directory (teacher.weights=/path/to/snapshot)."
                ) from error
        self.model = freeze(model).to(self.device)
        self.last_seconds = 0.0

    def _scene(self, images: Float[Tensor, "view 3 height width"]) -> tuple[Tensor, Tensor]:
        height, width = images.shape[-2:]
        frames = [(image.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy() for image in images]
        prediction = self.model.inference(frames, **self.cfg.inference_kwargs)
        depth = _as_tensor(prediction.depth, self.device)
        points = unproject_depth(
            depth, _as_tensor(prediction.extrinsics, self.device)[..., :3, :], _as_tensor(prediction.intrinsics, self.device)
        )
        confidence = _as_tensor(prediction.conf, self.device)
        if points.shape[1:3] != (height, width):
            points = F.interpolate(points.permute(0, 3, 1, 2), size=(height, width), mode="nearest").permute(0, 2, 3, 1)
            confidence = F.interpolate(confidence[:, None], size=(height, width), mode="nearest")[:, 0]
        return points, confidence

    @torch.no_grad()
    def __call__(
        self,
        images: Float[Tensor, "batch view 3 height width"],
        context: dict | None = None,
    ) -> TeacherOutput:
        start = time.perf_counter()
        results = [self._scene(example) for example in images]
        self.last_seconds = time.perf_counter() - start
        points = torch.stack([r[0] for r in results]).to(images.device)
        confidence = torch.stack([r[1] for r in results]).to(images.device)
        return TeacherOutput(points=points, confidence=confidence)
