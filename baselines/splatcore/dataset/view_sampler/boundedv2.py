"""DepthSplat's ``boundedv2`` sampler: ``bounded`` plus

- separate warm-ups of the context gap (``context_gap_warm_up_steps``, falling back to
  ``warm_up_steps``) and of the target margin (``target_gap_warm_up_steps`` from
  ``initial_max_distance_to_context_views`` to ``max_distance_to_context_views``);
- targets drawn from [left + d - m, right - d + m] clipped to the clip, where m is the margin
  (targets up to m frames *outside* the context span) and d = ``min_distance_to_context_views``;
  without replacement when ``target_views_replace_sample`` is false;
- more than two context views: the extra views are ``random`` distinct interior frames,
  ``equal``ly spaced frames, or ``farthest_point`` sampling of camera centres in [left, right]
  (starting from the centre farthest from the barycentre; left/right become the first/last pick);
- a random number of context views in [min_views, max_views] (dataset keys, not at test time),
  with both gaps divided by max(max_views // n, 1).

The context indices are returned as [left, right, extra...] (``random``), ascending (``equal``) or
in picking order (``farthest_point``); the dataset sorts them when ``sort_context_index`` is set.
Test: gap = max, left = 0, targets = every frame in [left - m, right + m] clipped.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int64
from torch import Tensor

from .base import ViewSampler, linear_schedule, randint
from .step_tracker import StepTracker


class ViewSamplerBoundedV2(ViewSampler):
    def __init__(
        self,
        cfg,
        stage: str,
        is_overfitting: bool = False,
        cameras_are_circular: bool = False,
        step_tracker: StepTracker | None = None,
        min_views: int = 0,
        max_views: int = 0,
    ) -> None:
        super().__init__(cfg, stage, is_overfitting, cameras_are_circular, step_tracker)
        self.min_views = min_views
        self.max_views = max_views

    def _context_count(self, generator: torch.Generator | None) -> int:
        if self.stage != "test" and self.min_views > 0 and self.max_views > 0:
            return int(randint(self.min_views, self.max_views + 1, generator))
        return self.cfg.num_context_views

    def _gap_bounds(self, count: int) -> tuple[int, int]:
        cfg = self.cfg
        if self.stage == "test":
            return cfg.max_distance_between_context_views, cfg.max_distance_between_context_views
        step = self.global_step
        warm_up = cfg.context_gap_warm_up_steps or cfg.warm_up_steps
        min_gap = linear_schedule(cfg.initial_min_distance_between_context_views, cfg.min_distance_between_context_views, step, warm_up)
        max_gap = linear_schedule(cfg.initial_max_distance_between_context_views, cfg.max_distance_between_context_views, step, warm_up)
        if self.min_views > 0 and self.max_views > 0:
            factor = max(self.max_views // count, 1)
            min_gap, max_gap = max(min_gap // factor, 1), max(max_gap // factor, 1)
        return min_gap, max_gap

    def _margin(self) -> int:
        cfg = self.cfg
        if self.stage == "test":
            return cfg.max_distance_to_context_views
        return linear_schedule(
            cfg.initial_max_distance_to_context_views, cfg.max_distance_to_context_views, self.global_step, cfg.target_gap_warm_up_steps
        )

    def sample(
        self,
        scene: str,
        extrinsics: Float[Tensor, "view 4 4"],
        intrinsics: Float[Tensor, "view 3 3"],
        generator: torch.Generator | None = None,
    ) -> tuple[Int64[Tensor, " context_view"], Int64[Tensor, " target_view"]]:
        cfg = self.cfg
        num_views = extrinsics.shape[0]
        count = self._context_count(generator)
        min_gap, max_gap = self._gap_bounds(count)
        if not self.cameras_are_circular:
            max_gap = min(num_views - 1, max_gap)
        min_gap = max(2 * cfg.min_distance_to_context_views, min_gap, count - 1)
        if max_gap < min_gap:
            raise ValueError(
                f"Scene {scene!r} has {num_views} frames, too few for {count} context views with a gap of at least {min_gap}."
            )
        gap = int(randint(min_gap, max_gap + 1, generator))
        left_range = num_views if self.cameras_are_circular else num_views - gap
        left = 0 if self.stage == "test" else int(randint(0, left_range, generator))
        right = left + gap
        if self.is_overfitting:
            left, right = 0, max_gap
        context = self._context_views(left, right, count, extrinsics, generator)
        if cfg.extra_views_sampling_strategy == "farthest_point" and count > 2:
            left, right = int(context.min()), int(context.max())
        target = self._target_views(left, right, num_views, scene, generator)
        if self.cameras_are_circular:
            context, target = context % num_views, target % num_views
        return context, target

    def _context_views(self, left: int, right: int, count: int, extrinsics: Tensor, generator) -> Tensor:
        strategy = self.cfg.extra_views_sampling_strategy
        if count <= 2:
            return torch.tensor([left, right], dtype=torch.int64)
        if strategy == "random":
            interior = torch.randperm(right - left - 1, generator=generator)[: count - 2] + left + 1
            return torch.cat([torch.tensor([left, right]), interior]).to(torch.int64)
        if strategy == "equal":
            return torch.linspace(left, right, count, dtype=torch.float64).round().to(torch.int64)
        if strategy == "farthest_point":
            return farthest_point_views(extrinsics[left : right + 1, :3, 3].double(), count) + left
        raise ValueError(f"Unknown extra_views_sampling_strategy {strategy!r} (random, farthest_point, equal).")

    def _target_views(self, left: int, right: int, num_views: int, scene: str, generator) -> Tensor:
        cfg = self.cfg
        margin, distance = self._margin(), cfg.min_distance_to_context_views
        low, high = left + distance - margin, right - distance + margin
        if not self.cameras_are_circular:
            low, high = max(low, 0), min(high, num_views - 1)
        if self.stage == "test":
            return torch.arange(low, high + 1, dtype=torch.int64)
        if cfg.target_views_replace_sample:
            return randint(low, high + 1, generator, (cfg.num_target_views,)).to(torch.int64)
        if high - low + 1 < cfg.num_target_views:
            raise ValueError(
                f"Scene {scene!r}: only {high - low + 1} candidate target frames for {cfg.num_target_views} targets without replacement."
            )
        return (torch.randperm(high - low + 1, generator=generator)[: cfg.num_target_views] + low).to(torch.int64)

    @property
    def num_context_views(self) -> int:
        return self.cfg.num_context_views

    @property
    def num_target_views(self) -> int:
        return self.cfg.num_target_views


def farthest_point_views(centres: Float[Tensor, "frame 3"], count: int) -> Int64[Tensor, " pick"]:
    """Farthest-point sampling of ``count`` frames by camera centre, starting from the centre
    farthest from the barycentre. Returns positions into ``centres`` in picking order."""
    if count > centres.shape[0]:
        raise ValueError(f"Cannot pick {count} distinct views out of {centres.shape[0]} frames.")
    first = int((centres - centres.mean(dim=0)).norm(dim=1).argmax())
    picks = [first]
    distance = (centres - centres[first]).norm(dim=1)
    for _ in range(count - 1):
        distance[picks] = -1
        following = int(distance.argmax())
        picks.append(following)
        distance = torch.minimum(distance, (centres - centres[following]).norm(dim=1))
    return torch.tensor(picks, dtype=torch.int64)
