"""The DataModule: upstream data_loader keys, seeded workers, batched examples, skip reports;
config dataclasses from plain mappings (Hydra)."""

from __future__ import annotations

import logging

import pytest
import torch
from splatcore.dataset import (
    DataLoaderCfg,
    DataLoaderStageCfg,
    DataModule,
    DatasetCfg,
    SkipReportCallback,
    ViewSamplerBoundedCfg,
    ViewSamplerBoundedV2Cfg,
    dataset_cfg_from_dict,
)
from splatcore.errors import ConfigError

from testkit.chunks import hand_built_scene, write_root


@pytest.fixture
def root(tmp_path):
    scenes = [hand_built_scene(f"scene{i}", 8, seed=i, size=(16, 24))[0] for i in range(4)]
    write_root(tmp_path, [scenes[:2], scenes[2:]], "train")
    write_root(tmp_path, [scenes[:1] + [hand_built_scene("tiny", 2, seed=9, size=(16, 24))[0]]], "test")
    return tmp_path


def module(root, seed: int = 7, workers: int = 1) -> DataModule:
    dataset = DatasetCfg(
        name="re10k", roots=[root], image_shape=[16, 16], ori_image_shape=[16, 24],
        view_sampler=ViewSamplerBoundedCfg(num_target_views=2, min_distance_between_context_views=3,
                                           max_distance_between_context_views=5,
                                           initial_min_distance_between_context_views=3,
                                           initial_max_distance_between_context_views=5),
    )
    stage = DataLoaderStageCfg(num_workers=workers, persistent_workers=False, batch_size=2, seed=seed)
    return DataModule(dataset, DataLoaderCfg(train=stage, val=stage, test=DataLoaderStageCfg(0, False, 1, 1)))


def test_train_batches_are_seeded_and_batched(root):
    first = next(iter(module(root).train_dataloader()))
    again = next(iter(module(root).train_dataloader()))
    other = next(iter(module(root, seed=8).train_dataloader()))
    assert first["context"]["image"].shape == (2, 2, 3, 16, 16)
    assert first["target"]["index"].shape == (2, 2)
    assert first["scene"] == again["scene"] and torch.equal(first["target"]["index"], again["target"]["index"])
    assert torch.equal(first["context"]["extrinsics"], again["context"]["extrinsics"])
    assert (first["scene"] != other["scene"]) or not torch.equal(first["context"]["index"], other["context"]["index"]) or not torch.equal(first["target"]["index"], other["target"]["index"])


def test_validation_yields_one_example_and_skips_are_reported(root, caplog):
    data = module(root, workers=0)
    assert len(list(data.val_dataloader())) == 1
    test_items = list(data.test_dataloader())
    assert [item["scene"] for item in test_items] == [["scene0"]]
    assert data.skip_counters["test"].counts() == {"sampler": 1}
    callback = SkipReportCallback(data)
    with caplog.at_level(logging.WARNING):
        callback.on_test_epoch_end(None, None)
    assert "re10k/test: skipped 1 examples (1 too few frames for the view sampler)" in caplog.text
    assert data.skip_counters["test"].total() == 0


def test_skip_counts_from_workers_reach_the_main_process(root):
    data = module(root, workers=2)
    data.data_loader_cfg.test = DataLoaderStageCfg(num_workers=2, persistent_workers=False, batch_size=1, seed=3)
    assert len(list(data.test_dataloader())) == 1
    assert data.skip_counters["test"].counts() == {"sampler": 1}


def test_dataset_cfg_from_plain_mapping():
    cfg = dataset_cfg_from_dict({
        "name": "dl3dv", "roots": ["datasets/dl3dv"], "image_shape": [256, 448], "near": 1.0, "far": 200.0,
        "overfit_max_views": 148, "mix_tartanair": False,  # upstream keys without effect here
        "view_sampler": {"name": "boundedv2", "num_context_views": 6, "extra_views_sampling_strategy": "farthest_point",
                         "target_views_replace_sample": False},
    })
    assert isinstance(cfg.view_sampler, ViewSamplerBoundedV2Cfg)
    assert cfg.view_sampler.num_context_views == 6 and cfg.near_far == (1.0, 200.0)
    assert cfg.expected_native_shape == (270, 480) and cfg.skips_bad_pose
    assert DatasetCfg().near_far == (0.1, 1000.0)
    with pytest.raises(ConfigError, match="resize_filter"):
        DatasetCfg(resize_filter="cubic")
    with pytest.raises(ConfigError, match="Unknown view sampler"):
        dataset_cfg_from_dict({"view_sampler": {"name": "spiral"}})
