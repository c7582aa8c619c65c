"""The ``bounded`` sampler (pixelSplat / MVSplat / DepthSplat): two context views ``gap`` frames
apart and targets between them.

Gap schedule: min/max gap go linearly from ``initial_*`` to their final values over
``warm_up_steps``; at test time both are the final max. The upper bound of the sampled gap is
``min(num_views - 1, max_gap)``; with ``mvsplat_min_gap_quirk`` (MVSplat's inherited bug) it is
``min(num_views - 1, min_gap)``, so the gap always equals the scheduled min gap. Test: left = 0,
targets = every frame left..right. Train/val: left uniform, ``num_target_views`` targets uniform
with replacement in [left + d, right - d], d = ``min_distance_to_context_views``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int64
from torch import Tensor

from .base import ViewSampler, linear_schedule, randint


class ViewSamplerBounded(ViewSampler):
    def context_gap_bounds(self) -> tuple[int, int]:
        """Scheduled (min_gap, max_gap) before clipping to the clip length."""
        cfg = self.cfg
        if self.stage == "test":
            return cfg.max_distance_between_context_views, cfg.max_distance_between_context_views
        step = self.global_step
        return (
            linear_schedule(cfg.initial_min_distance_between_context_views, cfg.min_distance_between_context_views, step, cfg.warm_up_steps),
            linear_schedule(cfg.initial_max_distance_between_context_views, cfg.max_distance_between_context_views, step, cfg.warm_up_steps),
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
        min_gap, max_gap = self.context_gap_bounds()
        if not self.cameras_are_circular:
            max_gap = min(num_views - 1, min_gap if cfg.mvsplat_min_gap_quirk else max_gap)
        min_gap = max(2 * cfg.min_distance_to_context_views, min_gap)
        if max_gap < min_gap:
            raise ValueError(
                f"Scene {scene!r} has {num_views} frames, too few for a context gap of at least {min_gap}."
            )
        gap = int(randint(min_gap, max_gap + 1, generator))
        left_range = num_views if self.cameras_are_circular else num_views - gap
        left = 0 if self.stage == "test" else int(randint(0, left_range, generator))
        right = left + gap
        if self.is_overfitting:
            left, right = 0, max_gap
        if self.stage == "test":
            target = torch.arange(left, right + 1, dtype=torch.int64)
        else:
            distance = cfg.min_distance_to_context_views
            target = randint(left + distance, right + 1 - distance, generator, (cfg.num_target_views,))
        if self.cameras_are_circular:
            target = target % num_views
            right = right % num_views
        return torch.tensor([left, right], dtype=torch.int64), target.to(torch.int64)

    @property
    def num_context_views(self) -> int:
        return 2

    @property
    def num_target_views(self) -> int:
        return self.cfg.num_target_views
