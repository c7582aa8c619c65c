"""Base class of the view samplers: ``sample(scene, extrinsics, intrinsics) -> (context, target)``
index tensors (int64 positions in the scene's frame list). A sampler raises ``ValueError`` when the
scene cannot provide the requested views; the dataset then skips (and counts) the scene."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int64
from torch import Tensor

from .step_tracker import StepTracker


class ViewSampler:
    def __init__(
        self,
        cfg,
        stage: str,
        is_overfitting: bool = False,
        cameras_are_circular: bool = False,
        step_tracker: StepTracker | None = None,
    ) -> None:
        self.cfg = cfg
        self.stage = stage
        self.is_overfitting = is_overfitting
        self.cameras_are_circular = cameras_are_circular
        self.step_tracker = step_tracker

    @property
    def global_step(self) -> int:
        return 0 if self.step_tracker is None else self.step_tracker.get_step()

    def sample(
        self,
        scene: str,
        extrinsics: Float[Tensor, "view 4 4"],
        intrinsics: Float[Tensor, "view 3 3"],
        generator: torch.Generator | None = None,
    ) -> tuple[Int64[Tensor, " context_view"], Int64[Tensor, " target_view"]]:
        raise NotImplementedError

    @property
    def num_context_views(self) -> int:
        raise NotImplementedError

    @property
    def num_target_views(self) -> int:
        raise NotImplementedError


def randint(low: int, high: int, generator: torch.Generator | None, size: tuple = ()) -> Tensor:
    """Uniform integers in [low, high) (torch.randint with an optional generator)."""
    return torch.randint(low, high, size, generator=generator)


def linear_schedule(initial: int, final: int, step: int, warm_up_steps: int) -> int:
    """Warm-up: ``initial`` at step 0, moving linearly (integer part of the increment) to ``final``
    at ``warm_up_steps`` and staying there. With ``warm_up_steps <= 0`` returns ``final``."""
    if warm_up_steps <= 0:
        return final
    fraction = step / warm_up_steps
    value = initial + int((final - initial) * fraction)
    return min(value, final) if final >= initial else max(value, final)
