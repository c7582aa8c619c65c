"""``pmsplat teacher check``: run a teacher once on a small example and report what it returned.

The first thing to run after installing a teacher: it builds the teacher from its config (so a
missing package, torchvision mismatch or weight file shows up as the one clear error), feeds it
one example of ``views`` views (default 2) and reports the output shapes, the output frame, the
time and the peak memory. The example is either rendered on the fly by the synthetic benchmark's
ray caster (random room, forward camera path, exact ground-truth pointmap) or the first scene of a
dataset. With a ground truth the report also gives the teacher's error after a similarity
alignment, relative to the scene's size (0 = exact up to a similarity; unrelated points give ~1).
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from pmsplat.errors import DataError, DegenerateInputError, InputError
from pmsplat.teachers.base import Teacher


@dataclass
class CheckExample:
    """images (V, 3, H, W) in [0, 1]; pointmap (V, H, W, 3) world ground truth or None; scene name
    and frame indices (V,) (what cache/synthetic teachers key on); source: where it came from."""

    images: Float[Tensor, "view 3 height width"]
    pointmap: Float[Tensor, "view height width 3"] | None
    scene: str
    index: Tensor
    source: str


@dataclass
class CheckReport:
    """What one teacher call returned and cost. Shapes include the batch axis (1, V, ...)."""

    input_shape: tuple[int, ...]
    points_shape: tuple[int, ...]
    confidence_shape: tuple[int, ...] | None
    confidence_range: tuple[float, float] | None
    finite_fraction: float
    frame: str
    seconds: float
    device: str
    peak_rss_bytes: int
    peak_cuda_bytes: int | None
    pairs: int | None = None
    aligned_error: float | None = None
    aligned_note: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        conf = "none"
        if self.confidence_shape is not None:
            low, high = self.confidence_range
            conf = f"{self.confidence_shape}, range [{low:.4g}, {high:.4g}]"
        memory = f"{self.peak_rss_bytes / 2**30:.2f} GiB peak RSS of this process"
        if self.peak_cuda_bytes is not None:
            memory += f"; {self.peak_cuda_bytes / 2**30:.2f} GiB peak CUDA memory allocated during the call"
        lines = [
            f"input:       images {self.input_shape}",
            f"points:      {self.points_shape}, {100 * self.finite_fraction:.1f}% finite",
            f"confidence:  {conf}",
            f"frame:       {self.frame}",
            f"time:        {self.seconds:.2f} s for one call on {self.device}"
            + (f" ({self.pairs} pair passes)" if self.pairs is not None else ""),
            f"memory:      {memory}",
        ]
        if self.aligned_error is not None:
            lines.append(
                f"vs truth:    {self.aligned_error:.4f} RMS error after similarity alignment, relative to the scene's "
                "RMS size (0: a similarity transform of the truth; points unrelated to the scene give about 1)"
            )
        elif self.aligned_note:
            lines.append(f"vs truth:    {self.aligned_note}")
        lines += [f"PROBLEM:     {problem}" for problem in self.problems]
        return lines


def synthetic_example(views: int = 2, height: int = 224, width: int = 224, seed: int = 0) -> CheckExample:
    """``views`` frames of a random synthetic room (the benchmark's generator), spread over the
    first third of a forward camera path, with their exact world pointmaps."""
    from pmsplat.synthetic.camera_path import random_camera_path
    from pmsplat.synthetic.raycast import render
    from pmsplat.synthetic.scene import random_scene

    if views < 1 or height < 8 or width < 8:
        raise InputError(f"teacher check: need views >= 1 and an image of at least 8x8, got {views} views of {height}x{width}.")
    rng = np.random.default_rng(seed)
    scene = random_scene(rng)
    path_frames = max(3 * views, 6)
    extrinsics, intrinsics = random_camera_path(rng, scene, path_frames)
    index = np.linspace(0, path_frames // 3, views).round().astype(int) if views > 1 else np.zeros(1, int)
    frames = [render(scene, extrinsics[i], intrinsics[i], height, width, 1) for i in index]
    images = torch.from_numpy(np.stack([frame.image for frame in frames])).float().permute(0, 3, 1, 2).clamp(0, 1)
    pointmap = torch.from_numpy(np.stack([frame.pointmap for frame in frames])).float()
    return CheckExample(images, pointmap, f"synthetic-check-{seed}", torch.as_tensor(index), "synthetic room (ray-cast)")


def dataset_example(dataset_cfg, stage: str, views: int, load_pointmap: bool) -> CheckExample:
    """``views`` frames of the first scene (sorted keys) of a dataset split, evenly spaced over its
    first 8·``views`` frames, through the training loader and crop shim."""
    from splatcore.dataset import ChunkedDataset, Skip, load_chunk

    from pmsplat.teachers.cache_build import _dataset_for_cache

    dataset = ChunkedDataset(_dataset_for_cache(dataset_cfg, load_pointmap), stage)
    for scene in sorted(dataset.index):
        examples = {example["key"]: example for example in load_chunk(dataset.index[scene])}
        item = dataset.load_example(examples[scene], dataset.index[scene])
        if isinstance(item, Skip):
            continue
        context = item["context"]
        count = context["image"].shape[0]
        if count < views:
            continue
        index = torch.as_tensor(np.linspace(0, min(count, 8 * views) - 1, views).round().astype(int))
        pointmap = context.get("pointmap")
        return CheckExample(
            context["image"][index].float(),
            None if pointmap is None else pointmap[index].float(),
            scene,
            index,
            f"scene {scene} of {[str(root) for root in dataset_cfg.roots]} ({stage})",
        )
    raise DataError(f"teacher check: no scene of the {stage} split has {views} usable frames.")


def _aligned_error(points: Tensor, truth: Tensor) -> tuple[float | None, str]:
    from pmsplat.align import similarity_align

    source = points.reshape(1, -1, 3).double()
    target = truth.reshape(1, -1, 3).double()
    mask = torch.isfinite(source).all(-1) & torch.isfinite(target).all(-1)
    try:
        aligned, _ = similarity_align(source, target, mask=mask)
    except DegenerateInputError as error:
        return None, f"not computed: the teacher's points are degenerate ({error})"
    residual = (aligned - target)[mask].square().sum(-1).mean().sqrt()
    valid = target[mask]
    size = (valid - valid.mean(0)).square().sum(-1).mean().sqrt()
    return float(residual / size), ""


def check_teacher(teacher: Teacher, example: CheckExample) -> CheckReport:
    """Resize the example to the teacher's patch multiple (bilinear, as PM-Loss does), run one
    teacher call and describe its output (see :class:`CheckReport`)."""
    from pmsplat.teachers.cache_build import resize_images_for_teacher, teacher_resolution

    views = example.images.shape[0]
    resolution = teacher_resolution(tuple(example.images.shape[-2:]), int(teacher.patch_size))
    images = resize_images_for_teacher(example.images, resolution)
    pointmap = example.pointmap
    if pointmap is not None and tuple(pointmap.shape[1:3]) != resolution:
        pointmap = F.interpolate(pointmap.permute(0, 3, 1, 2), size=resolution, mode="nearest").permute(0, 2, 3, 1)
    context = {"scene": [example.scene], "index": example.index[None]}
    if pointmap is not None:
        context["pointmap"] = pointmap[None]
    device = getattr(teacher, "device", torch.device("cpu"))
    device = torch.device(device)
    cuda = device.type == "cuda" and torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    with torch.no_grad():
        output = teacher(images[None], context)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak_cuda = torch.cuda.max_memory_allocated(device) if cuda else None
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)

    points = output.points.detach().float().cpu()
    confidence = None if output.confidence is None else output.confidence.detach().float().cpu()
    problems = []
    expected = (1, views, *resolution, 3)
    if tuple(points.shape) != expected:
        problems.append(f"points have shape {tuple(points.shape)}, expected {expected}")
    if confidence is not None and tuple(confidence.shape) != expected[:4]:
        problems.append(f"confidence has shape {tuple(confidence.shape)}, expected {expected[:4]}")
    finite = float(torch.isfinite(points).all(-1).float().mean()) if points.numel() else 0.0
    if finite < 1:
        problems.append(f"{100 * (1 - finite):.1f}% of the points are not finite")
    frame_of = getattr(teacher, "output_frame", None)
    frame = frame_of(views) if callable(frame_of) else "not documented by this teacher"
    pairs_for = getattr(teacher, "pairs_for", None)
    report = CheckReport(
        input_shape=(1, *images.shape),
        points_shape=tuple(points.shape),
        confidence_shape=None if confidence is None else tuple(confidence.shape),
        confidence_range=None if confidence is None else (float(confidence.min()), float(confidence.max())),
        finite_fraction=finite,
        frame=frame,
        seconds=seconds,
        device=str(device),
        peak_rss_bytes=int(peak_rss),
        peak_cuda_bytes=None if peak_cuda is None else int(peak_cuda),
        pairs=pairs_for(views) if callable(pairs_for) else None,
        problems=problems,
    )
    if pointmap is None:
        report.aligned_note = "no ground truth for this example"
    elif not problems:
        report.aligned_error, report.aligned_note = _aligned_error(points[0], pointmap)
    return report
