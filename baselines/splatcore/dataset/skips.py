"""Counting of skipped examples, shared across data-loader workers, reported at epoch end.

Upstream silently ``continue``s past some examples (too few frames, not in the evaluation index,
field of view too wide, wrong image size, bad DL3DV pose, undecodable DL3DV image). pmsplat skips
the same ones but counts every skip per reason in a shared-memory tensor, so the main process can
report the totals of all workers (see :class:`~splatcore.dataset.data_module.SkipReportCallback`).
"""

from __future__ import annotations

import torch

SKIP_REASONS: dict[str, str] = {
    "sampler": "too few frames for the view sampler",
    "not_in_index": "scene null or absent in the evaluation index",
    "fov": "field of view above dataset.max_fov",
    "bad_shape": "images of an unexpected size (dataset.skip_bad_shape)",
    "bad_pose": "non-finite or non-rotation camera pose",
    "undecodable_image": "image bytes that cannot be decoded",
    "small_baseline": "context baseline below dataset.baseline_epsilon (make_baseline_1)",
    "error_data": "listed in dataset.error_data_path",
}


MAX_WORKER_ROWS = 256


class SkipCounter:
    """Counts per reason. Row 0 is the main process, row 1 + k data-loader worker k, so that no
    two processes ever increment the same element (no lock needed)."""

    def __init__(self) -> None:
        self._counts = torch.zeros(MAX_WORKER_ROWS + 1, len(SKIP_REASONS), dtype=torch.int64).share_memory_()
        self._reasons = list(SKIP_REASONS)

    def add(self, reason: str, count: int = 1) -> None:
        if reason not in SKIP_REASONS:
            raise KeyError(f"Unknown skip reason {reason!r}; known: {self._reasons}.")
        info = torch.utils.data.get_worker_info()
        row = 0 if info is None else 1 + info.id % MAX_WORKER_ROWS
        self._counts[row, self._reasons.index(reason)] += count

    def counts(self) -> dict[str, int]:
        totals = self._counts.sum(dim=0).tolist()
        return {reason: int(value) for reason, value in zip(self._reasons, totals) if value}

    def total(self) -> int:
        return int(self._counts.sum())

    def reset(self) -> None:
        self._counts.zero_()

    def report(self, label: str = "dataset") -> str:
        """One line per reason, e.g. ``re10k/test: skipped 3 examples: 3 scene null ...``."""
        counts = self.counts()
        if not counts:
            return f"{label}: no examples skipped."
        details = "; ".join(f"{count} {SKIP_REASONS[reason]}" for reason, count in counts.items())
        return f"{label}: skipped {sum(counts.values())} examples ({details})."
