"""VGGT teacher (Wang et al., CVPR 2025): the paper's pointmap teacher.

Needs the ``vggt`` package (MIT code)::

    pip install "vggt @ git+https://github.com/facebookresearch/vggt"

and its weights (``teacher.weights``): a Hugging Face hub id (``facebook/VGGT-1B``, from the hub
cache or downloaded at construction when the machine has network access; check its licence), a
local state-dict file (``.pt``/``.pth``/``.safetensors``, e.g. the hub's ``model.pt``) or a local
Hugging Face model folder (``config.json`` + ``model.safetensors``), absolute or relative paths
alike. Nothing is downloaded at import. ``pmsplat teacher check vggt`` tries the setup out.

The model is frozen (eval mode, no gradients) and held as a plain attribute of a plain Python
object, so it never enters an optimizer or a checkpoint. Inference runs under autocast bf16 on
Ampere+ GPUs, fp16 on older GPUs and fp32 on CPU. Images must already be a multiple of
``patch_size`` = 14 (PM-Loss resizes them bilinearly and the pointmap back with nearest).

Two sources of points (``points_from``):
- ``point_head`` (default, as the official PM-Loss code): VGGT's ``world_points`` and
  ``world_points_conf``.
- ``depth_and_cameras``: points unprojected from VGGT's depth map with its predicted cameras,
  which VGGT's README reports as more accurate; confidence = ``depth_conf``.
Both are in VGGT's frame: the first view's camera (OpenCV axes: x right, y down, z forward) is
the world, in VGGT's normalised scale, whatever the number of views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from pmsplat.errors import InputError
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.registry import register_teacher
from pmsplat.teachers.frozen import autocast_context, default_device, freeze, inference_dtype, load_weights
from pmsplat.teachers.geometry import unproject_depth

WEIGHTS_HINT = (
    "Without network access, download facebook/VGGT-1B (its model.pt, or the whole snapshot folder) on a machine "
    "with internet and pass the local path: teacher.weights=/path/to/model.pt or teacher.weights=/path/to/folder."
)

INSTALL = 'pip install "vggt @ git+https://github.com/facebookresearch/vggt"'


@dataclass
class VGGTTeacherCfg:
    weights: str = "facebook/VGGT-1B"
    points_from: Literal["point_head", "depth_and_cameras"] = "point_head"
    device: str | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"


def _import(module: str, name: str):
    from pmsplat.teachers.imports import import_names
    return import_names(module, [name], "The VGGT teacher", ("vggt",), INSTALL)[0]


def _import_vggt():
    return _import("vggt.models.vggt", "VGGT")


def _import_pose_decoder():
    return _import("vggt.utils.pose_enc", "pose_encoding_to_extri_intri")


@register_teacher("vggt", VGGTTeacherCfg, install=INSTALL)
class VGGTTeacher:
    """Pointmap teacher backed by a frozen VGGT model. See the module docstring."""

    patch_size = 14

    def __init__(self, cfg: VGGTTeacherCfg | None = None, model: torch.nn.Module | None = None):
        self.cfg = cfg or VGGTTeacherCfg()
        self.device = default_device(self.cfg.device)
        if model is None:
            vggt_class = _import_vggt()
            model = load_weights(self.cfg.weights, vggt_class, vggt_class.from_pretrained, "VGGT", WEIGHTS_HINT)
        self.model = freeze(model).to(self.device)
        self.dtype = inference_dtype(self.device, self.cfg.dtype)

    def output_frame(self, views: int) -> str:
        """The frame of the returned points (the same for any number of views)."""
        return "first view's camera frame (OpenCV: x right, y down, z forward), VGGT's normalised scale"

    @torch.no_grad()
    def __call__(
        self,
        images: Float[Tensor, "batch view 3 height width"],
        context: dict | None = None,
    ) -> TeacherOutput:
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise InputError(
                f"VGGT needs image sizes that are multiples of {self.patch_size}, got {height}x{width}; "
                "PMLoss resizes images for the teacher, call the teacher through it."
            )
        with autocast_context(self.device, self.dtype):
            predictions = self.model(images.to(self.device))
        if self.cfg.points_from == "point_head":
            points = predictions["world_points"].float()
            confidence = predictions["world_points_conf"].float()
        else:
            to_extrinsics_intrinsics = _import_pose_decoder()
            world_to_camera, intrinsics = to_extrinsics_intrinsics(predictions["pose_enc"], (height, width))
            depth = predictions["depth"][..., 0].float()
            points = unproject_depth(depth, world_to_camera.float(), intrinsics.float())
            confidence = predictions["depth_conf"].float()
        return TeacherOutput(points=points.to(images.device), confidence=confidence.to(images.device))
