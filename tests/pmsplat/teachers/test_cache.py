"""The offline teacher cache: precompute -> cache teacher reproduces the live teacher to float16
precision (frame subsets, flips, teacher-resolution resize, windowed frame policy); resume after
an interrupt redoes nothing finished; disjoint shards fill the cache together; stale caches
(teacher options, resolution, dataset), missing scenes/frames and corrupt files raise DataError.

The reference is always an independent live run: the synthetic teacher applied to ground truth
loaded through splatcore's ChunkedDataset (all frames of the scene in one call, the cache's
"scene" frame policy), compared in float64."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from splatcore.dataset import ChunkedDataset, ViewSamplerAllCfg, load_chunk
from splatcore.dataset.shims import flip_views

from pmsplat.errors import DataError
from pmsplat.synthetic import SynthConfig, generate, synthetic_dataset_cfg
from pmsplat.synthetic.evaluation_index import EvaluationIndexLayout
from pmsplat.teachers import cache_store as store
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.cache import CacheTeacher, CacheTeacherCfg
from pmsplat.teachers.cache_build import CacheBuildCfg, FramePolicyCfg, precompute, resize_images_for_teacher
from pmsplat.teachers.cache_verify import verify_cache
from pmsplat.teachers.synthetic import SyntheticTeacher, SyntheticTeacherCfg

FRAMES, SIZE = 16, 16
LAYOUT = EvaluationIndexLayout(interpolation_gap=(4, 8), interpolation_targets=2, extrapolation_gap=6,
                               extrapolation_window=4, extrapolation_targets_per_side=2)
TEACHER = {"name": "synthetic", "seed": 3}
FLOAT16_RTOL = 2.0**-10  # half of float16's 2^-10 relative spacing, doubled for rounding either side


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate(SynthConfig(out=root, train_scenes=3, test_scenes=1, frames=FRAMES, height=SIZE, width=SIZE, seed=1,
                         supersample=1, scenes_per_chunk=2, index_layout=LAYOUT))
    return root


def build_cfg(root, out, **overrides) -> CacheBuildCfg:
    values = dict(out=out, dataset=synthetic_dataset_cfg(root), teacher=dict(TEACHER))
    values.update(overrides)
    return CacheBuildCfg(**values)


@pytest.fixture(scope="module")
def cache(dataset_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "c"
    summary = precompute(build_cfg(dataset_root, out))
    assert summary.computed == 3 and summary.already_done == 0
    return out


@pytest.fixture(scope="module")
def scenes(dataset_root) -> dict[str, dict]:
    return all_frames(dataset_root)


def all_frames(root) -> dict[str, dict]:
    """Every scene of the train split with all frames (ground-truth pointmap), via the loader."""
    cfg = dataclasses.replace(synthetic_dataset_cfg(root), view_sampler=ViewSamplerAllCfg(), augment=False, load_pointmap=True)
    dataset = ChunkedDataset(cfg, "train")
    scenes = {}
    for path in dataset.chunks:
        for example in load_chunk(path):
            scenes[example["key"]] = dataset.load_example(example, path)["context"]
    return scenes


def live(views: dict, scene: str, indices: list[int] | None = None) -> TeacherOutput:
    """The synthetic teacher run on all frames of a scene (the cache's frame policy)."""
    frames = views["image"].shape[0]
    teacher = SyntheticTeacher(SyntheticTeacherCfg(seed=TEACHER["seed"]))
    context = {"pointmap": views["pointmap"][None], "scene": [scene], "index": torch.arange(frames)[None]}
    output = teacher(views["image"][None], context)
    if indices is None:
        return output
    return TeacherOutput(output.points[:, indices], output.confidence[:, indices])


def served(teacher: CacheTeacher, views: dict, scene: str, indices: list[int], flip=None) -> TeacherOutput:
    context = {"scene": [scene], "index": torch.tensor([indices])}
    if flip is not None:
        context["flip"] = torch.tensor([flip])
    return teacher(views["image"][indices][None], context)


def assert_float16_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    actual, expected = actual.double(), expected.double()
    bound = FLOAT16_RTOL * expected.abs() + 1e-7
    assert ((actual - expected).abs() <= bound).all(), float(((actual - expected).abs() / (expected.abs() + 1e-9)).max())


def test_round_trip_equals_live_teacher_to_float16(scenes, dataset_root, cache):
    teacher = CacheTeacher(CacheTeacherCfg(path=cache, teacher=TEACHER, dataset_roots=[dataset_root]))
    assert teacher.patch_size == 1 and teacher.resolution == (SIZE, SIZE)
    for scene, views in scenes.items():
        reference = live(views, scene)
        everything = served(teacher, views, scene, list(range(FRAMES)))
        assert everything.points.dtype == torch.float32 and everything.points.shape == (1, FRAMES, SIZE, SIZE, 3)
        assert_float16_close(everything.points, reference.points)
        assert_float16_close(everything.confidence, reference.confidence)
        # a sampled context set gets exactly those frames, in the order asked for
        subset = [7, 2, 11]
        part = served(teacher, views, scene, subset)
        assert torch.equal(part.points, everything.points[:, subset])
    # a batch mixing scenes
    names = sorted(scenes)[:2]
    images = torch.stack([scenes[n]["image"][[0, 5]] for n in names])
    batch = teacher(images, {"scene": names, "index": torch.tensor([[0, 5], [0, 5]])})
    for b, name in enumerate(names):
        assert torch.equal(batch.points[b], served(teacher, scenes[name], name, [0, 5]).points[0])


def test_stored_files_are_float16_memory_mappable(cache):
    from safetensors import safe_open

    data_files = sorted((cache / store.SCENE_DIR).glob("*.safetensors"))
    assert len(data_files) == 3
    with safe_open(str(data_files[0]), framework="np") as handle:
        assert handle.get_slice("points").get_dtype() == "F16"
        assert handle.get_slice("points").get_shape() == [FRAMES, SIZE, SIZE, 3]
        assert handle.get_slice("confidence").get_shape() == [FRAMES, SIZE, SIZE]
    # the payload is the bulk of the file: float16 points + confidence + 8x8 thumbnails, small header
    payload = FRAMES * SIZE * SIZE * (3 + 1) * 2 + FRAMES * 3 * 8 * 8 * 2
    assert payload <= data_files[0].stat().st_size <= payload + 1024


def test_flipped_examples_get_the_mirrored_pointmap(scenes, dataset_root, cache):
    scene = sorted(scenes)[0]
    views = scenes[scene]
    teacher = CacheTeacher(CacheTeacherCfg(path=cache))
    indices = [1, 9]
    plain = served(teacher, views, scene, indices).points[0]
    flipped_views = flip_views({key: value[indices] for key, value in views.items()})
    mirrored = teacher(flipped_views["image"][None], {"scene": [scene], "index": torch.tensor([indices])}).points[0]
    expected = plain.flip(-2).clone()
    expected[..., 0] = -expected[..., 0]
    assert torch.equal(mirrored, expected)
    # an explicit flag gives the same answer
    explicit = teacher(flipped_views["image"][None], {"scene": [scene], "index": torch.tensor([indices]), "flip": torch.tensor([True])})
    assert torch.equal(explicit.points[0], expected)


def test_wrong_images_are_refused(scenes, dataset_root, cache):
    first, second = sorted(scenes)[:2]
    teacher = CacheTeacher(CacheTeacherCfg(path=cache))
    with pytest.raises(DataError, match="do not match the frames cached"):
        teacher(scenes[second]["image"][[0, 1]][None], {"scene": [first], "index": torch.tensor([[0, 1]])})
    lenient = CacheTeacher(CacheTeacherCfg(path=cache, check_images=False))
    lenient(scenes[second]["image"][[0, 1]][None], {"scene": [first], "index": torch.tensor([[0, 1]])})


def test_missing_scene_and_missing_frame_raise(scenes, dataset_root, cache):
    scene = sorted(scenes)[0]
    teacher = CacheTeacher(CacheTeacherCfg(path=cache))
    images = scenes[scene]["image"][[0, 1]][None]
    with pytest.raises(DataError, match=r"Frame\(s\) \[16\].*16 cached frames"):
        teacher(images, {"scene": [scene], "index": torch.tensor([[0, 16]])})
    with pytest.raises(DataError, match="'no_such_scene' is not in teacher cache"):
        teacher(images, {"scene": ["no_such_scene"], "index": torch.tensor([[0, 1]])})


def test_stale_cache_is_detected(dataset_root, cache, tmp_path):
    # other teacher options
    with pytest.raises(DataError, match=r"stale.*\n.*options.seed: cache has 3, expected 4"):
        CacheTeacher(CacheTeacherCfg(path=cache, teacher={"name": "synthetic", "seed": 4}))
    with pytest.raises(DataError, match="name: cache has 'synthetic', expected 'vggt'"):
        CacheTeacher(CacheTeacherCfg(path=cache, teacher={"name": "vggt"}))
    # other resolution
    teacher = CacheTeacher(CacheTeacherCfg(path=cache, teacher=TEACHER))
    with pytest.raises(DataError, match="16x16.*images are 32x32"):
        teacher(torch.rand(1, 2, 3, 32, 32), {"scene": ["x"], "index": torch.tensor([[0, 1]])})
    # the dataset changed (one scene re-rendered into a copy of the dataset)
    copy = tmp_path / "data"
    shutil.copytree(dataset_root, copy)
    CacheTeacher(CacheTeacherCfg(path=cache, dataset_roots=[copy]))  # an identical copy is current
    chunk = sorted((copy / "train").glob("*.torch"))[-1]
    examples = load_chunk(chunk)
    examples[0]["images"] = examples[0]["images"][:-1]
    examples[0]["cameras"] = examples[0]["cameras"][:-1]
    examples[0]["timestamps"] = examples[0]["timestamps"][:-1]
    examples[0]["depths"] = examples[0]["depths"][:-1]
    torch.save(examples, chunk)
    with pytest.raises(DataError, match="has changed since the cache was built"):
        CacheTeacher(CacheTeacherCfg(path=cache, dataset_roots=[copy]))
    report = verify_cache(cache, dataset_roots=[copy], checksums=False)
    assert not report.ok and "changed" in report.stale
    # resuming a build with other settings into the same folder is refused
    with pytest.raises(DataError, match="built with other settings"):
        precompute(build_cfg(dataset_root, cache, teacher={"name": "synthetic", "seed": 3, "noise_std": 0.0}))
    with pytest.raises(DataError, match=r"built with other settings:(.|\n)*resolution: cache has \[16, 16\], expected \[8, 8\]"):
        precompute(build_cfg(dataset_root, cache, dataset=synthetic_dataset_cfg(dataset_root, image_shape=[8, 8])))


def copy_cache(cache, tmp_path):
    target = tmp_path / "cache"
    shutil.copytree(cache, target)
    return target


def test_corrupt_files_raise(scenes, dataset_root, cache, tmp_path):
    scene = sorted(scenes)[0]
    images = scenes[scene]["image"][[0, 3]][None]
    context = {"scene": [scene], "index": torch.tensor([[0, 3]])}
    target = copy_cache(cache, tmp_path)
    data_path, record_path = store.scene_paths(target, scene)
    # one flipped byte inside frame 3's points (same size): CRC32 at serving, sha256 in verify
    header = 8 + int.from_bytes(data_path.read_bytes()[:8], "little")
    record = json.loads(record_path.read_text())
    with open(data_path, "r+b") as handle:
        raw = bytearray(data_path.read_bytes())
        offsets = json.loads(raw[8:header])["points"]["data_offsets"]
        position = header + offsets[0] + 3 * SIZE * SIZE * 3 * 2 + 100
        raw[position] ^= 0x40
        handle.write(raw)
    teacher = CacheTeacher(CacheTeacherCfg(path=target))
    teacher(scenes[scene]["image"][[0, 1]][None], {"scene": [scene], "index": torch.tensor([[0, 1]])})  # frames 0, 1 intact
    with pytest.raises(DataError, match="corrupt: the points of frame 3 fail their CRC32 check"):
        teacher(images, context)
    report = verify_cache(target)
    assert not report.ok and len(report.corrupt) == 1 and "sha256" in report.corrupt[0]
    assert verify_cache(target, checksums=False).ok  # sizes alone cannot see it
    # truncated file
    data_path.write_bytes(data_path.read_bytes()[: record["bytes"] // 2])
    with pytest.raises(DataError, match="corrupt: it has .* bytes, the record says"):
        CacheTeacher(CacheTeacherCfg(path=target))(images, context)
    # garbage header of the right size
    data_path.write_bytes(b"\xff" * record["bytes"])
    with pytest.raises(DataError, match="corrupt: it cannot be read"):
        CacheTeacher(CacheTeacherCfg(path=target))(images, context)
    # corrupt record and manifest
    record_path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        CacheTeacher(CacheTeacherCfg(path=target))(images, context)
    (target / store.MANIFEST).write_text("[]")
    with pytest.raises(DataError, match="not a pmsplat teacher-cache manifest"):
        CacheTeacher(CacheTeacherCfg(path=target))


class CountingTeacher:
    """Wraps the synthetic teacher; counts scenes; raises KeyboardInterrupt on call ``stop_at``."""

    patch_size = 1

    def __init__(self, stop_at: int | None = None):
        self.inner = SyntheticTeacher(SyntheticTeacherCfg(seed=TEACHER["seed"]))
        self.scenes: list[str] = []
        self.stop_at = stop_at

    def __call__(self, images, context=None):
        if self.stop_at is not None and len(self.scenes) == self.stop_at:
            raise KeyboardInterrupt
        self.scenes.append(context["scene"][0])
        return self.inner(images, context)


def test_resume_after_interrupt_skips_finished_scenes(dataset_root, cache, tmp_path):
    out = tmp_path / "resumed"
    interrupted = CountingTeacher(stop_at=1)
    with pytest.raises(KeyboardInterrupt):
        precompute(build_cfg(dataset_root, out), teacher=interrupted)
    assert len(interrupted.scenes) == 1
    finished = interrupted.scenes[0]
    data_path, _ = store.scene_paths(out, finished)
    stamp = data_path.stat().st_mtime_ns
    report = verify_cache(out)
    assert report.complete == 1 and len(report.missing) == 2
    # a half-written data file of the interrupted scene (no record) is redone, never served
    unfinished = sorted(set(json.loads((out / store.SCENE_LIST).read_text())) - {finished})[0]
    store.scene_paths(out, unfinished)[0].write_bytes(b"partial")
    with pytest.raises(DataError, match="not in teacher cache"):
        CacheTeacher(CacheTeacherCfg(path=out))(torch.rand(1, 1, 3, SIZE, SIZE), {"scene": [unfinished], "index": torch.tensor([[0]])})
    resumed = CountingTeacher()
    summary = precompute(build_cfg(dataset_root, out), teacher=resumed)
    assert finished not in resumed.scenes and len(resumed.scenes) == 2
    assert summary.already_done == 1 and summary.computed == 2
    assert data_path.stat().st_mtime_ns == stamp
    assert verify_cache(out).ok
    # the resumed cache holds the same bytes as an uninterrupted build
    for scene in json.loads((out / store.SCENE_LIST).read_text()):
        assert store.scene_paths(out, scene)[0].read_bytes() == store.scene_paths(cache, scene)[0].read_bytes()


def test_precompute_recomputes_bit_flipped_and_corrupt_records(dataset_root, cache, tmp_path):
    """Re-running precompute on a cache with a bit-flipped data file (same size: only the sha256
    tells) and an unreadable record recomputes exactly those two scenes, as `verify` advises."""
    out = tmp_path / "repaired"
    shutil.copytree(cache, out)
    listed = sorted(json.loads((out / store.SCENE_LIST).read_text()))
    flipped, broken, intact = listed
    data_path = store.scene_paths(out, flipped)[0]
    raw = bytearray(data_path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data_path.write_bytes(bytes(raw))
    store.scene_paths(out, broken)[1].write_text("{not json")
    assert not verify_cache(out).ok
    intact_stamp = store.scene_paths(out, intact)[0].stat().st_mtime_ns
    resumed = CountingTeacher()
    summary = precompute(build_cfg(dataset_root, out), teacher=resumed)
    assert sorted(resumed.scenes) == sorted([flipped, broken])
    assert summary.repaired == 2 and summary.computed == 2 and summary.already_done == 1
    assert store.scene_paths(out, intact)[0].stat().st_mtime_ns == intact_stamp
    assert verify_cache(out).ok
    for scene in listed:
        assert store.scene_paths(out, scene)[0].read_bytes() == store.scene_paths(cache, scene)[0].read_bytes()


def test_two_shards_fill_disjoint_parts_and_verify_together(dataset_root, cache, tmp_path):
    out = tmp_path / "sharded"
    first, second = CountingTeacher(), CountingTeacher()
    precompute(build_cfg(dataset_root, out, shard=(0, 2)), teacher=first)
    partial = verify_cache(out)
    assert not partial.ok and sorted(partial.missing) == sorted(second_half := set(json.loads((out / store.SCENE_LIST).read_text())) - set(first.scenes))
    precompute(build_cfg(dataset_root, out, shard=(1, 2)), teacher=second)
    assert set(first.scenes).isdisjoint(second.scenes)
    assert set(second.scenes) == second_half
    assert sorted(first.scenes + second.scenes) == json.loads((out / store.SCENE_LIST).read_text())
    assert len(first.scenes) == 2 and len(second.scenes) == 1
    assert verify_cache(out).ok
    for scene in first.scenes + second.scenes:
        assert store.scene_paths(out, scene)[0].read_bytes() == store.scene_paths(cache, scene)[0].read_bytes()


def umeyama_residual(source: np.ndarray, target: np.ndarray) -> float:
    """Max residual of the best similarity fit target ~ s R source + t, relative to the spread."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    u, d, vt = np.linalg.svd(xt.T @ xs / len(source))
    sign = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / (xs**2).sum(1).mean()
    residual = np.linalg.norm(xt - scale * xs @ rotation.T, axis=1)
    return float(residual.max() / np.linalg.norm(xt, axis=1).mean())


def test_windowed_policy_chains_windows_into_one_frame(scenes, dataset_root, tmp_path):
    """With a clean synthetic teacher each window comes back in its own random similarity frame
    (the frame depends on the frame set); chaining by the overlap fit must put all frames of the
    scene into one frame: one similarity of the ground truth for all 16 frames."""
    clean = {"name": "synthetic", "seed": 3, "edge_blur_px": 0.0, "distortion": 0.0, "view_misalignment_deg": 0.0,
             "view_misalignment_shift": 0.0, "noise_std": 0.0}
    out = tmp_path / "windows"
    precompute(build_cfg(dataset_root, out, teacher=clean, frame_policy=FramePolicyCfg(kind="windows", window=6, overlap=2)))
    teacher = CacheTeacher(CacheTeacherCfg(path=out, teacher=clean))
    for scene, views in scenes.items():
        points = served(teacher, views, scene, list(range(FRAMES))).points[0].double().reshape(-1, 3).numpy()
        truth = views["pointmap"].double().reshape(-1, 3).numpy()
        assert umeyama_residual(truth, points) < 5e-3  # float16 storage
        # without chaining, two windows' raw outputs are far from one common similarity
        raw_a = SyntheticTeacher(SyntheticTeacherCfg(**{k: v for k, v in clean.items() if k != "name"}))(
            views["image"][None, :6], {"pointmap": views["pointmap"][None, :6], "scene": [scene], "index": torch.arange(6)[None]})
        raw_b = SyntheticTeacher(SyntheticTeacherCfg(**{k: v for k, v in clean.items() if k != "name"}))(
            views["image"][None, 4:10], {"pointmap": views["pointmap"][None, 4:10], "scene": [scene], "index": torch.arange(4, 10)[None]})
        mixed = torch.cat([raw_a.points[0, :4], raw_b.points[0, 2:]]).double().reshape(-1, 3).numpy()
        assert umeyama_residual(views["pointmap"][[0, 1, 2, 3, 6, 7, 8, 9]].double().reshape(-1, 3).numpy(), mixed) > 0.1


class PatchTeacher:
    """A deterministic image -> points teacher with patch size 6 (points = colour + pixel coords),
    to check the resize to the teacher's patch multiple."""

    patch_size = 6

    def __call__(self, images, context=None):
        batch, views, _, height, width = images.shape
        assert height % 6 == 0 and width % 6 == 0
        v, u = torch.meshgrid(torch.arange(height, dtype=images.dtype), torch.arange(width, dtype=images.dtype), indexing="ij")
        points = images.permute(0, 1, 3, 4, 2) + torch.stack([u, v, torch.zeros_like(u)], -1) / 10
        return TeacherOutput(points=points, confidence=None)


def test_teacher_resolution_is_the_patch_multiple(scenes, dataset_root, tmp_path):
    out = tmp_path / "patch"
    precompute(build_cfg(dataset_root, out), teacher=PatchTeacher())
    teacher = CacheTeacher(CacheTeacherCfg(path=out))
    assert teacher.resolution == (12, 12) and teacher.patch_size == 6
    scene = sorted(scenes)[1]
    resized = resize_images_for_teacher(scenes[scene]["image"], (12, 12))
    output = teacher(resized[[4, 0]][None], {"scene": [scene], "index": torch.tensor([[4, 0]])})
    assert output.confidence is None
    assert_float16_close(output.points, PatchTeacher()(resized[[4, 0]][None]).points)


def test_manifest_is_created_once_and_writes_are_atomic(tmp_path):
    """Concurrent shards race to create the manifest: exactly one creation wins, the loser sees
    the winner's content; atomic writes leave no temporary files behind."""
    target = tmp_path / "manifest.json"
    assert store.create_exclusive_json(target, {"writer": 1}) is True
    assert store.create_exclusive_json(target, {"writer": 2}) is False
    assert json.loads(target.read_text()) == {"writer": 1}
    store.atomic_write_bytes(tmp_path / "data.bin", b"abc")
    store.atomic_write_bytes(tmp_path / "data.bin", b"defg")
    assert (tmp_path / "data.bin").read_bytes() == b"defg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin", "manifest.json"]
    # scene keys with '/' (DL3DV) map to distinct, flat file names
    a, b = store.scene_paths(tmp_path, "dl3dv_1K/abc"), store.scene_paths(tmp_path, "dl3dv_1K_abc")
    assert a[0] != b[0] and a[0].parent == b[0].parent == tmp_path / store.SCENE_DIR

