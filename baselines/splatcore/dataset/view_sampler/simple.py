"""The ``all`` and ``arbitrary`` samplers."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int64
from torch import Tensor

from .base import ViewSampler, randint


class ViewSamplerAll(ViewSampler):
    """Context = target = every frame."""

    def sample(self, scene, extrinsics: Float[Tensor, "view 4 4"], intrinsics: Float[Tensor, "view 3 3"], generator=None) -> tuple[Int64[Tensor, " context_view"], Int64[Tensor, " target_view"]]:
        frames = torch.arange(extrinsics.shape[0], dtype=torch.int64)
        return frames, frames.clone()

    @property
    def num_context_views(self) -> int:
        return 0

    @property
    def num_target_views(self) -> int:
        return 0


class ViewSamplerArbitrary(ViewSampler):
    """Context and target frames uniform over the clip (with replacement), or the fixed
    ``context_views`` / ``target_views`` lists when given (their length must match the counts)."""

    def sample(self, scene, extrinsics: Float[Tensor, "view 4 4"], intrinsics: Float[Tensor, "view 3 3"], generator=None) -> tuple[Int64[Tensor, " context_view"], Int64[Tensor, " target_view"]]:
        cfg = self.cfg
        num_views = extrinsics.shape[0]
        context = randint(0, num_views, generator, (cfg.num_context_views,))
        if cfg.context_views is not None:
            context = torch.tensor(cfg.context_views)
        target = randint(0, num_views, generator, (cfg.num_target_views,))
        if cfg.target_views is not None:
            target = torch.tensor(cfg.target_views)
        if int(torch.cat([context, target]).max()) >= num_views:
            raise ValueError(f"Scene {scene!r} has {num_views} frames, fewer than the fixed view indices ask for.")
        return context.to(torch.int64), target.to(torch.int64)

    @property
    def num_context_views(self) -> int:
        return self.cfg.num_context_views

    @property
    def num_target_views(self) -> int:
        return self.cfg.num_target_views
