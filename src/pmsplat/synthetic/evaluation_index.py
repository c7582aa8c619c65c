"""Evaluation indices of the synthetic benchmark for the two protocols.

- interpolation (like ``evaluation_index_re10k.json``): two context frames ``gap`` apart and
  ``interpolation_targets`` distinct targets strictly between them;
- extrapolation (like ``re10k_bound_aware.json``): two context frames ``extrapolation_gap`` apart
  and ``extrapolation_targets_per_side`` targets drawn from the ``extrapolation_window`` frames
  just before the first and just after the second context frame (all outside the span), sorted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from splatcore.dataset import IndexEntry


@dataclass
class EvaluationIndexLayout:
    interpolation_gap: tuple[int, int] = (12, 24)
    interpolation_targets: int = 3
    extrapolation_gap: int = 16
    extrapolation_window: int = 10
    extrapolation_targets_per_side: int = 5

    def minimum_frames(self) -> int:
        return max(self.interpolation_gap[0] + 1, self.extrapolation_gap + 2 * self.extrapolation_window + 1)


def interpolation_entry(rng: np.random.Generator, frames: int, layout: EvaluationIndexLayout) -> IndexEntry:
    gap = int(rng.integers(layout.interpolation_gap[0], min(layout.interpolation_gap[1], frames - 1) + 1))
    if gap - 1 < layout.interpolation_targets:
        raise ValueError(f"A gap of {gap} frames leaves fewer than {layout.interpolation_targets} frames between the context views.")
    left = int(rng.integers(0, frames - gap))
    between = np.arange(left + 1, left + gap)
    targets = np.sort(rng.choice(between, layout.interpolation_targets, replace=False))
    return IndexEntry((left, left + gap), tuple(int(t) for t in targets))


def extrapolation_entry(rng: np.random.Generator, frames: int, layout: EvaluationIndexLayout) -> IndexEntry:
    window, gap, per_side = layout.extrapolation_window, layout.extrapolation_gap, layout.extrapolation_targets_per_side
    if per_side > window:
        raise ValueError(f"extrapolation_targets_per_side ({per_side}) exceeds extrapolation_window ({window}).")
    left = int(rng.integers(window, frames - window - gap))
    right = left + gap
    before = rng.choice(np.arange(left - window, left), per_side, replace=False)
    after = rng.choice(np.arange(right + 1, right + window + 1), per_side, replace=False)
    targets = np.sort(np.concatenate([before, after]))
    return IndexEntry((left, right), tuple(int(t) for t in targets))
