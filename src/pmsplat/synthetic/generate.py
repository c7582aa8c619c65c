"""Generation of the synthetic benchmark in the upstream chunk format.

Layout written under ``out``::

    train/000000.torch ... + train/index.json       (upstream chunk format, §2.2)
    test/000000.torch ...  + test/index.json
    evaluation_index_interpolation.json            (2 context views, targets between them)
    evaluation_index_extrapolation.json            (2 context views, targets outside them)
    synthetic.json                                 (generator settings + dataset settings)

Each chunk example carries the upstream keys (``key``, ``url`` = "", ``timestamps``,
``cameras`` (N, 18), ``images`` = JPEG bytes) plus ``depths`` (N, H, W) float32 **z-depth** and,
with ``store_pointmaps``, ``pointmaps`` (N, H, W, 3) float32 world points (off by default to keep
the set small: the loader unprojects the depth instead, which is the same quantity).

Determinism: scene ``k`` of split ``s`` is drawn from ``np.random.default_rng([seed, s, k])``,
so a scene does not depend on how many scenes are generated (nor on ``workers``: scenes are
rendered in parallel processes but written in order).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from splatcore.dataset import IndexEntry, chunk_file_name, encode_cameras, encode_image, write_chunk, write_index, write_evaluation_index

from pmsplat.errors import InputError

from .camera_path import PathLayout, random_camera_path
from .evaluation_index import EvaluationIndexLayout, extrapolation_entry, interpolation_entry
from .raycast import render
from .scene import SceneLayout, random_scene

SPLITS = {"train": 0, "test": 1}
FRAME_INTERVAL_US = 33_333  # timestamps of a 30 fps clip, in microseconds
INTERPOLATION_INDEX = "evaluation_index_interpolation.json"
EXTRAPOLATION_INDEX = "evaluation_index_extrapolation.json"
METADATA = "synthetic.json"

# Dataset settings for the synthetic benchmark. Its z-depths lie in [1.4, 13.4] on the default
# training split and [0.94, 13.4] on the test split; near/far bracket them tightly because the
# cost-volume models spread their depth candidates uniformly in 1/depth between them (0.5 / 20
# left 3 of MVSplat's candidates for everything beyond 2.3 m, where 75 % of the pixels are).
SYNTHETIC_NEAR = 1.0
SYNTHETIC_FAR = 15.0


@dataclass
class SynthConfig:
    """Settings of ``pmsplat data synth``. The default set (32 train + 8 test scenes, 48 frames,
    64x64) renders in well under two minutes on 2 CPU cores and takes about 35 MB."""

    out: Path = Path("datasets/synthetic")
    train_scenes: int = 32
    test_scenes: int = 8
    frames: int = 48
    height: int = 64
    width: int = 64
    seed: int = 0
    supersample: int = 2
    scenes_per_chunk: int = 8
    jpeg_quality: int = 95
    store_pointmaps: bool = False
    workers: int = 1
    scene_layout: SceneLayout = field(default_factory=SceneLayout)
    path_layout: PathLayout = field(default_factory=PathLayout)
    index_layout: EvaluationIndexLayout = field(default_factory=EvaluationIndexLayout)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        problems = []
        if self.train_scenes < 0 or self.test_scenes < 0 or self.train_scenes + self.test_scenes == 0:
            problems.append("scene counts must be >= 0 and not both 0")
        if self.height < 8 or self.width < 8:
            problems.append(f"image size must be at least 8x8, got {self.height}x{self.width}")
        if self.frames < self.index_layout.minimum_frames():
            problems.append(
                f"frames must be >= {self.index_layout.minimum_frames()} for the evaluation-index layout, got {self.frames}"
            )
        if self.supersample < 1 or self.scenes_per_chunk < 1 or self.workers < 1:
            problems.append("supersample, scenes_per_chunk and workers must be >= 1")
        if problems:
            raise InputError("Invalid synthetic-benchmark settings: " + "; ".join(problems) + ".")


def scene_key(seed: int, split: str, number: int) -> str:
    """16-hex-character scene id (RE10K style), deterministic in (seed, split, number)."""
    return hashlib.sha256(f"pmsplat-synthetic|{seed}|{split}|{number}".encode()).hexdigest()[:16]


@dataclass
class SyntheticScene:
    """One rendered clip. images (N, H, W, 3) in [0, 1], depths (N, H, W) z-depth, pointmaps
    (N, H, W, 3) world, extrinsics (N, 4, 4) camera-to-world OpenCV, intrinsics (N, 3, 3)
    normalised; all float64 NumPy."""

    key: str
    images: np.ndarray
    depths: np.ndarray
    pointmaps: np.ndarray
    extrinsics: np.ndarray
    intrinsics: np.ndarray


def synthesize_scene(cfg: SynthConfig, split: str, number: int) -> SyntheticScene:
    rng = np.random.default_rng([cfg.seed, SPLITS[split], number])
    scene = random_scene(rng, cfg.scene_layout)
    extrinsics, intrinsics = random_camera_path(rng, scene, cfg.frames, cfg.path_layout)
    frames = [render(scene, extrinsics[i], intrinsics[i], cfg.height, cfg.width, cfg.supersample) for i in range(cfg.frames)]
    return SyntheticScene(
        key=scene_key(cfg.seed, split, number),
        images=np.stack([frame.image for frame in frames]),
        depths=np.stack([frame.depth for frame in frames]),
        pointmaps=np.stack([frame.pointmap for frame in frames]),
        extrinsics=extrinsics,
        intrinsics=intrinsics,
    )


def chunk_example(scene: SyntheticScene, cfg: SynthConfig) -> dict:
    """The upstream chunk dict of a rendered scene (+ ground-truth extras)."""
    frames = scene.images.shape[0]
    example = {
        "key": scene.key,
        "url": "",
        "timestamps": torch.arange(frames, dtype=torch.int64) * FRAME_INTERVAL_US,
        "cameras": encode_cameras(torch.from_numpy(scene.extrinsics), torch.from_numpy(scene.intrinsics)),
        "images": [encode_image(torch.from_numpy(image).permute(2, 0, 1), "JPEG", cfg.jpeg_quality) for image in scene.images],
        "depths": torch.from_numpy(scene.depths).float(),
    }
    if cfg.store_pointmaps:
        example["pointmaps"] = torch.from_numpy(scene.pointmaps).float()
    return example


def _render_example(arguments: tuple[SynthConfig, str, int]) -> dict:
    cfg, split, number = arguments
    return chunk_example(synthesize_scene(cfg, split, number), cfg)


def _render_examples(cfg: SynthConfig, split: str, count: int) -> Iterator[dict]:
    """Chunk examples of scenes 0..count-1 in order, rendered by ``cfg.workers`` processes."""
    jobs = [(cfg, split, number) for number in range(count)]
    if cfg.workers == 1 or count <= 1:
        yield from map(_render_example, jobs)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with context.Pool(min(cfg.workers, count)) as pool:
        yield from pool.imap(_render_example, jobs)


def generate(cfg: SynthConfig, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Render and write the whole benchmark; ``progress(split, done, total)`` is called after
    each scene. Returns a summary (scene keys per split, bytes written)."""
    summary: dict = {"splits": {}}
    for split, count in (("train", cfg.train_scenes), ("test", cfg.test_scenes)):
        directory = cfg.out / split
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.torch"):
            stale.unlink()
        index: dict[str, str] = {}
        pending: list[dict] = []
        chunk_number = 0
        for number, example in enumerate(_render_examples(cfg, split, count)):
            pending.append(example)
            if len(pending) == cfg.scenes_per_chunk or number == count - 1:
                name = chunk_file_name(chunk_number)
                write_chunk(directory / name, pending)
                index.update({example["key"]: name for example in pending})
                pending, chunk_number = [], chunk_number + 1
            if progress is not None:
                progress(split, number + 1, count)
        write_index(directory, index)
        summary["splits"][split] = list(index)
    test_keys = summary["splits"]["test"]
    for name, make_entry in ((INTERPOLATION_INDEX, interpolation_entry), (EXTRAPOLATION_INDEX, extrapolation_entry)):
        entries: dict[str, IndexEntry | None] = {}
        for number, key in enumerate(test_keys):
            rng = np.random.default_rng([cfg.seed, 2 if name == INTERPOLATION_INDEX else 3, number])
            entries[key] = make_entry(rng, cfg.frames, cfg.index_layout)
        write_evaluation_index(cfg.out / name, entries)
    settings = asdict(cfg)
    settings["out"] = str(cfg.out)
    metadata = {
        "generator": "pmsplat data synth",
        "settings": settings,
        "depth": "z-depth along the camera +z axis (not ray distance), metres",
        "dataset": {
            "name": "synthetic",
            "image_shape": [cfg.height, cfg.width],
            "ori_image_shape": [cfg.height, cfg.width],
            "near": SYNTHETIC_NEAR,
            "far": SYNTHETIC_FAR,
        },
        "evaluation_indices": {"interpolation": INTERPOLATION_INDEX, "extrapolation": EXTRAPOLATION_INDEX},
    }
    (cfg.out / METADATA).write_text(json.dumps(metadata, indent=1, default=str))
    summary["bytes"] = sum(path.stat().st_size for path in cfg.out.rglob("*") if path.is_file())
    return summary
