"""The published evaluation index files (../shared/eval-index): parsed exactly, and the
evaluation sampler over a dataset skips and counts null/absent scenes."""

from __future__ import annotations

import json

import pytest
import torch
from splatcore.dataset import ChunkedDataset, DatasetCfg, ViewSamplerEvaluationCfg, read_evaluation_index

from testkit.chunks import hand_built_scene, write_root


@pytest.mark.parametrize(
    "name, scenes, non_null",
    [
        ("evaluation_index_re10k.json", 7194, 6474),
        ("re10k_bound_aware.json", 2934, 2934),
        ("dl3dv_bound_aware.json", 140, 140),
        ("dl3dv_depthsplat_offical.json", 140, 140),
    ],
)
def test_published_indices_parse(shared_dir, name, scenes, non_null):
    path = shared_dir / "eval-index" / name
    index = read_evaluation_index(path)
    raw = json.loads(path.read_text())
    assert len(index) == scenes
    assert sum(entry is not None for entry in index.values()) == non_null
    for key, entry in list(index.items())[:200]:
        if entry is not None:
            assert list(entry.context) == raw[key]["context"] and list(entry.target) == raw[key]["target"]


def test_re10k_protocol_geometry(shared_dir):
    interpolation = read_evaluation_index(shared_dir / "eval-index" / "evaluation_index_re10k.json")
    extrapolation = read_evaluation_index(shared_dir / "eval-index" / "re10k_bound_aware.json")
    for entry in filter(None, interpolation.values()):
        assert len(entry.context) == 2 and all(entry.context[0] <= t <= entry.context[1] for t in entry.target)  # inclusive: 575 scenes reuse a context frame
    for entry in extrapolation.values():
        assert all(t < entry.context[0] or t > entry.context[1] for t in entry.target)


def test_evaluation_sampler_on_published_file_skips_and_counts(shared_dir, tmp_path):
    path = shared_dir / "eval-index" / "evaluation_index_re10k.json"
    raw = json.loads(path.read_text())
    valid = next(key for key, entry in raw.items() if entry is not None and max(entry["context"] + entry["target"]) < 150)
    null = next(key for key, entry in raw.items() if entry is None)
    frames = max(raw[valid]["context"] + raw[valid]["target"]) + 1
    examples = [hand_built_scene(valid, frames, size=(8, 8))[0], hand_built_scene(null, 3, size=(8, 8))[0],
                hand_built_scene("0000000000000000", 3, size=(8, 8))[0]]
    write_root(tmp_path, [examples])
    cfg = DatasetCfg(name="re10k", roots=[tmp_path], image_shape=[8, 8], ori_image_shape=[8, 8],
                     view_sampler=ViewSamplerEvaluationCfg(index_path=path))
    dataset = ChunkedDataset(cfg, "test")
    items = list(dataset)
    assert [item["scene"] for item in items] == [valid]
    assert items[0]["context"]["index"].tolist() == raw[valid]["context"]
    assert items[0]["target"]["index"].tolist() == raw[valid]["target"]
    assert dataset.skips.counts() == {"not_in_index": 2}


def test_dl3dv_unprefixed_test_keys_match_prefixed_bound_aware_index(shared_dir, tmp_path):
    path = shared_dir / "eval-index" / "dl3dv_bound_aware.json"
    raw = json.loads(path.read_text())
    key = next(iter(raw))
    assert key.startswith("dl3dv_")
    frames = max(raw[key]["context"] + raw[key]["target"]) + 1
    write_root(tmp_path, [[hand_built_scene(key[len("dl3dv_"):], frames, size=(8, 8))[0]]])
    cfg = DatasetCfg(name="dl3dv", roots=[tmp_path], image_shape=[8, 8], ori_image_shape=[8, 8],
                     view_sampler=ViewSamplerEvaluationCfg(index_path=path))
    items = list(ChunkedDataset(cfg, "test"))
    assert len(items) == 1 and items[0]["target"]["index"].tolist() == raw[key]["target"]
    assert items[0]["context"]["image"].dtype == torch.float32
