"""The pointmap-teacher protocol shared by every teacher (VGGT, DUSt3R, DA3, cache, synthetic).

A teacher maps context images to a world-space pointmap in *its own* frame and scale; PM-Loss
aligns it onto the prediction with a similarity transform, so the frame does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from jaxtyping import Float
from torch import Tensor


@dataclass
class TeacherOutput:
    """What a teacher returns.

    points: (B, V, H', W', 3) world-space pointmap (teacher frame), one point per pixel.
    confidence: (B, V, H', W') positive confidence, or None when the teacher has none.
    """

    points: Float[Tensor, "batch view height width 3"]
    confidence: Float[Tensor, "batch view height width"] | None = None


@runtime_checkable
class Teacher(Protocol):
    """A frozen pointmap model.

    ``patch_size`` is the multiple the input height and width must be rounded down to (14 for
    VGGT, 1 when any size works). ``__call__`` takes images (B, V, 3, H', W') in [0, 1] with H', W'
    multiples of ``patch_size`` and returns a :class:`TeacherOutput` at H' x W'. Resizing from and
    back to the prediction's resolution is PM-Loss's job, not the teacher's. The optional
    ``context`` argument carries per-example identifiers (scene names and frame indices) for
    teachers that look pointmaps up instead of computing them (the cache, the synthetic teacher).

    Optional (used by ``pmsplat teacher check``): ``output_frame(views) -> str`` says in which frame
    the points of a call with that many views are; ``pairs_for(views) -> int`` the pair passes.
    """

    patch_size: int

    def __call__(
        self,
        images: Float[Tensor, "batch view 3 height width"],
        context: dict | None = None,
    ) -> TeacherOutput: ...
