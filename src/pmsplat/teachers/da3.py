"""Depth Anything 3 teacher (``depth-anything-3`` on PyPI): multi-view depth + cameras → world pointmap.

    pip install depth-anything-3 addict        # or: pip install -e ".[da3]"

depth-anything-3 0.1.1 imports ``addict`` without declaring it, pins ``numpy<2`` and imports
torchvision: on a CPU-only torch install the torchvision build for that torch
(``pmsplat teacher check da3`` prints the exact command when it is missing or mismatched).

Weights (``teacher.weights``): a hub id such as ``depth-anything/DA3NESTED-GIANT-LARGE`` (the hub
cache, or downloaded at construction when there is network access) or a local model folder
(``config.json`` + ``model.safetensors``, what ``save_pretrained`` / a hub snapshot holds),
absolute or relative paths alike. The package has no single-file format.

Contract used (the package's documented ``DepthAnything3.inference(images, ...)`` output, v0.1.x):
``prediction.depth`` (N, h, w) z-depth, ``prediction.conf`` (N, h, w), ``prediction.extrinsics``
(N, 3|4, 4) OpenCV world-to-camera, ``prediction.intrinsics`` (N, 3, 3) in pixels of the (h, w)
processing resolution. Points are unprojected at (h, w) and the pointmap is resized to the input
size with nearest-neighbour sampling (the same rule PM-Loss applies to VGGT's output).

Options passed to ``inference``: ``process_res`` (the long side DA3 resizes to, rounded to its
patch 14; the package default 504 costs ~138 s for 2 views with the default 1.7B model on CPU,
so smaller values are much faster) and ``ref_view_strategy`` (which view anchors the world frame,
package default ``saddle_balanced``); anything else through ``inference_kwargs``.

Output frame: DA3's world frame, the camera frame (OpenCV axes) of its **reference view**, in
DA3's own scale. With 1–2 views the reference is the first view; with 3 or more views DA3 picks it
with ``ref_view_strategy`` (``first`` pins the first view; the default may pick another one).
PM-Loss's similarity alignment absorbs the frame either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from pmsplat.errors import InputError, MissingDependencyError, MissingWeightsError, PmsplatError
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.frozen import check_hf_folder, default_device, freeze, resolve_weights
from pmsplat.teachers.geometry import unproject_depth
from pmsplat.teachers.registry import register_teacher

INSTALL = "pip install depth-anything-3 addict"

REF_VIEW_STRATEGIES = ("first", "middle", "saddle_balanced", "saddle_sim_range")
WEIGHTS_HINT = (
    "Without network access, download the model snapshot folder (config.json + model.safetensors) on a machine "
    "with internet and pass it: teacher.weights=/path/to/snapshot (absolute or relative)."
)


@dataclass
class DA3TeacherCfg:
    """weights: hub id or local model folder. process_res: DA3's processing resolution (long
    side, px). ref_view_strategy: DA3's reference-view choice for 3+ views (the output frame).
    inference_kwargs: further keyword arguments of ``DepthAnything3.inference``."""

    weights: str = "depth-anything/DA3NESTED-GIANT-LARGE"
    device: str | None = None
    process_res: int = 504
    ref_view_strategy: Literal["first", "middle", "saddle_balanced", "saddle_sim_range"] = "saddle_balanced"
    inference_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.process_res < 14:
            raise InputError(f"DA3TeacherCfg.process_res must be >= 14 (one patch), got {self.process_res}.")
        if self.ref_view_strategy not in REF_VIEW_STRATEGIES:
            raise InputError(f"DA3TeacherCfg.ref_view_strategy must be one of {list(REF_VIEW_STRATEGIES)}, got {self.ref_view_strategy!r}.")
        clashes = sorted({"process_res", "ref_view_strategy"} & set(self.inference_kwargs))
        if clashes:
            raise InputError(f"DA3TeacherCfg: set {clashes} as teacher options (teacher.{clashes[0]}=...), not in inference_kwargs.")


def _import_da3():
    from pmsplat.teachers.imports import import_names
    return import_names(
        "depth_anything_3.api", ["DepthAnything3"], "The Depth Anything 3 teacher", ("depth_anything_3",), INSTALL
    )[0]


def load_da3(weights: str, model_class) -> torch.nn.Module:
    """``model_class.from_pretrained`` of a hub id or a local model folder (absolute or relative);
    a file, a folder without ``model.safetensors`` or a failing hub load is one clear error."""
    source = resolve_weights(weights, "Depth Anything 3", WEIGHTS_HINT)
    if source.kind == "file":
        raise MissingWeightsError(
            f"Depth Anything 3: teacher.weights={weights} is a file; the package loads a model folder "
            "(config.json + model.safetensors) or a hub id. Pass the folder that holds the file."
        )
    if source.kind == "folder":
        check_hf_folder(source.path, "Depth Anything 3")
    try:
        return model_class.from_pretrained(source.path)
    except (MissingDependencyError, PmsplatError):
        raise
    except Exception as error:
        where = "the model folder" if source.kind == "folder" else "the Hugging Face hub"
        raise MissingWeightsError(
            f"Depth Anything 3: could not load '{weights}' from {where} ({type(error).__name__}: {error}). {WEIGHTS_HINT}"
        ) from error


def _as_tensor(value, device: torch.device) -> Tensor:
    return torch.as_tensor(np.asarray(value), dtype=torch.float32, device=device)


@register_teacher("da3", DA3TeacherCfg, install=INSTALL)
class DA3Teacher:
    """Pointmap teacher backed by a frozen Depth Anything 3 model. See the module docstring."""

    patch_size = 14

    def __init__(self, cfg: DA3TeacherCfg | None = None, model=None):
        self.cfg = cfg or DA3TeacherCfg()
        self.device = default_device(self.cfg.device)
        if model is None:
            model = load_da3(self.cfg.weights, _import_da3())
        self.model = freeze(model).to(self.device)

    def output_frame(self, views: int) -> str:
        """The frame of the returned points for a call with ``views`` views (module docstring)."""
        if views <= 2 or self.cfg.ref_view_strategy == "first":
            return "first view's camera frame (OpenCV: x right, y down, z forward), DA3's scale"
        return (f"camera frame of DA3's reference view, chosen by ref_view_strategy={self.cfg.ref_view_strategy!r} "
                "(not necessarily the first view), DA3's scale")

    def _scene(self, images: Float[Tensor, "view 3 height width"]) -> tuple[Tensor, Tensor]:
        height, width = images.shape[-2:]
        frames = [(image.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy() for image in images]
        prediction = self.model.inference(
            frames, process_res=self.cfg.process_res, ref_view_strategy=self.cfg.ref_view_strategy, **self.cfg.inference_kwargs
        )
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
        results = [self._scene(example) for example in images]
        points = torch.stack([r[0] for r in results]).to(images.device)
        confidence = torch.stack([r[1] for r in results]).to(images.device)
        return TeacherOutput(points=points, confidence=confidence)
