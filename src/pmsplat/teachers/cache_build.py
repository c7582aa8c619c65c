"""Precompute the offline teacher cache: run a teacher over every scene of a dataset split.

What the cache is computed from (the frame-set policy, ``FramePolicyCfg``):

- ``scene`` (default): all N frames of a scene in **one** teacher call. Every stored pointmap of a
  scene is then in one common teacher frame, so any context set later drawn from the scene gets
  mutually consistent pointmaps. Cost: one call with N views (VGGT handles a few hundred frames
  per call on a large GPU; the synthetic teacher any number).
- ``windows``: consecutive windows of ``window`` frames overlapping by ``overlap`` frames; each
  window after the first is brought into the first window's frame by a similarity fitted on the
  overlap frames (:func:`window_transform`), so the scene still has one frame, up to the fit's
  residual. The scale of each window is **re-normalised** to the chain's: it is the ratio of the
  confidence-weighted RMS spreads of the overlap points, not the least-squares (Umeyama) scale,
  which shrinks towards 0 as the two windows' predictions decorrelate and would compound from
  window to window (×0.4–0.55 per window with poor predictions, issue #17). Use it when a whole
  scene does not fit one call; for DUSt3R (V·(V−1) pair passes per call) also see its
  ``pair_window`` / ``max_pairs`` options, which keep one global alignment per call affordable.

Consequence (measured in ``benchmarks/results/teachers.md``): the cached pointmap of a context set
is *not* what the teacher would return when run on exactly those views. A multi-view teacher's
output depends on which other views it sees; with the cache each frame was reconstructed together
with all (or a window of) the scene's frames. PM-Loss's Umeyama alignment absorbs one global
similarity per example — so a different frame or scale is harmless — but not per-frame
differences, which become part of the pseudo-ground-truth error.

Images go through the same pipeline as in training: the chunk loader and crop shim of
``splatcore.dataset`` (all frames of the scene, no flip augmentation), an optional centre crop to a
multiple of ``crop_multiple`` (the model wrapper's patch shim), and the bilinear resize to the
teacher's patch multiple that PM-Loss applies (H' = floor(H / p) p). Pointmaps are stored at
H' x W' (what the teacher returns); PM-Loss resizes them back to H x W with nearest-neighbour.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from pmsplat.errors import DataError, InputError
from pmsplat.teachers import cache_store as store
from pmsplat.teachers.base import Teacher

THUMBNAIL_SIZE = 8


@dataclass
class FramePolicyCfg:
    """Which frames go into one teacher call (see the module docstring)."""

    kind: Literal["scene", "windows"] = "scene"
    window: int = 16
    overlap: int = 4

    def __post_init__(self) -> None:
        if self.kind not in ("scene", "windows"):
            raise InputError(f"frame_policy.kind must be 'scene' or 'windows', got {self.kind!r}.")
        if self.kind == "windows" and not (self.window >= 2 and 1 <= self.overlap < self.window):
            raise InputError(f"frame_policy: need window >= 2 and 1 <= overlap < window, got {self.window}/{self.overlap}.")


@dataclass
class CacheBuildCfg:
    """Settings of one ``pmsplat teacher precompute`` run.

    out: cache folder. dataset: the ``splatcore.dataset.DatasetCfg`` of the split (roots,
    image_shape, resize_filter, ...; its view sampler and augmentation are ignored). stage:
    ``train`` or ``test``. teacher: a teacher config for :func:`build_teacher`. shard: (i, n) =
    this process handles the scenes at positions p of the sorted scene list with p % n == i.
    crop_multiple: centre-crop images to this multiple before the teacher (the patch shim, 1 = off).
    """

    out: Path
    dataset: Any
    teacher: dict
    stage: Literal["train", "test"] = "train"
    shard: tuple[int, int] = (0, 1)
    frame_policy: FramePolicyCfg = field(default_factory=FramePolicyCfg)
    crop_multiple: int = 1
    thumbnail_size: int = THUMBNAIL_SIZE

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        index, count = self.shard
        if not (count >= 1 and 0 <= index < count):
            raise InputError(f"shard must be i/n with 0 <= i < n, got {index}/{count}.")
        if self.stage not in ("train", "test"):
            raise InputError(f"stage must be 'train' or 'test' (val reads test/), got {self.stage!r}.")
        if self.crop_multiple < 1 or self.thumbnail_size < 1:
            raise InputError("crop_multiple and thumbnail_size must be >= 1.")


@dataclass
class BuildSummary:
    """What a precompute run did (scene counts of this shard, bytes written, teacher seconds)."""

    total: int
    computed: int = 0
    already_done: int = 0
    #: scenes whose record or data file was corrupt (unreadable record, wrong size or sha256): recomputed
    repaired: int = 0
    skipped: int = 0
    bytes_written: int = 0
    teacher_seconds: float = 0.0


def teacher_resolution(shape: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """(H', W') = the image size rounded down to a multiple of the teacher's patch size."""
    height, width = (shape[0] // patch_size) * patch_size, (shape[1] // patch_size) * patch_size
    if height == 0 or width == 0:
        raise InputError(f"Images of {shape[0]}x{shape[1]} are smaller than the teacher patch size {patch_size}.")
    return height, width


def resize_images_for_teacher(images: Float[Tensor, "view 3 height width"], size: tuple[int, int]) -> Float[Tensor, "view 3 h2 w2"]:
    """Bilinear resize (align_corners=False), as PM-Loss feeds the teacher; identity when equal."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def thumbnails(images: Float[Tensor, "view 3 height width"], size: int) -> Float[Tensor, "view 3 size size"]:
    """Area-averaged size x size copies of the teacher-input images (the cache teacher compares
    them with the images it is asked about to detect a wrong frame, dataset or flip)."""
    return F.adaptive_avg_pool2d(images.float(), size)


def _dataset_for_cache(dataset_cfg: Any, load_pointmap: bool):
    from splatcore.dataset import DatasetCfg, ViewSamplerAllCfg, dataset_cfg_from_dict

    if isinstance(dataset_cfg, dict):
        dataset_cfg = dataset_cfg_from_dict(dataset_cfg)
    if not isinstance(dataset_cfg, DatasetCfg):
        raise InputError(f"CacheBuildCfg.dataset must be a DatasetCfg or a mapping, got {type(dataset_cfg).__name__}.")
    return dataclasses.replace(
        dataset_cfg,
        view_sampler=ViewSamplerAllCfg(),
        augment=False,
        overfit_to_scene=None,
        load_pointmap=dataset_cfg.load_pointmap or load_pointmap,
        sort_context_index=False,
        sort_target_index=False,
    )


def build_manifest(cfg: CacheBuildCfg, dataset_cfg, teacher_identity: dict, patch_size: int, directories: list[Path], scene_count: int) -> dict:
    """The cache manifest (identity + bookkeeping) of a build configuration."""
    image_shape = (int(dataset_cfg.image_shape[0]), int(dataset_cfg.image_shape[1]))
    cropped = teacher_resolution(image_shape, cfg.crop_multiple)
    return {
        "format": store.FORMAT,
        "version": store.VERSION,
        "teacher": teacher_identity,
        "teacher_patch_size": patch_size,
        "resolution": list(teacher_resolution(cropped, patch_size)),
        "images": {
            "image_shape": list(image_shape),
            "resize_filter": dataset_cfg.resize_filter,
            "crop_multiple": cfg.crop_multiple,
            "teacher_resize": "bilinear, align_corners=False",
        },
        "dataset": {
            "name": dataset_cfg.name,
            "stage": cfg.stage,
            "fingerprint": store.dataset_fingerprint(directories),
            "scenes": scene_count,
        },
        "frame_policy": dataclasses.asdict(cfg.frame_policy),
        "dtype": "float16",
        "thumbnail_size": cfg.thumbnail_size,
        "dataset_roots": [str(Path(root).resolve()) for root in dataset_cfg.roots],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": f"pmsplat teacher precompute on {platform.node()}",
    }


def ensure_manifest(out: Path, manifest: dict, scenes: list[str]) -> None:
    """Create the manifest and scene list, or check that the existing ones match exactly."""
    created = store.create_exclusive_json(out / store.MANIFEST, manifest)
    if created:
        store.atomic_write_json(out / store.SCENE_LIST, scenes)
        return
    existing = store.read_manifest(out)
    differences = store.describe_differences(store.identity_view(manifest), store.identity_view(existing))
    if differences:
        raise DataError(
            f"The cache at {out} was built with other settings:\n  " + "\n  ".join(differences)
            + f"\nUse a new --out folder, or delete {out} to rebuild it with these settings."
        )
    if not (out / store.SCENE_LIST).is_file():  # the creator may still be writing it
        store.atomic_write_json(out / store.SCENE_LIST, scenes)


def _run_teacher(teacher: Teacher, images: Tensor, scene: str, indices: Tensor, pointmap: Tensor | None) -> tuple[Tensor, Tensor | None]:
    context = {"scene": [scene], "index": indices[None]}
    if pointmap is not None:
        context["pointmap"] = pointmap[None]
    with torch.no_grad():
        output = teacher(images[None], context)
    points = output.points[0].detach().float().cpu()
    confidence = None if output.confidence is None else output.confidence[0].detach().float().cpu()
    return points, confidence


def window_transform(
    source: Float[Tensor, "point 3"],
    target: Float[Tensor, "point 3"],
    weights: Float[Tensor, "point"] | None = None,
):
    """The similarity x -> s R x + t that brings a window's overlap points ``source`` onto the
    chain's ``target`` (same pixels), float64.

    s = the ratio of the (weighted) RMS distances of target and source to their weighted
    centroids, so a window keeps the chain's scale however noisy the two predictions are; R, t =
    the weighted rigid fit (:func:`pmsplat.align.similarity_align` with the scale fixed) of s·source
    onto target. For source and target related by an exact similarity, s, R, t are that
    similarity (the same result as the Umeyama fit). Returns a
    :class:`pmsplat.align.SimilarityTransform` with batch size 1.
    """
    from pmsplat.align import SimilarityTransform, similarity_align

    source, target = source.double(), target.double()
    w = torch.ones(source.shape[0], dtype=torch.float64) if weights is None else weights.double().clamp_min(0)
    total = w.sum()
    if not total > 0:
        raise InputError("window_transform: the overlap frames have zero total confidence; cannot stitch the windows.")

    def spread(points: Tensor) -> Tensor:
        centre = (w[:, None] * points).sum(0) / total
        return torch.sqrt((w * (points - centre).square().sum(-1)).sum() / total)

    source_spread, target_spread = spread(source), spread(target)
    if not (source_spread > 0 and target_spread > 0):
        raise InputError("window_transform: the overlap points of a window collapse to one point; cannot stitch the windows.")
    scale = target_spread / source_spread
    _, rigid = similarity_align((scale * source)[None], target[None], w[None], with_scale=False)
    return SimilarityTransform(scale[None], rigid.rotation, rigid.translation)


def run_frame_policy(
    teacher: Teacher,
    images: Float[Tensor, "frame 3 height width"],
    scene: str,
    pointmap: Float[Tensor, "frame height width 3"] | None,
    policy: FramePolicyCfg,
) -> tuple[Tensor, Tensor | None]:
    """Teacher pointmaps (N, H', W', 3) and confidence (N, H', W') | None of all frames of a scene."""
    frames = images.shape[0]
    all_indices = torch.arange(frames)
    if policy.kind == "scene" or frames <= policy.window:
        return _run_teacher(teacher, images, scene, all_indices, pointmap)
    stride = policy.window - policy.overlap
    starts = list(range(0, frames - policy.overlap, stride))
    points = torch.full((frames, *images.shape[-2:], 3), float("nan"))
    confidence: Tensor | None = None
    for position, start in enumerate(starts):
        window = all_indices[start : min(start + policy.window, frames)]
        window_points, window_confidence = _run_teacher(
            teacher, images[window], scene, window, None if pointmap is None else pointmap[window]
        )
        if position == 0:
            if window_confidence is not None:
                confidence = torch.ones(frames, *images.shape[-2:])
        else:
            shared = window[: policy.overlap]
            source = window_points[: policy.overlap].reshape(-1, 3)
            target = points[shared].reshape(-1, 3)
            weights = None
            if window_confidence is not None:
                weights = (window_confidence[: policy.overlap] * confidence[shared]).reshape(-1)
            transform = window_transform(source, target, weights)
            window_points = transform.apply(window_points.reshape(1, -1, 3).double()).reshape(window_points.shape).float()
        fresh = window[window >= (start + policy.overlap if position else 0)]
        points[fresh] = window_points[fresh - start]
        if confidence is not None and window_confidence is not None:
            confidence[fresh] = window_confidence[fresh - start]
    return points, confidence


def _half(values: Tensor) -> np.ndarray:
    """C-contiguous float16 copy (safetensors writes the memory buffer as is)."""
    return np.ascontiguousarray(values.contiguous().numpy().astype(np.float16))


def compute_scene(
    teacher: Teacher, item: dict, cfg: CacheBuildCfg, resolution: tuple[int, int]
) -> tuple[dict[str, np.ndarray], float]:
    """float16 arrays (points, [confidence], thumbnails) of one loaded scene, and teacher seconds."""
    from splatcore.dataset import apply_patch_shim

    views = item["context"]
    if cfg.crop_multiple > 1:
        views = apply_patch_shim({"context": views}, cfg.crop_multiple)["context"]
    images = resize_images_for_teacher(views["image"].float(), resolution)
    pointmap = views.get("pointmap")
    if pointmap is not None and tuple(pointmap.shape[1:3]) != resolution:
        pointmap = F.interpolate(pointmap.permute(0, 3, 1, 2), size=resolution, mode="nearest").permute(0, 2, 3, 1)
    start = time.perf_counter()
    points, confidence = run_frame_policy(teacher, images, item["scene"], pointmap, cfg.frame_policy)
    seconds = time.perf_counter() - start
    if tuple(points.shape) != (images.shape[0], *resolution, 3):
        raise DataError(
            f"The teacher returned points of shape {tuple(points.shape)} for scene {item['scene']!r}, expected "
            f"{(images.shape[0], *resolution, 3)}."
        )
    if not torch.isfinite(points).all():
        raise DataError(f"The teacher returned non-finite points for scene {item['scene']!r}; not caching them.")
    arrays = {
        "points": _half(points),
        "thumbnails": _half(thumbnails(images, cfg.thumbnail_size)),
    }
    if confidence is not None:
        arrays["confidence"] = _half(confidence)
    if not np.isfinite(arrays["points"]).all():
        raise DataError(
            f"Teacher points of scene {item['scene']!r} overflow float16 (|x| > 65504); rescale the teacher output."
        )
    return arrays, seconds


def write_scene(out: Path, scene: str, arrays: dict[str, np.ndarray], chunk: str, seconds: float) -> int:
    """Write one scene's data file and then its record, both atomically. Returns bytes written."""
    from safetensors.numpy import save

    data_path, record_path = store.scene_paths(out, scene)
    payload = save(arrays, metadata={"scene": scene})
    store.atomic_write_bytes(data_path, payload)
    record = {
        "scene": scene,
        "status": "ok",
        "file": data_path.name,
        "frames": int(arrays["points"].shape[0]),
        "bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "crc32": {name: store.frame_crc32(array) for name, array in arrays.items() if name != "thumbnails"},
        "confidence": "confidence" in arrays,
        "chunk": chunk,
        "teacher_seconds": round(seconds, 6),
    }
    store.atomic_write_json(record_path, record)
    return len(payload)


def write_skip(out: Path, scene: str, reason: str, detail: str, chunk: str) -> None:
    _, record_path = store.scene_paths(out, scene)
    store.atomic_write_json(record_path, {"scene": scene, "status": "skipped", "reason": reason, "detail": detail, "chunk": chunk})


def precompute(
    cfg: CacheBuildCfg,
    teacher: Teacher | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> BuildSummary:
    """Fill this shard's part of the cache. Scenes already complete are skipped (resume); the
    loader's skips (bad pose, FOV, image size) are recorded as skipped scenes. ``teacher``
    overrides building ``cfg.teacher`` (its identity is still taken from ``cfg.teacher``).
    ``progress(done, total, scene)`` is called after each scene of the shard."""
    from splatcore.dataset import ChunkedDataset, Skip, load_chunk
    from splatcore.dataset.chunks import stage_directory

    from pmsplat.teachers.registry import build_teacher, needs_pointmap, teacher_identity

    identity = teacher_identity(cfg.teacher)
    dataset_cfg = _dataset_for_cache(cfg.dataset, needs_pointmap(cfg.teacher))
    dataset = ChunkedDataset(dataset_cfg, cfg.stage)
    scenes = sorted(dataset.index)
    directories = [stage_directory(root, cfg.stage) for root in dataset_cfg.roots]
    if teacher is None:
        teacher = build_teacher(cfg.teacher)
    manifest = build_manifest(cfg, dataset_cfg, identity, int(teacher.patch_size), directories, len(scenes))
    ensure_manifest(cfg.out, manifest, scenes)
    resolution = tuple(manifest["resolution"])

    shard_index, shard_count = cfg.shard
    mine = [scene for position, scene in enumerate(scenes) if position % shard_count == shard_index]
    summary = BuildSummary(total=len(mine))
    pending: dict[Path, list[str]] = {}
    for scene in mine:
        try:
            record = store.read_record(cfg.out, scene)
        except DataError:  # a record that does not parse or belongs to another scene: redo the scene
            record, corrupt = None, True
        else:
            corrupt = False
        if store.record_is_complete(cfg.out, record, checksum=True):
            summary.already_done += 1
            continue
        if corrupt or (record is not None and record.get("status") != "skipped"):
            summary.repaired += 1  # a record exists but its data file is missing, truncated or bit-flipped
        pending.setdefault(dataset.index[scene], []).append(scene)
    done = summary.already_done
    if progress is not None and done:
        progress(done, summary.total, "")
    for chunk_path, wanted in pending.items():
        examples = {example["key"]: example for example in load_chunk(chunk_path)}
        for scene in wanted:
            if scene not in examples:
                raise DataError(f"index.json maps scene {scene!r} to {chunk_path}, but that chunk does not hold it.")
            item = dataset.load_example(examples[scene], chunk_path)
            if isinstance(item, Skip):
                write_skip(cfg.out, scene, item.reason, item.detail, chunk_path.name)
                summary.skipped += 1
            else:
                arrays, seconds = compute_scene(teacher, item, cfg, resolution)
                summary.bytes_written += write_scene(cfg.out, scene, arrays, chunk_path.name, seconds)
                summary.teacher_seconds += seconds
                summary.computed += 1
            done += 1
            if progress is not None:
                progress(done, summary.total, scene)
    return summary
