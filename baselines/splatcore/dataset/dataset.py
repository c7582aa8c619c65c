"""The chunked scene dataset for RE10K, ACID, DL3DV and the synthetic benchmark.

An ``IterableDataset`` as upstream: chunk files are split across data-loader workers
(``chunks[worker_id::num_workers]``), shuffled (chunk order and examples within a chunk) for
``train`` and, with ``shuffle_val``, for ``val``. Each example yields, unbatched::

    {"context": views, "target": views, "scene": str}
    views = {extrinsics (V,4,4) c2w OpenCV, intrinsics (V,3,3) normalised, image (V,3,H,W) in [0,1],
             near (V,), far (V,), index (V,) int64, [depth (V,H,W) z-depth], [pointmap (V,H,W,3) world]}

so that the default collate gives a :class:`splatcore.types.BatchedExample`. Processing order:
pose check -> view sampler -> FOV filter -> decode the needed frames -> size check -> optional
make_baseline_1 -> flip augmentation (train) -> crop shim to ``image_shape``.

With ``load_depth`` / ``load_pointmap`` the chunk's ``depths`` / ``pointmaps`` are loaded too; a
chunk with depths but no pointmaps gets its pointmap by unprojecting the depth (exact).

Upstream skips (too few frames, scene not in the evaluation index, FOV, wrong size, DL3DV bad
pose / undecodable image, small baseline, listed error scenes) are skipped here too, counted in a
shared :class:`~splatcore.dataset.skips.SkipCounter` and logged at the end of every pass;
everything else that is wrong with the data raises :class:`DataError` naming the file and
scene. A scene with a bad pose is skipped as a whole (dropping frames would shift the frame
positions that evaluation indices refer to).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from pmsplat.adapter.fork import crop_shim_filter  # PM-Loss fork
from .cameras import convert_cameras, field_of_view_degrees, invalid_pose_mask
from .chunks import list_chunks, load_chunk, read_index, stage_directory
from .config import STAGES, DatasetCfg
from .depth import unproject_depth
from .chunks import without_missing_chunks
from ..errors import ConfigError, DataError, where
from .images import ImageDecodeError, decode_image
from .shims import apply_augmentation_shim, apply_crop_shim
from .positions import TrainPosition, derive_seed, skipped_batches
from .skips import SkipCounter
from .view_sampler import SceneNotInIndex, StepTracker, ViewSampler, get_view_sampler

log = logging.getLogger(__name__)


@dataclass
class Skip:
    """An example that was skipped, with the reason (a key of ``SKIP_REASONS``) and details."""

    reason: str
    detail: str


class _FixedStep:
    """A step tracker whose step the dataset sets per example (the step it will be trained at)."""

    step = 0

    def get_step(self) -> int:
        return self.step


class ChunkedDataset(IterableDataset):
    def __init__(
        self,
        cfg: DatasetCfg,
        stage: str,
        step_tracker: StepTracker | None = None,
        view_sampler: ViewSampler | None = None,
        skip_counter: SkipCounter | None = None,
    ) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {stage!r}.")
        self.cfg = cfg
        self.stage = stage
        self.view_sampler = view_sampler or get_view_sampler(
            cfg.view_sampler,
            stage,
            is_overfitting=cfg.overfit_to_scene is not None,
            cameras_are_circular=cfg.cameras_are_circular,
            step_tracker=step_tracker,
            min_views=cfg.min_views,
            max_views=cfg.max_views,
        )
        self.skips = skip_counter or SkipCounter()
        self.near, self.far = cfg.near_far
        self.index: dict[str, Path] = {}
        self.chunks: list[Path] = []
        for root in cfg.roots:
            directory = stage_directory(root, stage)
            listed = read_index(directory)
            index, missing = without_missing_chunks(directory, listed, cfg.skip_missing_chunks)
            if missing:
                log.warning(
                    "%s: skipping %d chunk file(s) listed in index.json but missing on disk (%d of %d scenes; "
                    "dataset.skip_missing_chunks=true): %s",
                    directory, len(missing), len(listed) - len(index), len(listed), ", ".join(missing[:5]),
                )
            for key, name in index.items():
                if key in self.index:
                    raise DataError(
                        f"Scene key {key!r} appears in more than one dataset root ({self.index[key].parent} and "
                        f"{directory}); keys must be unique across dataset.roots."
                    )
                self.index[key] = directory / name
            self.chunks.extend(list_chunks(directory, index, cfg.use_index_to_load_chunk))
        if cfg.overfit_to_scene is not None:
            if cfg.overfit_to_scene not in self.index:
                raise ConfigError(
                    f"dataset.overfit_to_scene={cfg.overfit_to_scene!r} is not in the {stage} index.json of {cfg.roots}."
                )
            self.chunks = [self.index[cfg.overfit_to_scene]] * len(self.chunks)
        if stage == "test":
            self.chunks = self.chunks[:: cfg.test_chunk_interval]
        # set by the DataModule for the test stage under DDP: this process evaluates the contiguous
        # block shard_rank of shard_count of the test stream (no scene twice, none padded)
        self.shard_rank, self.shard_count = 0, 1
        # set by the DataModule for the train stage (splatcore.dataset.positions): resumable order
        self.position: TrainPosition | None = None
        self.seed = 0
        self.batch_size = 1
        self.error_scenes: set[str] = set()
        if cfg.skip_error_data:
            path = Path(cfg.error_data_path)
            if not path.is_file():
                raise ConfigError(f"dataset.error_data_path {path} does not exist (dataset.skip_error_data is true).")
            self.error_scenes = {line.strip() for line in path.read_text().splitlines() if line.strip()}

    # ------------------------------------------------------------------ iteration
    @property
    def shuffles(self) -> bool:
        return self.stage == "train" or (self.stage == "val" and self.cfg.shuffle_val)

    @property
    def times_per_scene(self) -> int:
        return self.cfg.train_times_per_scene if self.stage == "train" else self.cfg.test_times_per_scene

    def __len__(self) -> int:
        length = len(self.index) * self.times_per_scene
        if self.stage == "test" and self.cfg.test_len > 0:
            length = min(length, self.cfg.test_len)
        return length

    def __iter__(self):
        if self.stage == "train" and self.position is not None:
            yield from self._train_iter()
            return
        if self.stage == "test" and self.shard_count > 1 and self.cfg.overfit_to_scene is None:
            yield from self._test_shard_iter()
            return
        chunks = list(self.chunks)
        if self.shuffles:
            chunks = [chunks[i] for i in torch.randperm(len(chunks)).tolist()]
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        chunks = chunks[worker::workers]
        limit = None
        if self.stage == "test" and self.cfg.test_len > 0:
            limit = self.cfg.test_len // workers + (worker < self.cfg.test_len % workers)
        yielded, skipped = 0, {}
        for path in chunks:
            examples = load_chunk(path)
            if self.cfg.overfit_to_scene is not None:
                examples = [example for example in examples if example["key"] == self.cfg.overfit_to_scene]
            if self.shuffles:
                examples = [examples[i] for i in torch.randperm(len(examples)).tolist()]
            for example in examples:
                for _ in range(self.times_per_scene):
                    if limit is not None and yielded >= limit:
                        self._report_pass(worker, yielded, skipped)
                        return
                    item = self._loaded(example, path, skipped)
                    if item is not None:
                        yielded += 1
                        yield item
        self._report_pass(worker, yielded, skipped)

    def _test_shard_iter(self):
        """This process's contiguous block of the test stream (chunk order, then the order within a
        chunk, ``test_times_per_scene`` repeats, the first ``test_len``): positions
        [rank * n // count, (rank + 1) * n // count) of the n examples, so that the ranks' blocks
        in rank order are exactly the single-process stream. Chunks outside the block are not
        read; with data-loader workers the block's chunks are split across them as usual."""
        from collections import Counter

        sizes = Counter(self.index.values())
        unknown = [path for path in self.chunks if path not in sizes]
        if unknown:
            raise DataError(f"{unknown[0]} is not in its index.json, so the test split cannot be sharded across "
                            "processes; regenerate index.json (or evaluate on one device).")
        repeats = self.times_per_scene
        total = sum(sizes[path] for path in self.chunks) * repeats
        if self.cfg.test_len > 0:
            total = min(total, self.cfg.test_len)
        first = total * self.shard_rank // self.shard_count
        last = total * (self.shard_rank + 1) // self.shard_count
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        offset, mine = 0, []
        for path in self.chunks:
            size = sizes[path] * repeats
            if offset < last and offset + size > first:
                mine.append((offset, path))
            offset += size
        yielded, skipped = 0, {}
        for offset, path in mine[worker::workers]:
            position = offset
            for example in load_chunk(path):
                for _ in range(repeats):
                    position += 1
                    if not first < position <= last:
                        continue
                    item = self._loaded(example, path, skipped)
                    if item is not None:
                        yielded += 1
                        yield item
        self._report_pass(worker, yielded, skipped)

    def _loaded(self, example: dict, path: Path, skipped: dict[str, int]) -> dict | None:
        """The example loaded, or None when it is skipped (then counted in ``skipped``)."""
        item = self.load_example(example, path)
        if isinstance(item, Skip):
            self._count_skip(item, skipped)
            return None
        return item

    def _count_skip(self, item: Skip, skipped: dict[str, int]) -> None:
        """Record one skipped example: its reason in ``self.skips`` and the pass's ``skipped`` counts."""
        self.skips.add(item.reason)
        skipped[item.reason] = skipped.get(item.reason, 0) + 1
        log.debug("skipped %s: %s", item.reason, item.detail)

    def _train_iter(self):
        """The training pass that :class:`~splatcore.dataset.positions.TrainPosition` names, from
        the batch it says (see :mod:`splatcore.dataset.positions`): every order and every random
        choice is drawn from seeds derived from ``self.seed``, the pass and the position."""
        epoch, skip_batches, base_step = self.position.get()
        order = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        chunks = [self.chunks[i] for i in torch.randperm(len(self.chunks), generator=order).tolist()]
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        batch_size = max(1, self.batch_size)
        skip = skipped_batches(skip_batches, worker, workers) * batch_size
        drawn, yielded, skipped = 0, 0, {}
        sampler_step = _FixedStep()
        tracker, self.view_sampler.step_tracker = self.view_sampler.step_tracker, sampler_step
        try:
            for number in range(worker, len(chunks), workers):
                path = chunks[number]
                examples = load_chunk(path)
                if self.cfg.overfit_to_scene is not None:
                    examples = [example for example in examples if example["key"] == self.cfg.overfit_to_scene]
                within = torch.Generator().manual_seed(derive_seed(self.seed, epoch, number))
                examples = [examples[i] for i in torch.randperm(len(examples), generator=within).tolist()]
                for example in examples:
                    for _ in range(self.times_per_scene):
                        sampler_step.step = base_step + worker + (yielded // batch_size) * workers
                        with torch.random.fork_rng(devices=[]):
                            torch.manual_seed(derive_seed(self.seed, epoch, worker, drawn))
                            item = self._loaded(example, path, skipped)
                        drawn += 1
                        if item is None:
                            continue
                        yielded += 1
                        if yielded <= skip:
                            continue  # trained on before the run was resumed
                        yield item
        finally:
            self.view_sampler.step_tracker = tracker
        self._report_pass(worker, yielded, skipped)

    def _report_pass(self, worker: int, yielded: int, skipped: dict[str, int]) -> None:
        if skipped:
            log.warning(
                "%s/%s pass (worker %d) finished: %d examples yielded, %d skipped %s",
                self.cfg.name, self.stage, worker, yielded, sum(skipped.values()), skipped,
            )

    # ------------------------------------------------------------------ one example
    def load_example(self, example: dict, path: Path) -> dict | Skip:
        """Turn one chunk example into an unbatched example, or a :class:`Skip`."""
        cfg = self.cfg
        scene: str = example["key"]
        if scene in self.error_scenes:
            return Skip("error_data", scene)
        cameras = example["cameras"].float()
        bad = invalid_pose_mask(cameras)
        if bad.any():
            frames = bad.nonzero()[:, 0].tolist()
            if cfg.skips_bad_pose:
                return Skip("bad_pose", f"{scene}: frames {frames[:5]}")
            raise DataError(
                f"{len(frames)} frame(s) (first: {frames[:5]}) have a non-finite pose, a non-rotation 3x3 block "
                f"or a non-positive focal length{where(path, scene)}. Fix the camera vectors, or set "
                "dataset.skip_bad_pose=true to skip such scenes."
            )
        extrinsics, intrinsics = convert_cameras(cameras)
        try:
            context_indices, target_indices = self.view_sampler.sample(scene, extrinsics, intrinsics)
        except SceneNotInIndex as error:
            return Skip("not_in_index", str(error))
        except ValueError as error:
            return Skip("sampler", str(error))
        num_frames = cameras.shape[0]
        everything = torch.cat([context_indices, target_indices])
        if int(everything.max()) >= num_frames or int(everything.min()) < 0:
            raise DataError(
                f"The view sampler asked for frame {int(everything.max())} but the scene has {num_frames} frames"
                f"{where(path, scene)}; the evaluation index does not match this dataset copy."
            )
        if cfg.sort_context_index:
            context_indices = context_indices.sort().values
        if cfg.sort_target_index:
            target_indices = target_indices.sort().values
        fov = field_of_view_degrees(intrinsics[everything])
        if (fov > cfg.max_fov).any():
            return Skip("fov", f"{scene}: {fov.max():.1f} deg")

        frames = sorted(set(everything.tolist()))
        decoded: dict[int, Tensor] = {}
        for frame in frames:
            try:
                decoded[frame] = decode_image(example["images"][frame], path, scene, frame)
            except ImageDecodeError:
                if cfg.skips_undecodable_image:
                    return Skip("undecodable_image", f"{scene}: frame {frame}")
                raise
        shapes = {tuple(image.shape[1:]) for image in decoded.values()}
        expected = cfg.expected_native_shape
        if len(shapes) > 1 or (expected is not None and shapes != {expected}):
            if cfg.skip_bad_shape:
                return Skip("bad_shape", f"{scene}: {sorted(shapes)}")
            raise DataError(
                f"Images of size(s) {sorted(shapes)} where {expected or 'one common size'} was expected"
                f"{where(path, scene)}. Set dataset.ori_image_shape to the native size, or "
                "dataset.skip_bad_shape=true to skip such scenes."
            )
        height, width = shapes.pop()

        scale = 1.0
        if cfg.make_baseline_1:
            first, second = extrinsics[context_indices[0], :3, 3], extrinsics[context_indices[-1], :3, 3]
            scale = float((first - second).norm())
            if scale < cfg.baseline_epsilon:
                return Skip("small_baseline", f"{scene}: {scale:.2e}")
            extrinsics = extrinsics.clone()
            extrinsics[:, :3, 3] /= scale
        bound_scale = scale if cfg.baseline_scale_bounds else 1.0

        extras = {}
        for flag, key, view_key in ((cfg.load_depth, "depths", "depth"), (cfg.load_pointmap, "pointmaps", "pointmap")):
            if not flag:
                continue
            values = example.get(key)
            if values is None and key == "pointmaps" and example.get("depths") is not None:
                # the synthetic set stores z-depth only by default; its pointmap is the unprojection
                values = unproject_depth(example["depths"].float(), *convert_cameras(cameras))
            if values is None:
                raise DataError(
                    f"The chunk has no '{key}'{where(path, scene)}, but dataset.load_{view_key} is true. Only "
                    f"chunks written by `pmsplat data synth` carry ground truth; set dataset.load_{view_key}=false."
                )
            if tuple(values.shape[1:3]) != (height, width):
                raise DataError(
                    f"'{key}' are {tuple(values.shape[1:3])} but images are {(height, width)}{where(path, scene)}."
                )
            extras[view_key] = values.float() / scale

        def views(indices: Tensor) -> dict:
            count = indices.shape[0]
            result = {
                "extrinsics": extrinsics[indices],
                "intrinsics": intrinsics[indices],
                "image": torch.stack([decoded[i] for i in indices.tolist()]),
                "near": torch.full((count,), self.near / bound_scale, dtype=torch.float32),
                "far": torch.full((count,), self.far / bound_scale, dtype=torch.float32),
                "index": indices.to(torch.int64),
            }
            for key, values in extras.items():
                result[key] = values[indices]
            return result

        item = {"context": views(context_indices), "target": views(target_indices), "scene": scene}
        if self.stage == "train" and cfg.augment:
            item = apply_augmentation_shim(item)
        with crop_shim_filter(cfg.resize_filter):  # PM-Loss fork
            return apply_crop_shim(item, (int(cfg.image_shape[0]), int(cfg.image_shape[1])))


def get_dataset(
    cfg: DatasetCfg,
    stage: str,
    step_tracker: StepTracker | None = None,
    skip_counter: SkipCounter | None = None,
):
    """The :class:`ChunkedDataset` of a stage (``val`` reads the ``test`` directory)."""
    return ChunkedDataset(cfg, stage, step_tracker=step_tracker, skip_counter=skip_counter)
