"""The global training step, shared with data-loader worker processes.

The step lives in a one-element int64 tensor in shared memory, so workers forked (or spawned:
shared tensors survive pickling through torch.multiprocessing) by the DataLoader read the value
the training process writes, and step-dependent sampler warm-ups advance inside workers.
"""

from __future__ import annotations

import torch


class StepTracker:
    def __init__(self) -> None:
        self._step = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set_step(self, step: int) -> None:
        self._step.fill_(int(step))

    def get_step(self) -> int:
        return int(self._step.item())
