"""View samplers honour their parameters; the step tracker reaches data-loader workers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from splatcore.dataset import (
    StepTracker,
    ViewSamplerAllCfg,
    ViewSamplerArbitraryCfg,
    ViewSamplerBoundedCfg,
    ViewSamplerBoundedV2Cfg,
    ViewSamplerEvaluationCfg,
    get_view_sampler,
)
from splatcore.dataset.view_sampler import SceneNotInIndex, farthest_point_views, linear_schedule


def cameras(frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    extrinsics = torch.eye(4).repeat(frames, 1, 1)
    extrinsics[:, :3, 3] = torch.randn(frames, 3, generator=generator)
    return extrinsics, torch.eye(3).repeat(frames, 1, 1)


def draws(sampler, frames: int, count: int = 300, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    extrinsics, intrinsics = cameras(frames)
    return [sampler.sample("scene", extrinsics, intrinsics, generator) for _ in range(count)]


def bounded(**overrides) -> ViewSamplerBoundedCfg:
    values = dict(num_target_views=4, min_distance_between_context_views=5, max_distance_between_context_views=12,
                  initial_min_distance_between_context_views=5, initial_max_distance_between_context_views=12)
    values.update(overrides)
    return ViewSamplerBoundedCfg(**values)


def test_bounded_train_gap_and_targets():
    sampler = get_view_sampler(bounded(min_distance_to_context_views=1), "train")
    gaps = set()
    for context, target in draws(sampler, 40):
        left, right = context.tolist()
        gaps.add(right - left)
        assert 5 <= right - left <= 12 and 0 <= left and right < 40
        assert target.shape == (4,) and target.dtype == torch.int64
        assert ((target >= left + 1) & (target <= right - 1)).all()
    assert gaps == set(range(5, 13))


def test_bounded_mvsplat_min_gap_quirk():
    sampler = get_view_sampler(bounded(mvsplat_min_gap_quirk=True), "train")
    assert {int(c[1] - c[0]) for c, _ in draws(sampler, 40)} == {5}


def test_bounded_test_mode():
    sampler = get_view_sampler(bounded(), "test")
    for context, target in draws(sampler, 40, count=5):
        assert context.tolist() == [0, 12]
        assert target.tolist() == list(range(0, 13))


def test_bounded_too_few_frames_raises_value_error():
    sampler = get_view_sampler(bounded(), "train")
    with pytest.raises(ValueError, match="too few"):
        draws(sampler, 5, count=1)


def test_bounded_warm_up_follows_step_tracker():
    tracker = StepTracker()
    cfg = bounded(warm_up_steps=100, initial_min_distance_between_context_views=2, initial_max_distance_between_context_views=3)
    sampler = get_view_sampler(cfg, "train", step_tracker=tracker)
    assert {int(c[1] - c[0]) for c, _ in draws(sampler, 40)} == {2, 3}
    tracker.set_step(50)  # min 2 + int(3 * 0.5) = 3, max 3 + int(9 * 0.5) = 7
    assert sampler.context_gap_bounds() == (3, 7)
    tracker.set_step(1000)
    assert {int(c[1] - c[0]) for c, _ in draws(sampler, 40)} == set(range(5, 13))
    assert linear_schedule(25, 45, 0, 150_000) == 25 and linear_schedule(25, 45, 75_000, 150_000) == 35
    assert linear_schedule(25, 45, 10**9, 150_000) == 45


def boundedv2(**overrides) -> ViewSamplerBoundedV2Cfg:
    values = dict(num_target_views=6, min_distance_between_context_views=8, max_distance_between_context_views=12,
                  initial_min_distance_between_context_views=8, initial_max_distance_between_context_views=12)
    values.update(overrides)
    return ViewSamplerBoundedV2Cfg(**values)


def test_boundedv2_targets_within_margin_outside_span():
    sampler = get_view_sampler(boundedv2(max_distance_to_context_views=3, target_views_replace_sample=False), "train")
    outside = 0
    for context, target in draws(sampler, 30):
        left, right = context.tolist()
        assert 8 <= right - left <= 12
        low, high = max(left - 3, 0), min(right + 3, 29)
        assert ((target >= low) & (target <= high)).all()
        assert len(set(target.tolist())) == 6  # without replacement
        outside += int(((target < left) | (target > right)).sum())
    assert outside > 0


def test_boundedv2_test_mode_and_margin_warm_up():
    sampler = get_view_sampler(boundedv2(max_distance_to_context_views=3), "test")
    context, target = draws(sampler, 30, count=1)[0]
    assert context.tolist() == [0, 12] and target.tolist() == list(range(0, 16))
    tracker = StepTracker()
    cfg = boundedv2(max_distance_to_context_views=4, initial_max_distance_to_context_views=0, target_gap_warm_up_steps=10)
    sampler = get_view_sampler(cfg, "train", step_tracker=tracker)
    assert sampler._margin() == 0
    tracker.set_step(5)
    assert sampler._margin() == 2


@pytest.mark.parametrize("strategy", ["random", "equal", "farthest_point"])
def test_boundedv2_extra_context_views(strategy):
    sampler = get_view_sampler(boundedv2(num_context_views=4, extra_views_sampling_strategy=strategy), "train")
    extrinsics, intrinsics = cameras(30)
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        context, target = sampler.sample("s", extrinsics, intrinsics, generator)
        assert context.shape == (4,) and len(set(context.tolist())) == 4
        if strategy != "farthest_point":
            assert 8 <= int(context.max() - context.min()) <= 12
        if strategy == "equal":
            assert context.tolist() == sorted(context.tolist())
            gaps = np.diff(context.numpy())
            assert gaps.max() - gaps.min() <= 1
        assert ((target >= context.min()) & (target <= context.max())).all()


def test_farthest_point_views_matches_brute_force():
    centres = torch.randn(15, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    picks = farthest_point_views(centres, 5).tolist()
    expected = [int(np.argmax(np.linalg.norm(centres.numpy() - centres.numpy().mean(0), axis=1)))]
    while len(expected) < 5:
        distance = [min(np.linalg.norm(centres.numpy()[i] - centres.numpy()[j]) for j in expected) if i not in expected else -1 for i in range(15)]
        expected.append(int(np.argmax(distance)))
    assert picks == expected


def test_boundedv2_random_view_count_and_gap_shrink():
    sampler = get_view_sampler(boundedv2(num_context_views=6, min_distance_between_context_views=12, max_distance_between_context_views=24,
                                         initial_min_distance_between_context_views=12, initial_max_distance_between_context_views=24), "train", min_views=2, max_views=6)
    counts = set()
    for context, _ in draws(sampler, 60, count=200):
        counts.add(len(context))
        gap = int(context.max() - context.min())
        factor = max(6 // len(context), 1)
        assert max(12 // factor, len(context) - 1) <= gap <= 24 // factor
    assert counts == {2, 3, 4, 5, 6}
    test_sampler = get_view_sampler(boundedv2(num_context_views=3), "test", min_views=2, max_views=6)
    assert len(draws(test_sampler, 60, count=1)[0][0]) == 3


def test_evaluation_sampler_reads_index_and_matches_dl3dv_prefix(tmp_path):
    path = tmp_path / "dl3dv_index.json"
    path.write_text(json.dumps({"dl3dv_abc": {"context": [50, 70], "target": [40, 80]}, "nullscene": None}))
    sampler = get_view_sampler(ViewSamplerEvaluationCfg(index_path=path), "test")
    extrinsics, intrinsics = cameras(100)
    for key in ("abc", "dl3dv_abc"):
        context, target = sampler.sample(key, extrinsics, intrinsics)
        assert context.tolist() == [50, 70] and target.tolist() == [40, 80]
    with pytest.raises(SceneNotInIndex):
        sampler.sample("nullscene", extrinsics, intrinsics)
    with pytest.raises(SceneNotInIndex):
        sampler.sample("absent", extrinsics, intrinsics)
    strict = get_view_sampler(ViewSamplerEvaluationCfg(index_path=path, match_dl3dv_prefix=False), "test")
    with pytest.raises(SceneNotInIndex):
        strict.sample("abc", extrinsics, intrinsics)
    assert sampler.null_scenes == 1


def test_all_and_arbitrary():
    extrinsics, intrinsics = cameras(7)
    context, target = get_view_sampler(ViewSamplerAllCfg(), "train").sample("s", extrinsics, intrinsics)
    assert context.tolist() == target.tolist() == list(range(7))
    sampler = get_view_sampler(ViewSamplerArbitraryCfg(num_context_views=3, num_target_views=5), "train")
    for context, target in draws(sampler, 7, count=50):
        assert context.shape == (3,) and target.shape == (5,) and int(torch.cat([context, target]).max()) < 7
    fixed = get_view_sampler(ViewSamplerArbitraryCfg(num_context_views=2, num_target_views=1, context_views=[1, 5], target_views=[3]), "train")
    context, target = fixed.sample("s", extrinsics, intrinsics)
    assert context.tolist() == [1, 5] and target.tolist() == [3]


class _StepDataset(torch.utils.data.IterableDataset):
    def __init__(self, tracker: StepTracker) -> None:
        self.tracker = tracker

    def __iter__(self):
        yield torch.tensor(self.tracker.get_step())


def test_step_tracker_is_shared_with_persistent_workers():
    tracker = StepTracker()
    loader = torch.utils.data.DataLoader(_StepDataset(tracker), batch_size=None, num_workers=1, persistent_workers=True)
    assert [int(x) for x in loader] == [0]
    tracker.set_step(1234)  # written after the worker process started
    assert [int(x) for x in loader] == [1234]
