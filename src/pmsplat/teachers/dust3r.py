"""DUSt3R teacher (Wang et al., CVPR 2024).

Install (naver/dust3r is not a pip package: it has no setup.py/pyproject.toml, and CroCo is a git
submodule), then point pmsplat at the clone::

    git clone --recursive https://github.com/naver/dust3r /path/to/dust3r
    pip install -r /path/to/dust3r/requirements.txt        # keep the installed torch
    ... teacher=dust3r teacher.repo=/path/to/dust3r        # or: export PMSPLAT_DUST3R_REPO=/path/to/dust3r

(``teacher.repo`` / ``$PMSPLAT_DUST3R_REPO`` is put first on the import path; without either, an
importable ``dust3r`` package is used as is.) ``pmsplat teacher check dust3r`` tries it out.

Weights (``teacher.weights``), absolute or relative paths alike:

- an official checkpoint file (``DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth``, ...): the network is
  built from the constructor call stored in the file (``ckpt["args"].model``), parsed as
  literal keyword arguments, never evaluated (:mod:`pmsplat.teachers.dust3r_checkpoint`), and
  read with ``torch.load(weights_only=True)`` with only ``argparse.Namespace`` allow-listed;
- a ``.safetensors`` state dict with a ``config.json`` beside it, or with ``teacher.architecture``
  set to the constructor call;
- a Hugging Face model folder (``config.json`` + ``model.safetensors``) or a hub id such as
  ``naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt`` (the hub cache, or a download with network).

Output frame and cost:

- **Two views**: one pair pass; both pointmaps are in the **first view's camera frame** (OpenCV
  axes), DUSt3R's own scale (``pred1["pts3d"]``, ``pred2["pts3d_in_other_view"]``), confidence
  ``conf``.
- **V > 2 views**: pair passes over a symmetrised pair graph, then **one** global alignment of
  all V views (the package's ``PointCloudOptimizer``, ``global_alignment_iterations`` steps,
  MST initialisation): the points are in the alignment's world frame and scale. Pairs per call:
  complete graph (``pair_window: null``) V·(V−1), e.g. 12 for 4 views, 1,332 for a 37-frame
  scene; a window graph (``pair_window: k``, each view with the next k views, both orders)
  2·(k·V − k(k+1)/2), e.g. 276 for V = 37, k = 4. ``max_pairs`` caps the count: a graph with
  more pairs is narrowed to the widest window that fits. On CPU a pair pass of the ViT-L/512
  model takes about 2.7 s (1,332 pairs ≈ 1 h, measured for issue #17); ``pmsplat teacher check
  dust3r --views N`` measures it on your machine. Progress (pairs, alignment steps) is shown
  while ``progress`` is true.

Images are mapped from [0, 1] to [-1, 1] as DUSt3R expects; sizes must be multiples of
``patch_size`` = 16 (PM-Loss resizes them). The model is frozen and held outside any module tree.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from pmsplat.errors import InputError, MissingDependencyError
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.frozen import default_device, env_path, freeze, load_weights
from pmsplat.teachers.registry import register_teacher

# naver/dust3r is not pip-installable (no setup.py/pyproject.toml; CroCo is a git submodule)
INSTALL = (
    "git clone --recursive https://github.com/naver/dust3r /path/to/dust3r && "
    "pip install -r /path/to/dust3r/requirements.txt, then set teacher.repo=/path/to/dust3r "
    "(or PMSPLAT_DUST3R_REPO=/path/to/dust3r)"
)

REPO_ENV = "PMSPLAT_DUST3R_REPO"
CLONE_COMMAND = "git clone --recursive https://github.com/naver/dust3r /path/to/dust3r"
OWN_MODULES = ("dust3r", "croco", "models")
WEIGHTS_HINT = (
    "Without network access, download an official checkpoint (e.g. DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth, linked "
    "from the DUSt3R README) or a Hugging Face snapshot folder of naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt on a "
    "machine with internet and pass its path: teacher.weights=/path/to/DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth "
    "(absolute or relative)."
)


def install_command() -> str:
    """The install instruction of the DUSt3R teacher (the registry's, shown in errors and docs)."""
    return INSTALL


@dataclass
class DUSt3RTeacherCfg:
    """weights: checkpoint file / model folder / hub id (module docstring). repo: a recursive clone
    of naver/dust3r (else ``$PMSPLAT_DUST3R_REPO``, else the import path). architecture: the
    constructor call for a bare ``.safetensors`` file. pair_window: None = complete pair graph,
    k = each view with its next k views. max_pairs: cap on pair passes per call (None = no cap).
    progress: show pair / alignment progress."""

    weights: str = "naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt"
    repo: str | None = None
    architecture: str | None = None
    device: str | None = None
    pair_window: int | None = None
    max_pairs: int | None = None
    global_alignment_iterations: int = 300
    global_alignment_lr: float = 0.01
    global_alignment_schedule: Literal["cosine", "linear"] = "cosine"
    pair_batch_size: int = 4
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.pair_window is not None and self.pair_window < 1:
            problems.append(f"pair_window must be >= 1 or null (complete graph), got {self.pair_window}")
        if self.max_pairs is not None and self.max_pairs < 2:
            problems.append(f"max_pairs must be >= 2 or null (no cap), got {self.max_pairs}")
        if self.pair_batch_size < 1:
            problems.append(f"pair_batch_size must be >= 1, got {self.pair_batch_size}")
        if self.global_alignment_iterations < 0:
            problems.append(f"global_alignment_iterations must be >= 0, got {self.global_alignment_iterations}")
        if problems:
            raise InputError("DUSt3RTeacherCfg: " + "; ".join(problems) + ".")


def use_repo(repo: str | None) -> Path | None:
    """Put a DUSt3R clone (``repo``, else ``$PMSPLAT_DUST3R_REPO``) first on ``sys.path``.
    Returns the clone, or None when neither is set. A folder that is not a recursive clone is an
    error that says what is missing and the command that fixes it."""
    value = repo or env_path(REPO_ENV)
    if value is None:
        return None
    where = "teacher.repo" if repo else f"${REPO_ENV}"
    path = Path(value).expanduser().resolve()
    if not (path / "dust3r").is_dir():
        hint = ""
        if (path / "dust3r" / "dust3r").is_dir() or (path.parent / "dust3r" / "dust3r").is_dir():
            hint = " (point it at the folder that contains the dust3r/ package folder)"
        raise MissingDependencyError(
            "dust3r",
            f"The DUSt3R teacher ({where}={path}: no dust3r/ package folder there{hint})",
            f"{CLONE_COMMAND}  and set {where}=/path/to/dust3r",
        )
    if not (path / "croco" / "models").is_dir():
        raise MissingDependencyError(
            "croco",
            f"The DUSt3R teacher ({where}={path}: the CroCo submodule croco/ is empty, the clone was not recursive)",
            f"git -C {path} submodule update --init --recursive",
        )
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    return path


def _import(module: str, names: list[str]) -> list:
    from pmsplat.teachers.imports import import_names

    return import_names(module, names, "The DUSt3R teacher", OWN_MODULES, install_command())


def pair_count(views: int, window: int | None) -> int:
    """Pair passes of a symmetrised pair graph over ``views`` views: V·(V−1) for the complete
    graph (window None or >= V−1), 2·(k·V − k(k+1)/2) for a window of k; 1 for two views."""
    if views < 2:
        return 0
    if views == 2:
        return 1
    k = views - 1 if window is None else min(window, views - 1)
    return 2 * (k * views - k * (k + 1) // 2)


def pair_graph(views: int, window: int | None = None, max_pairs: int | None = None) -> list[tuple[int, int]]:
    """Ordered view pairs (i, j) for the pair passes: both orders of every edge 0 < j − i <= k
    (k = ``window``, None = all), narrowed to the widest window with at most ``max_pairs`` pairs.
    Two views: the single pair (0, 1). Every graph is connected (the global alignment needs it)."""
    if views < 2:
        raise InputError(f"DUSt3R needs at least 2 views, got {views}.")
    if views == 2:
        return [(0, 1)]
    k = views - 1 if window is None else min(window, views - 1)
    if max_pairs is not None and pair_count(views, k) > max_pairs:
        if pair_count(views, 1) > max_pairs:
            raise InputError(
                f"DUSt3R: even the sparsest pair graph over {views} views needs {pair_count(views, 1)} pair passes, "
                f"more than max_pairs={max_pairs}. Raise teacher.max_pairs or give the teacher fewer views per call "
                "(pmsplat teacher precompute --frame-policy windows --window N)."
            )
        while pair_count(views, k) > max_pairs:
            k -= 1
    pairs = []
    for i in range(views):
        for j in range(i + 1, min(views, i + k + 1)):
            pairs += [(i, j), (j, i)]
    return pairs


def merge_pair_outputs(outputs: list[Any]) -> Any:
    """Concatenate the outputs of several ``dust3r.inference.inference`` calls (dicts of tensors /
    arrays / lists along the pair axis) into the output of one call over all their pairs."""
    first = outputs[0]
    if len(outputs) == 1:
        return first
    if isinstance(first, dict):
        return {key: merge_pair_outputs([output[key] for output in outputs]) for key in first}
    if isinstance(first, Tensor):
        return torch.cat(outputs) if first.ndim else torch.stack(outputs)
    if isinstance(first, np.ndarray):
        return np.concatenate(outputs)
    if isinstance(first, (list, tuple)):
        return [item for output in outputs for item in output]
    if first is None or all(output == first for output in outputs):
        return first
    return list(outputs)


class _Progress:
    """A tqdm bar when ``enabled`` (and tqdm importable), else nothing. tqdm rather than rich: a
    teacher runs inside ``pmsplat teacher precompute``'s rich display, and rich allows one."""

    def __init__(self, total: int, description: str, enabled: bool):
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm ships with dust3r's requirements
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=description, unit="pair", leave=False)
        self.done = 0

    def advance(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@register_teacher("dust3r", DUSt3RTeacherCfg, install=INSTALL, identity_excludes=("device", "repo", "progress"))
class DUSt3RTeacher:
    """Pointmap teacher backed by a frozen DUSt3R model. See the module docstring."""

    patch_size = 16

    def __init__(self, cfg: DUSt3RTeacherCfg | None = None, model: torch.nn.Module | None = None):
        self.cfg = cfg or DUSt3RTeacherCfg()
        self.device = default_device(self.cfg.device)
        self.repo = use_repo(self.cfg.repo)
        if model is None:
            model = self._load_model()
        self.model = freeze(model).to(self.device)
        self.last_pairs = 0

    def _load_model(self) -> torch.nn.Module:
        from pmsplat.teachers.dust3r_checkpoint import ArchitectureError, architecture_of

        (model_class,) = _import("dust3r.model", ["AsymmetricCroCo3DStereo"])

        def build_from_checkpoint(checkpoint: dict, path: Path) -> torch.nn.Module:
            name, kwargs, origin = architecture_of(checkpoint, path, self.cfg.architecture)
            try:
                return model_class(**kwargs)
            except Exception as error:  # the package's own constructor checks, of any type
                raise ArchitectureError(
                    f"DUSt3R: building {name} with the arguments from {origin} failed ({type(error).__name__}: {error})."
                ) from error

        def build_default() -> torch.nn.Module:  # pragma: no cover - build_from_checkpoint always applies
            raise AssertionError

        return load_weights(
            self.cfg.weights, build_default, model_class.from_pretrained, "DUSt3R", WEIGHTS_HINT, build_from_checkpoint
        )

    def output_frame(self, views: int) -> str:
        """The frame of the returned points for a call with ``views`` views (module docstring)."""
        if views <= 2:
            return "first view's camera frame (OpenCV: x right, y down, z forward), DUSt3R's own scale"
        return "DUSt3R global-alignment world frame (PointCloudOptimizer, MST initialisation) and scale"

    def pairs_for(self, views: int) -> int:
        """Pair passes a call with ``views`` views runs under this config."""
        return len(pair_graph(views, self.cfg.pair_window, self.cfg.max_pairs))

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

    def _pair_inference(self, views: list[dict], pairs: list[tuple[int, int]]) -> dict:
        (inference,) = _import("dust3r.inference", ["inference"])
        batch = self.cfg.pair_batch_size
        progress = _Progress(len(pairs), f"DUSt3R pairs ({len(views)} views)", self.cfg.progress and len(pairs) > 1)
        outputs = []
        try:
            for start in range(0, len(pairs), batch):
                chunk = [(views[i], views[j]) for i, j in pairs[start : start + batch]]
                outputs.append(inference(chunk, self.model, self.device, batch_size=len(chunk), verbose=False))
                progress.advance(len(chunk))
        finally:
            progress.close()
        self.last_pairs = len(pairs)
        return merge_pair_outputs(outputs)

    def _scene(self, images: Float[Tensor, "view 3 height width"]) -> tuple[Tensor, Tensor]:
        views = self._views(images)
        pairs = pair_graph(len(views), self.cfg.pair_window, self.cfg.max_pairs)
        if len(views) == 2:
            output = self._pair_inference(views, pairs)
            points = torch.stack([output["pred1"]["pts3d"][0], output["pred2"]["pts3d_in_other_view"][0]])
            confidence = torch.stack([output["pred1"]["conf"][0], output["pred2"]["conf"][0]])
            return points.float(), confidence.float()
        global_aligner, mode = _import("dust3r.cloud_opt", ["global_aligner", "GlobalAlignerMode"])
        output = self._pair_inference(views, pairs)
        with torch.enable_grad():
            scene = global_aligner(output, device=self.device, mode=mode.PointCloudOptimizer, verbose=self.cfg.progress)
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
        """Pointmaps (B, V, H, W, 3) and confidences (B, V, H, W) of images (B, V, 3, H, W) in
        [0, 1], H and W multiples of 16; each example is reconstructed on its own."""
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise InputError(
                f"DUSt3R needs image sizes that are multiples of {self.patch_size}, got {height}x{width}; "
                "PMLoss resizes images for the teacher, call the teacher through it."
            )
        results = [self._scene(example) for example in images]
        points = torch.stack([r[0] for r in results]).to(images.device)
        confidence = torch.stack([r[1] for r in results]).to(images.device)
        return TeacherOutput(points=points, confidence=confidence)
