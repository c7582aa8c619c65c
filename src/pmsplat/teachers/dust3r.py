"""DUSt3R / MASt3R teacher (Wang et al., CVPR 2024; Leroy et al., 2024).

Needs the ``dust3r`` package (it ships the model code; MASt3R's checkpoints load through the
same ``AsymmetricCroCo3DStereo`` class of the ``mast3r`` package)::

    pip install "dust3r @ git+https://github.com/naver/dust3r"

and weights: a hub id such as ``naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt`` or a local file.

- Two views: one pair inference; the pointmaps of both views are expressed in the first view's
  frame (``pred1["pts3d"]`` and ``pred2["pts3d_in_other_view"]``), confidences ``conf``.
- More views: pairwise inference over the complete, symmetrised graph (V·(V−1) pair passes),
  then the package's global alignment (``PointCloudOptimizer``, ``niter`` gradient steps) to
  bring all views into one frame. Cost grows quadratically with V plus the optimisation; for
  training with 4–6 views precompute a cache (``pmsplat teacher precompute``) instead.

Images are mapped from [0, 1] to [-1, 1] as DUSt3R expects; sizes must be multiples of
``patch_size`` = 16 (PM-Loss resizes them). The model is frozen and held outside any module tree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from pmsplat.errors import MissingDependencyError
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.frozen import default_device, freeze, load_weights

DUST3R_PIP = 'pip install "dust3r @ git+https://github.com/naver/dust3r"'


@dataclass
class DUSt3RTeacherCfg:
    weights: str = "naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt"
    device: str | None = None
    global_alignment_iterations: int = 300
    global_alignment_lr: float = 0.01
    global_alignment_schedule: Literal["cosine", "linear"] = "cosine"
    pair_batch_size: int = 4


def _import(module: str, names: list[str]):
    try:
        imported = __import__(module, fromlist=names)
    except ImportError as error:
        raise MissingDependencyError("dust3r", "The DUSt3R teacher", DUST3R_PIP) from error
    return [getattr(imported, name) for name in names]


class DUSt3RTeacher:
    """Pointmap teacher backed by a frozen DUSt3R/MASt3R model. See the module docstring."""

    patch_size = 16

    def __init__(self, cfg: DUSt3RTeacherCfg | None = None, model: torch.nn.Module | None = None):
        self.cfg = cfg or DUSt3RTeacherCfg()
        self.device = default_device(self.cfg.device)
        if model is None:
            (model_class,) = _import("dust3r.model", ["AsymmetricCroCo3DStereo"])
            model = load_weights(self.cfg.weights, model_class, model_class.from_pretrained, "DUSt3R")
        self.model = freeze(model).to(self.device)
        self.last_seconds = 0.0

    def _views(self, images: Float[Tensor, "view 3 height width"]) -> list[dict]:
        height, width = images.shape[-2:]
        return [
            {
                "img": (image[None] * 2 - 1).to(self.device),
                "true_shape": np.int32([[height, width]]),
                "idx": index,
                "instance": str(index),
            }
            for index, image in enumerate(images)
        ]

    def _scene(self, images: Float[Tensor, "view 3 height width"]) -> tuple[Tensor, Tensor]:
        (inference,) = _import("dust3r.inference", ["inference"])
        views = self._views(images)
        if len(views) == 2:
            output = inference([(views[0], views[1])], self.model, self.device, batch_size=1, verbose=False)
            points = torch.stack([output["pred1"]["pts3d"][0], output["pred2"]["pts3d_in_other_view"][0]])
            confidence = torch.stack([output["pred1"]["conf"][0], output["pred2"]["conf"][0]])
            return points.float(), confidence.float()
        make_pairs, = _import("dust3r.image_pairs", ["make_pairs"])
        global_aligner, mode = _import("dust3r.cloud_opt", ["global_aligner", "GlobalAlignerMode"])
        pairs = make_pairs(views, scene_graph="complete", prefilter=None, symmetrize=True)
        output = inference(pairs, self.model, self.device, batch_size=self.cfg.pair_batch_size, verbose=False)
        with torch.enable_grad():
            scene = global_aligner(output, device=self.device, mode=mode.PointCloudOptimizer, verbose=False)
            scene.compute_global_alignment(
                init="mst",
                niter=self.cfg.global_alignment_iterations,
                schedule=self.cfg.global_alignment_schedule,
                lr=self.cfg.global_alignment_lr,
            )
        points = torch.stack([p.detach() for p in scene.get_pts3d()])
        confidence = torch.stack([c.detach() for c in scene.im_conf])
        return points.float(), confidence.float()

    @torch.no_grad()
    def __call__(
        self,
        images: Float[Tensor, "batch view 3 height width"],
        context: dict | None = None,
    ) -> TeacherOutput:
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"DUSt3R needs image sizes that are multiples of {self.patch_size}, got {height}x{width}; "
                "PMLoss resizes images for the teacher, call the teacher through it."
            )
        start = time.perf_counter()
        results = [self._scene(example) for example in images]
        self.last_seconds = time.perf_counter() - start
        points = torch.stack([r[0] for r in results]).to(images.device)
        confidence = torch.stack([r[1] for r in results]).to(images.device)
        return TeacherOutput(points=points, confidence=confidence)
