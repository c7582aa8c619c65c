"""Upstream chunk format: a hand-built chunk loads with the right c2w / normalised K / images, and
every kind of bad input gives a clear error naming file and scene, or a counted skip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from splatcore.dataset import (
    ChunkedDataset,
    DatasetCfg,
    ViewSamplerAllCfg,
    ViewSamplerArbitraryCfg,
    ViewSamplerEvaluationCfg,
    load_chunk,
)
from splatcore.errors import DataError

from testkit.chunks import HEIGHT, WIDTH, hand_built_scene, write_root


def config(root: Path, **overrides) -> DatasetCfg:
    values = dict(
        name="re10k",
        roots=[root],
        image_shape=[HEIGHT, WIDTH],
        ori_image_shape=[HEIGHT, WIDTH],
        near=0.5,
        far=100.0,
        view_sampler=ViewSamplerAllCfg(),
        augment=False,
    )
    values.update(overrides)
    return DatasetCfg(**values)


def test_hand_built_chunk_loads_with_c2w_and_normalised_intrinsics(tmp_path):
    example, c2ws, rows, decoded = hand_built_scene("5aca87f95a9412c6", 4)
    write_root(tmp_path, [[example]])
    items = list(ChunkedDataset(config(tmp_path), "test"))
    assert len(items) == 1
    item = items[0]
    assert item["scene"] == "5aca87f95a9412c6"
    context = item["context"]
    np.testing.assert_allclose(context["extrinsics"].numpy(), c2ws, atol=2e-6)
    for frame in range(4):
        k = context["intrinsics"][frame].numpy()
        np.testing.assert_allclose(k, [[rows[frame, 0], 0, rows[frame, 2]], [0, rows[frame, 1], rows[frame, 3]], [0, 0, 1]], atol=1e-7)
    np.testing.assert_array_equal(context["index"].numpy(), np.arange(4))
    assert context["index"].dtype == torch.int64
    np.testing.assert_array_equal((context["image"].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8), decoded)
    assert context["image"].dtype == torch.float32 and context["image"].shape == (4, 3, HEIGHT, WIDTH)
    np.testing.assert_array_equal(context["near"].numpy(), [0.5] * 4)
    np.testing.assert_array_equal(context["far"].numpy(), [100.0] * 4)
    # camera centre of the in-memory c2w = -R^T t of the stored w2c
    w2c = rows[1, 6:].reshape(3, 4)
    np.testing.assert_allclose(context["extrinsics"][1, :3, 3].numpy(), -w2c[:, :3].T @ w2c[:, 3], atol=2e-6)


def test_default_collate_gives_batched_example(tmp_path):
    examples = [hand_built_scene(f"scene{i}", 5, seed=i)[0] for i in range(3)]
    write_root(tmp_path, [examples[:2], examples[2:]])
    cfg = config(tmp_path, view_sampler=ViewSamplerArbitraryCfg(num_context_views=2, num_target_views=3))
    loader = torch.utils.data.DataLoader(ChunkedDataset(cfg, "test"), batch_size=3)
    batch = next(iter(loader))
    assert batch["context"]["extrinsics"].shape == (3, 2, 4, 4)
    assert batch["target"]["image"].shape == (3, 3, 3, HEIGHT, WIDTH)
    assert batch["target"]["near"].shape == (3, 3)
    assert sorted(batch["scene"]) == ["scene0", "scene1", "scene2"]


def test_crop_shim_applied_in_loader(tmp_path):
    example, _, rows, _ = hand_built_scene("s", 2)
    write_root(tmp_path, [[example]])
    item = next(iter(ChunkedDataset(config(tmp_path, image_shape=[32, 32]), "test")))
    # 36x64 -> scale 32/36 -> 32 x round(56.9) = 57 -> centre crop 32x32
    assert item["context"]["image"].shape == (2, 3, 32, 32)
    np.testing.assert_allclose(item["context"]["intrinsics"][0, 0, 0].item(), rows[0, 0] * 57 / 32, rtol=1e-6)
    np.testing.assert_allclose(item["context"]["intrinsics"][0, 1, 1].item(), rows[0, 1] * 32 / 32, rtol=1e-6)
    np.testing.assert_allclose(item["context"]["intrinsics"][0, 0, 2].item(), rows[0, 2], rtol=1e-6)


def test_multiple_roots_and_duplicate_keys(tmp_path):
    write_root(tmp_path / "a", [[hand_built_scene("one", 3)[0]]])
    write_root(tmp_path / "b", [[hand_built_scene("two", 3, seed=1)[0]]])
    cfg = config(tmp_path / "a", roots=[tmp_path / "a", tmp_path / "b"])
    assert sorted(item["scene"] for item in ChunkedDataset(cfg, "test")) == ["one", "two"]
    write_root(tmp_path / "c", [[hand_built_scene("one", 3)[0]]])
    with pytest.raises(DataError, match="more than one dataset root"):
        ChunkedDataset(config(tmp_path / "a", roots=[tmp_path / "a", tmp_path / "c"]), "test")


# ----------------------------------------------------------------------------- bad input


def test_missing_root_and_missing_index(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ChunkedDataset(config(tmp_path / "nowhere"), "test")
    (tmp_path / "test").mkdir()
    torch.save([], tmp_path / "test" / "000000.torch")
    with pytest.raises(DataError, match="index.json"):
        ChunkedDataset(config(tmp_path), "test")
    with pytest.raises(DataError, match="no train/ folder"):
        ChunkedDataset(config(tmp_path), "train")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not_a_list"])
def test_corrupt_or_truncated_chunk_names_the_file(tmp_path, damage):
    write_root(tmp_path, [[hand_built_scene("s", 3)[0]]])
    path = tmp_path / "test" / "000000.torch"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"this is not a torch file" * 10)
    else:
        torch.save({"key": "s"}, path)
    with pytest.raises(DataError, match="000000.torch"):
        list(ChunkedDataset(config(tmp_path), "test"))


def test_camera_vector_of_wrong_length(tmp_path):
    example = hand_built_scene("bad_cam", 3)[0]
    example["cameras"] = example["cameras"][:, :17]
    write_root(tmp_path, [[example]])
    with pytest.raises(DataError, match=r"\(N, 18\).*000000.torch.*bad_cam"):
        load_chunk(tmp_path / "test" / "000000.torch")


def test_images_and_cameras_count_mismatch(tmp_path):
    example = hand_built_scene("short", 3)[0]
    example["images"] = example["images"][:2]
    write_root(tmp_path, [[example]])
    with pytest.raises(DataError, match="2 images but 3 camera vectors.*short"):
        list(ChunkedDataset(config(tmp_path), "test"))


@pytest.mark.parametrize("kind", ["nan", "scaled", "reflection"])
def test_bad_pose_raises_for_re10k_and_is_counted_for_dl3dv(tmp_path, kind):
    example = hand_built_scene("badpose", 3)[0]
    if kind == "nan":
        example["cameras"][1, 9] = float("nan")
    elif kind == "scaled":
        example["cameras"][1, 6:] *= 1.5
    else:
        example["cameras"][1, 6:9] *= -1  # one row of R negated: det -1
    good = hand_built_scene("good", 3, seed=1)[0]
    write_root(tmp_path, [[example, good]])
    with pytest.raises(DataError, match="non-finite pose.*badpose"):
        list(ChunkedDataset(config(tmp_path), "test"))
    dataset = ChunkedDataset(config(tmp_path, name="dl3dv"), "test")
    assert [item["scene"] for item in dataset] == ["good"]
    assert dataset.skips.counts() == {"bad_pose": 1}


def test_undecodable_image_bytes(tmp_path):
    example = hand_built_scene("broken_jpeg", 3)[0]
    example["images"][2] = torch.tensor(list(b"\xff\xd8not really a jpeg"), dtype=torch.uint8)
    write_root(tmp_path, [[example, hand_built_scene("fine", 3, seed=2)[0]]])
    with pytest.raises(DataError, match="Cannot decode.*broken_jpeg.*frame 2"):
        list(ChunkedDataset(config(tmp_path), "test"))
    dataset = ChunkedDataset(config(tmp_path, name="dl3dv"), "test")
    assert [item["scene"] for item in dataset] == ["fine"]
    assert dataset.skips.counts() == {"undecodable_image": 1}


def test_unexpected_image_size_skipped_and_counted_or_raised(tmp_path):
    small = hand_built_scene("small", 3, size=(24, 40))[0]
    write_root(tmp_path, [[small, hand_built_scene("right", 3, seed=3)[0]]])
    dataset = ChunkedDataset(config(tmp_path), "test")
    assert [item["scene"] for item in dataset] == ["right"]
    assert dataset.skips.counts() == {"bad_shape": 1}
    assert "1 images of an unexpected size" in dataset.skips.report()
    with pytest.raises(DataError, match=r"\(24, 40\).*small"):
        list(ChunkedDataset(config(tmp_path, skip_bad_shape=False), "test"))


def test_wide_fov_and_too_few_frames_are_counted(tmp_path):
    wide = hand_built_scene("wide", 4)[0]
    wide["cameras"][:, 0] = 0.3  # fx/W = 0.3 -> horizontal FOV 2 atan(0.5/0.3) = 118 deg
    short = hand_built_scene("short", 2, seed=4)[0]
    write_root(tmp_path, [[wide, short, hand_built_scene("ok", 4, seed=5)[0]]])
    cfg = config(tmp_path, view_sampler=ViewSamplerArbitraryCfg(num_context_views=2, num_target_views=1, context_views=[0, 3], target_views=[1]))
    dataset = ChunkedDataset(cfg, "test")
    assert [item["scene"] for item in dataset] == ["ok"]
    assert dataset.skips.counts() == {"fov": 1, "sampler": 1}
    assert math.isclose(2 * math.degrees(math.atan(0.5 / 0.3)), 118.07, abs_tol=0.01)


def test_depth_requested_but_absent(tmp_path):
    write_root(tmp_path, [[hand_built_scene("nodepth", 3)[0]]])
    with pytest.raises(DataError, match="no 'depths'.*nodepth.*load_depth=false"):
        list(ChunkedDataset(config(tmp_path, load_depth=True), "test"))


def test_evaluation_index_beyond_clip_is_an_error(tmp_path):
    write_root(tmp_path, [[hand_built_scene("clip", 5)[0]]])
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"clip": {"context": [0, 4], "target": [9]}}))
    cfg = config(tmp_path, view_sampler=ViewSamplerEvaluationCfg(index_path=index))
    with pytest.raises(DataError, match="frame 9 but the scene has 5 frames.*clip"):
        list(ChunkedDataset(cfg, "test"))


def test_make_baseline_1_rescales_translations_and_bounds(tmp_path):
    example, c2ws, _, _ = hand_built_scene("baseline", 4)
    write_root(tmp_path, [[example]])
    cfg = config(tmp_path, make_baseline_1=True, view_sampler=ViewSamplerArbitraryCfg(num_context_views=2, num_target_views=1, context_views=[0, 3], target_views=[1]))
    item = next(iter(ChunkedDataset(cfg, "test")))
    scale = np.linalg.norm(c2ws[0, :3, 3] - c2ws[3, :3, 3])
    centres = item["context"]["extrinsics"][:, :3, 3].numpy()
    np.testing.assert_allclose(np.linalg.norm(centres[0] - centres[1]), 1.0, rtol=1e-5)
    np.testing.assert_allclose(item["target"]["extrinsics"][0, :3, 3].numpy(), c2ws[1, :3, 3] / scale, rtol=1e-5)
    np.testing.assert_allclose(item["context"]["near"].numpy(), 0.5 / scale, rtol=1e-5)
    np.testing.assert_allclose(item["context"]["extrinsics"][:, :3, :3].numpy(), c2ws[[0, 3], :3, :3], atol=2e-6)
