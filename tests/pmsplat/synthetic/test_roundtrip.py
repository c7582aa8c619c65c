"""Synthetic benchmark: exact ray casting (against a scalar brute-force tracer), and the round
trip generate -> chunks -> loader: cameras, images, depth and pointmaps agree with the generator,
and depth reprojected from one view into another lands on the right surface points."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from splatcore.dataset import (
    ChunkedDataset,
    ViewSamplerAllCfg,
    ViewSamplerEvaluationCfg,
    load_chunk,
    read_evaluation_index,
)
from splatcore.dataset.depth import unproject_depth

from pmsplat.errors import InputError
from pmsplat.synthetic import EXTRAPOLATION_INDEX, INTERPOLATION_INDEX, SynthConfig, generate, synthesize_scene, synthetic_dataset_cfg
from pmsplat.synthetic.evaluation_index import EvaluationIndexLayout
from pmsplat.synthetic.raycast import intersect, pixel_rays, render
from pmsplat.synthetic.scene import random_scene

SMALL_INDEX = EvaluationIndexLayout(interpolation_gap=(4, 8), interpolation_targets=2, extrapolation_gap=6,
                                    extrapolation_window=4, extrapolation_targets_per_side=2)


def tiny_config(out, **overrides) -> SynthConfig:
    values = dict(out=out, train_scenes=2, test_scenes=2, frames=16, height=32, width=32, seed=5,
                  supersample=1, scenes_per_chunk=1, store_pointmaps=True, index_layout=SMALL_INDEX)
    values.update(overrides)
    return SynthConfig(**values)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    summary = generate(tiny_config(root))
    return root, summary


# ----------------------------------------------------------------------------- brute force

def brute_force_t(scene, origin, direction) -> float:
    """Scalar reference: smallest positive hit parameter, each primitive tested face by face."""
    best = math.inf
    room = scene.room
    for axis in range(3):
        for bound in (room.low[axis], room.high[axis]):
            if direction[axis] != 0:
                t = (bound - origin[axis]) / direction[axis]
                point = origin + t * direction
                others = [a for a in range(3) if a != axis]
                if t > 0 and all(room.low[a] - 1e-9 <= point[a] <= room.high[a] + 1e-9 for a in others):
                    best = min(best, t)
    for box in scene.boxes:
        c, s = math.cos(box.yaw), math.sin(box.yaw)
        rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        o, d = rotation.T @ (origin - box.centre), rotation.T @ direction
        for axis in range(3):
            for bound in (-box.half_size[axis], box.half_size[axis]):
                if d[axis] != 0:
                    t = (bound - o[axis]) / d[axis]
                    p = o + t * d
                    if t > 1e-6 and all(abs(p[a]) <= box.half_size[a] + 1e-9 for a in range(3) if a != axis):
                        best = min(best, t)
    for sphere in scene.spheres:
        rel = origin - sphere.centre
        a, b, cc = direction @ direction, 2 * direction @ rel, rel @ rel - sphere.radius**2
        disc = b * b - 4 * a * cc
        if disc >= 0:
            for t in ((-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)):
                if t > 1e-6:
                    best = min(best, t)
                    break
    for cylinder in scene.cylinders:
        ox, oz = origin[0] - cylinder.centre_xz[0], origin[2] - cylinder.centre_xz[1]
        dx, dz = direction[0], direction[2]
        a, b, cc = dx * dx + dz * dz, 2 * (ox * dx + oz * dz), ox * ox + oz * oz - cylinder.radius**2
        disc = b * b - 4 * a * cc
        if a > 0 and disc >= 0:
            t = (-b - math.sqrt(disc)) / (2 * a)
            if t > 1e-6 and cylinder.y_low <= origin[1] + t * direction[1] <= cylinder.y_high:
                best = min(best, t)
        for y in (cylinder.y_low, cylinder.y_high):
            if direction[1] != 0:
                t = (y - origin[1]) / direction[1]
                if t > 1e-6 and (ox + t * dx) ** 2 + (oz + t * dz) ** 2 <= cylinder.radius**2:
                    best = min(best, t)
    return best


def test_vectorised_ray_casting_matches_brute_force():
    rng = np.random.default_rng(11)
    scene = random_scene(rng)
    c2w = np.eye(4)
    c2w[:3, 3] = [0.2, -0.1, 1.0]
    k = np.array([[0.8, 0, 0.5], [0, 0.8, 0.5], [0, 0, 1]])
    origins, directions = pixel_rays(c2w, k, 24, 24)
    hits = intersect(scene, origins, directions)
    reference = np.array([brute_force_t(scene, o, d) for o, d in zip(origins, directions)])
    np.testing.assert_allclose(hits.t, reference, rtol=1e-9)
    # the foreground objects are visible: many rays stop before the back wall
    assert (hits.texture >= 6).mean() > 0.05


def test_depth_is_z_depth_not_ray_distance():
    rng = np.random.default_rng(2)
    scene = random_scene(rng)
    c2w, k = np.eye(4), np.array([[0.7, 0, 0.5], [0, 0.7, 0.5], [0, 0, 1]])
    c2w[:3, 3] = [0, 0, 1.0]
    frame = render(scene, c2w, k, 16, 16, supersample=1)
    camera_points = frame.pointmap - c2w[:3, 3]
    np.testing.assert_allclose(frame.depth, camera_points[..., 2], rtol=1e-12)
    assert (np.linalg.norm(camera_points, axis=-1) > frame.depth + 1e-6).mean() > 0.9


# ----------------------------------------------------------------------------- round trip

def test_chunks_hold_upstream_layout(synthetic_root):
    root, summary = synthetic_root
    index = json.loads((root / "train" / "index.json").read_text())
    assert sorted(index) == sorted(summary["splits"]["train"]) and set(index.values()) == {"000000.torch", "000001.torch"}
    example = load_chunk(root / "train" / "000000.torch")[0]
    assert example["cameras"].shape == (16, 18) and example["cameras"].dtype == torch.float32
    assert len(example["images"]) == 16 and example["images"][0].dtype == torch.uint8
    assert bytes(example["images"][0][:2].tolist()) == b"\xff\xd8"  # JPEG magic
    assert example["timestamps"].dtype == torch.int64 and example["url"] == ""
    assert example["depths"].shape == (16, 32, 32) and example["pointmaps"].shape == (16, 32, 32, 3)
    assert len(example["key"]) == 16 and int(example["key"], 16) >= 0


def test_loader_round_trip_matches_generator(synthetic_root):
    root, _ = synthetic_root
    cfg = synthetic_dataset_cfg(root, view_sampler=ViewSamplerAllCfg(), load_depth=True, load_pointmap=True, augment=False)
    items = {item["scene"]: item for item in ChunkedDataset(cfg, "train")}
    assert len(items) == 2
    for number in range(2):
        truth = synthesize_scene(tiny_config(root), "train", number)
        views = items[truth.key]["context"]
        np.testing.assert_allclose(views["extrinsics"].numpy(), truth.extrinsics, atol=1e-5)
        np.testing.assert_allclose(views["intrinsics"].numpy(), truth.intrinsics, atol=1e-7)
        np.testing.assert_array_equal(views["depth"].numpy(), truth.depths.astype(np.float32))
        np.testing.assert_array_equal(views["pointmap"].numpy(), truth.pointmaps.astype(np.float32))
        loaded = views["image"].permute(0, 2, 3, 1).numpy()
        assert np.abs(loaded - truth.images).mean() < 0.02  # JPEG quality 95, 4:4:4, aliased 32 px texture
        for frame in (0, 7):  # exactly what PIL gives for the generator's image
            buffer = io.BytesIO()
            Image.fromarray((truth.images[frame] * 255).round().astype(np.uint8)).save(buffer, format="JPEG", quality=95, subsampling=0)
            expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")) / 255
            np.testing.assert_allclose(loaded[frame], expected, atol=1e-6)
        np.testing.assert_array_equal(views["near"].numpy(), 1.0)


def test_pointmap_equals_unprojected_depth_and_is_derived_when_not_stored(synthetic_root, tmp_path):
    root, _ = synthetic_root
    cfg = synthetic_dataset_cfg(root, view_sampler=ViewSamplerAllCfg(), load_depth=True, load_pointmap=True, augment=False)
    item = next(iter(ChunkedDataset(cfg, "test")))["context"]
    unprojected = unproject_depth(item["depth"], item["extrinsics"], item["intrinsics"])
    np.testing.assert_allclose(unprojected.numpy(), item["pointmap"].numpy(), atol=2e-5)
    lean = tmp_path / "lean"
    generate(tiny_config(lean, store_pointmaps=False, train_scenes=0, test_scenes=1))
    assert "pointmaps" not in load_chunk(lean / "test" / "000000.torch")[0]
    derived = next(iter(ChunkedDataset(synthetic_dataset_cfg(lean, view_sampler=ViewSamplerAllCfg(), load_pointmap=True), "test")))
    np.testing.assert_allclose(derived["context"]["pointmap"].numpy(), item["pointmap"].numpy(), atol=2e-5)


def test_depth_reprojects_onto_the_same_surface_in_another_view(synthetic_root):
    root, _ = synthetic_root
    cfg = synthetic_dataset_cfg(root, view_sampler=ViewSamplerAllCfg(), load_depth=True, augment=False)
    item = next(iter(ChunkedDataset(cfg, "test")))
    views = item["context"]
    truth_scene = random_scene(np.random.default_rng([5, 1, 0]))  # scene 0 of the test split, seed 5
    height, width = 32, 32
    for source, destination in ((0, 5), (10, 4)):
        depth = views["depth"][source].double()
        points = unproject_depth(depth[None], views["extrinsics"][source : source + 1], views["intrinsics"][source : source + 1])[0].double().reshape(-1, 3)
        w2c = torch.linalg.inv(views["extrinsics"][destination].double())
        camera = points @ w2c[:3, :3].T + w2c[:3, 3]
        k = views["intrinsics"][destination].double()
        u = (k[0, 0] * camera[:, 0] / camera[:, 2] + k[0, 2]) * width
        v = (k[1, 1] * camera[:, 1] / camera[:, 2] + k[1, 2]) * height
        inside = (u > 0) & (u < width) & (v > 0) & (v < height) & (camera[:, 2] > 0)
        # cast the exact ray through the projected (sub-pixel) location in the destination view
        c2w = views["extrinsics"][destination].double().numpy()
        directions = np.stack([((u / width - k[0, 2]) / k[0, 0]).numpy(), ((v / height - k[1, 2]) / k[1, 1]).numpy(), np.ones(len(u))], 1) @ c2w[:3, :3].T
        origins = np.broadcast_to(c2w[:3, 3], directions.shape)
        hits = intersect(truth_scene, origins, directions)
        hit_points = origins + hits.t[:, None] * directions
        distance = np.linalg.norm(hit_points - points.numpy(), axis=1)
        visible = inside.numpy() & (distance < 1e-3)  # not occluded in the destination view
        assert visible.mean() > 0.5
        # pixel-level check: the visible points' depth in the destination equals the camera z
        np.testing.assert_allclose(hits.t[visible], camera[:, 2].numpy()[visible], rtol=1e-4)
        # and the nearest destination pixel's stored depth agrees away from depth edges
        rows, columns = np.floor(v.numpy()[visible]).astype(int), np.floor(u.numpy()[visible]).astype(int)
        stored = views["depth"][destination].numpy()[rows, columns]
        close = np.abs(stored - camera[:, 2].numpy()[visible]) < 0.05 * stored
        assert close.mean() > 0.8


def test_evaluation_indices_for_both_protocols(synthetic_root):
    root, summary = synthetic_root
    interpolation = read_evaluation_index(root / INTERPOLATION_INDEX)
    extrapolation = read_evaluation_index(root / EXTRAPOLATION_INDEX)
    assert sorted(interpolation) == sorted(extrapolation) == sorted(summary["splits"]["test"])
    for entry in interpolation.values():
        left, right = entry.context
        assert 4 <= right - left <= 8 and len(entry.target) == 2 and all(left < t < right for t in entry.target)
    for entry in extrapolation.values():
        left, right = entry.context
        assert right - left == 6 and len(entry.target) == 4 and list(entry.target) == sorted(entry.target)
        assert sum(t < left for t in entry.target) == 2 and all(t < left or t > right for t in entry.target)
        assert min(entry.target) >= max(left - 4, 0) and max(entry.target) <= min(right + 4, 15)
    cfg = synthetic_dataset_cfg(root, view_sampler=ViewSamplerEvaluationCfg(index_path=root / EXTRAPOLATION_INDEX))
    items = list(ChunkedDataset(cfg, "test"))
    assert len(items) == 2 and all(item["target"]["image"].shape == (4, 3, 32, 32) for item in items)


def test_generation_is_deterministic_by_seed(synthetic_root):
    root, _ = synthetic_root
    again = synthesize_scene(tiny_config(root), "test", 1)
    stored = {example["key"]: example for example in load_chunk(root / "test" / "000001.torch")}
    assert again.key in stored
    np.testing.assert_array_equal(stored[again.key]["depths"].numpy(), again.depths.astype(np.float32))
    other = synthesize_scene(tiny_config(root, seed=6), "test", 1)
    assert other.key != again.key and not np.allclose(other.depths, again.depths)


def test_invalid_settings_are_rejected(tmp_path):
    with pytest.raises(InputError, match="frames must be >= 37"):
        SynthConfig(out=tmp_path, frames=20)
    with pytest.raises(InputError, match="at least 8x8"):
        SynthConfig(out=tmp_path, height=4)
