"""The cache teacher: serves training from an offline teacher cache instead of running the teacher.

Build the cache once (``pmsplat teacher precompute``, see :mod:`pmsplat.teachers.cache_build`
for the frame-set policy and :mod:`pmsplat.teachers.cache_store` for the layout), then train with
``teacher=cache teacher.path=<cache>``. Per example the teacher looks up ``context["scene"]`` and
``context["index"]`` (the context frames' positions in the scene) and returns the stored
pointmaps of exactly those frames, in the teacher frame of the whole scene.

Never served silently:

- a cache built with another teacher or other options (``teacher`` given) or from another
  dataset version (``dataset_roots`` given: index.json + chunk sizes) -> :class:`DataError` at
  construction, listing what differs;
- images of another size than the cache's teacher resolution (dataset.image_shape or the patch
  shim changed) -> :class:`DataError`;
- a scene that is not in the cache, was skipped by the loader, or a frame index beyond the scene's
  frames -> :class:`DataError` naming the scene and frames;
- a data file with the wrong size, an unreadable header, or a frame whose CRC32 differs from the
  record -> :class:`DataError` (corrupt; re-run precompute after deleting the scene's files);
- with ``check_images`` (default), images that do not match the cached frames' thumbnails (mean
  absolute difference of 8x8 area averages above ``image_tolerance``) -> :class:`DataError`.
  The same check recognises the training flip augmentation: when the images match the mirrored
  thumbnails, the served pointmap is mirrored too (columns reversed, world x negated — the
  reconstruction of the mirrored scene). ``context["flip"]`` (B,) bool, when given, decides instead.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from pmsplat.errors import DataError, InputError
from pmsplat.teachers import cache_store as store
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.registry import register_teacher


@dataclass
class CacheTeacherCfg:
    """path: the cache folder. teacher: the teacher config the cache must have been built with
    (None = do not check). dataset_roots: roots of the dataset being trained on; their stage
    folder's fingerprint must equal the cache's (None = do not check). check_images /
    image_tolerance: the thumbnail check (see the module docstring). verify_checksums: CRC32 of
    every frame served."""

    path: Path = Path("outputs/teacher_cache")
    teacher: dict | None = None
    dataset_roots: list[Path] | None = None
    check_images: bool = True
    image_tolerance: float = 0.02
    verify_checksums: bool = True



def check_cache_exists(cfg: CacheTeacherCfg) -> None:
    """Start-up check of a training run: the cache folder has its manifest."""
    if not (Path(cfg.path) / "manifest.json").is_file():
        raise InputError(
            f"teacher=cache: no cache at {cfg.path} (teacher.path); build it with `pmsplat teacher precompute`."
        )


@register_teacher(
    "cache", CacheTeacherCfg, install="a cache folder written by `pmsplat teacher precompute`", check_run=check_cache_exists
)
class CacheTeacher:
    """Pointmap teacher that reads a precomputed cache. See the module docstring.

    ``__call__(images (B, V, 3, H', W'), context)`` with ``context["scene"]`` (B names) and
    ``context["index"]`` (B, V) frame indices returns points (B, V, H', W', 3) and confidence
    (B, V, H', W') (None if the cached teacher had none), float32 on the images' device.
    """

    def __init__(self, cfg: CacheTeacherCfg | None = None) -> None:
        self.cfg = cfg or CacheTeacherCfg()
        self.path = Path(self.cfg.path)
        self.manifest = store.read_manifest(self.path)
        self.patch_size = int(self.manifest["teacher_patch_size"])
        self.resolution = tuple(int(x) for x in self.manifest["resolution"])
        self._records: dict[str, dict] = {}
        if self.cfg.teacher is not None:
            self._check_teacher(self.cfg.teacher)
        if self.cfg.dataset_roots is not None:
            self._check_dataset([Path(root) for root in self.cfg.dataset_roots])

    # ------------------------------------------------------------------ staleness
    def _check_teacher(self, teacher_cfg) -> None:
        from pmsplat.teachers.registry import teacher_identity

        expected = teacher_identity(teacher_cfg)
        differences = store.describe_differences(expected, self.manifest["teacher"])
        if differences:
            raise DataError(
                f"Teacher cache {self.path} is stale: it was built with another teacher configuration:\n  "
                + "\n  ".join(differences)
                + f"\nRebuild it (`pmsplat teacher precompute --out <new folder> ...`) or point teacher.path at a matching cache."
            )

    def _check_dataset(self, roots: list[Path]) -> None:
        from splatcore.dataset.chunks import stage_directory

        stage = self.manifest["dataset"]["stage"]
        try:
            directories = [stage_directory(root, stage) for root in roots]
        except Exception as error:
            raise DataError(f"Cannot check teacher cache {self.path} against dataset {roots}: {error}") from error
        found = store.dataset_fingerprint(directories)
        if found != self.manifest["dataset"]["fingerprint"]:
            raise DataError(
                f"Teacher cache {self.path} is stale: dataset {[str(r) for r in roots]} ({stage}) has changed since "
                f"the cache was built (index.json / chunk files differ: fingerprint {found['sha256'][:12]} with "
                f"{found['chunks']} chunks, cache has {self.manifest['dataset']['fingerprint']['sha256'][:12]} with "
                f"{self.manifest['dataset']['fingerprint']['chunks']}). Re-run `pmsplat teacher precompute`."
            )

    # ------------------------------------------------------------------ reading
    def record(self, scene: str) -> dict:
        """The record of a served scene (cached in memory after the first read)."""
        if scene not in self._records:
            record = store.read_record(self.path, scene)
            if record is None:
                raise DataError(
                    f"Scene {scene!r} is not in teacher cache {self.path} (not computed, or the run that computes it "
                    "was interrupted). Run `pmsplat teacher precompute` again (it resumes) and check with "
                    f"`pmsplat teacher verify {self.path}`."
                )
            if record.get("status") == "skipped":
                raise DataError(
                    f"Scene {scene!r} was skipped when teacher cache {self.path} was built ({record.get('reason')}: "
                    f"{record.get('detail')}); the training loader should skip it as well — check dataset settings."
                )
            self._records[scene] = record
        return self._records[scene]

    def frames(self, scene: str, indices: list[int]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """float16 (points (V, H', W', 3), confidence (V, H', W') | None, thumbnails (V, 3, T, T))
        of the given frames of a scene, CRC-checked."""
        from safetensors import safe_open

        record = self.record(scene)
        missing = [index for index in indices if not 0 <= index < record["frames"]]
        if missing:
            raise DataError(
                f"Frame(s) {missing} of scene {scene!r} are not in teacher cache {self.path} (the scene has "
                f"{record['frames']} cached frames, 0..{record['frames'] - 1}); the dataset and the cache disagree."
            )
        data_path = self.path / store.SCENE_DIR / record["file"]
        try:
            size = os.stat(data_path).st_size
        except FileNotFoundError as error:
            raise DataError(f"Teacher-cache file {data_path} of scene {scene!r} is missing; re-run `pmsplat teacher precompute`.") from error
        if size != record["bytes"]:
            raise self._corrupt(scene, data_path, f"it has {size} bytes, the record says {record['bytes']}")
        names = ["points", "thumbnails"] + (["confidence"] if record.get("confidence") else [])
        result: dict[str, np.ndarray] = {}
        try:
            with safe_open(str(data_path), framework="np") as handle:
                for name in names:
                    tensor = handle.get_slice(name)
                    result[name] = np.stack([tensor[index : index + 1][0] for index in indices])
        except Exception as error:
            raise self._corrupt(scene, data_path, f"it cannot be read ({type(error).__name__}: {str(error)[:120]})") from error
        if self.cfg.verify_checksums:
            for name in names:
                if name == "thumbnails":
                    continue
                expected = record["crc32"][name]
                for row, index in enumerate(indices):
                    if zlib.crc32(np.ascontiguousarray(result[name][row]).tobytes()) != expected[index]:
                        raise self._corrupt(scene, data_path, f"the {name} of frame {index} fail their CRC32 check")
        return result["points"], result.get("confidence"), result["thumbnails"]

    def _corrupt(self, scene: str, path: Path, why: str) -> DataError:
        return DataError(
            f"Teacher-cache file {path} of scene {scene!r} is corrupt: {why}. Delete it and its .json record, then "
            "re-run `pmsplat teacher precompute` (it recomputes only missing scenes)."
        )

    # ------------------------------------------------------------------ serving
    def _orientation(self, images: Tensor, stored: np.ndarray, scene: str, indices: list[int], flip: bool | None) -> bool:
        """Whether the example is horizontally flipped relative to the cache (thumbnail check)."""
        if not self.cfg.check_images:
            return bool(flip)
        from pmsplat.teachers.cache_build import thumbnails

        size = stored.shape[-1]
        seen = thumbnails(images.detach().float(), size).cpu().numpy()  # pool on the images device, move 8x8
        reference = stored.astype(np.float32)
        plain = np.abs(seen - reference).mean(axis=(1, 2, 3))
        mirrored = np.abs(seen - reference[..., ::-1]).mean(axis=(1, 2, 3))
        flipped = bool(flip) if flip is not None else bool(mirrored.sum() < plain.sum())
        errors = mirrored if flipped else plain
        bad = [(index, float(error)) for index, error in zip(indices, errors) if error > self.cfg.image_tolerance]
        if bad:
            raise DataError(
                f"The images of scene {scene!r} do not match the frames cached in {self.path} "
                f"(frame, mean |difference| of 8x8 thumbnails: {[(i, round(e, 4)) for i, e in bad]}, tolerance "
                f"{self.cfg.image_tolerance}). The dataset, the frame indices or the image pipeline differ from the ones "
                "the cache was built with; rebuild the cache (or set teacher.check_images=false if this is intended)."
            )
        return flipped

    def __call__(
        self,
        images: Float[Tensor, "batch view 3 height width"],
        context: dict | None = None,
    ) -> TeacherOutput:
        batch, views, _, height, width = images.shape
        if (height, width) != self.resolution:
            images_cfg = self.manifest["images"]
            raise DataError(
                f"Teacher cache {self.path} holds pointmaps at {self.resolution[0]}x{self.resolution[1]} (built from "
                f"image_shape {images_cfg['image_shape']}, crop multiple {images_cfg['crop_multiple']}, teacher patch "
                f"{self.patch_size}), but the images are {height}x{width}. The image size changed: rebuild the cache "
                "for this dataset.image_shape."
            )
        if context is None or "scene" not in context or "index" not in context:
            raise InputError(
                "CacheTeacher needs context={'scene': [B scene names], 'index': (B, V) frame indices} to look pointmaps up."
            )
        scenes, index = context["scene"], context["index"]
        index = torch.as_tensor(index)
        if len(scenes) != batch or tuple(index.shape) != (batch, views):
            raise InputError(
                f"context['scene'] must hold {batch} names and context['index'] shape {(batch, views)}, got "
                f"{len(scenes)} and {tuple(index.shape)}."
            )
        flips = context.get("flip")
        points = np.empty((batch, views, height, width, 3), dtype=np.float32)  # numpy: fast float16 -> float32
        confidence: np.ndarray | None = None
        for b in range(batch):
            indices = [int(i) for i in index[b].tolist()]
            example_points, example_confidence, stored_thumbnails = self.frames(str(scenes[b]), indices)
            flip = None if flips is None else bool(flips[b])
            flipped = self._orientation(images[b], stored_thumbnails, str(scenes[b]), indices, flip)
            if b == 0 and example_confidence is not None:
                confidence = np.empty((batch, views, height, width), dtype=np.float32)
            if example_confidence is None:
                confidence = None
            if flipped:  # the reconstruction of the mirrored scene: columns reversed, world x negated
                example_points = example_points[:, :, ::-1].copy()
                example_points[..., 0] = -example_points[..., 0]
                example_confidence = None if example_confidence is None else example_confidence[:, :, ::-1].copy()
            points[b] = example_points
            if confidence is not None:
                confidence[b] = example_confidence
        device = images.device
        output = TeacherOutput(
            points=torch.from_numpy(points).to(device),
            confidence=None if confidence is None else torch.from_numpy(confidence).to(device),
        )
        return output
