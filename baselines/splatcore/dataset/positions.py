"""Where the training stream stands, so that a resumed run continues it exactly.

A run resumed from a step checkpoint (``checkpointing.load=<step .ckpt>``, ``resume: true``) must
see the same examples, in the same order and with the same random view choices, as the run that
was not interrupted. Hence, for the ``train`` stage only:

- the chunk order of pass (epoch) ``p`` is a permutation drawn from ``derive_seed(seed, p)``, the
  same in every data-loader worker (worker ``w`` of ``N`` then takes ``chunks[w::N]``), and the
  example order within a chunk from ``derive_seed(seed, p, chunk)``;
- each example's own randomness (view sampler, flip augmentation) is drawn from
  ``derive_seed(seed, p, worker, n)`` (``n``: the worker's n-th example of the pass), inside
  ``torch.random.fork_rng``: it never depends on, nor changes, the global generator;
- the view sampler's warm-up reads the global step at which the example will be *trained*
  (pass start step + batch position), not the step the loader happens to be at while prefetching.

:class:`ResumableLoader` is a Lightning-stateful ``DataLoader``: a checkpoint stores the pass and
the number of batches already trained in it, and a resumed loader skips exactly those batches
(``seed`` = ``data_loader.train.seed + rank``, or the run's torch seed when that is null). The
model's own randomness is re-seeded per step from ``derive_seed(seed, step)``
(:class:`StepSeed`), so nothing after the checkpoint depends on what ran before it (validation,
the prefetched batch).

Skipping re-reads the skipped examples (whether an example is skipped for its shape, FOV, ...
is only known by loading it); with several workers, skipping is exact while no worker has run
out of chunks before the resume point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch import Callback
from torch.utils.data import DataLoader


def derive_seed(*parts: int) -> int:
    """A 63-bit seed determined by the integers ``parts`` (order matters)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class TrainPosition:
    """The current pass of the training stream, in shared memory (workers read it at the start of
    each pass): ``[pass, batches to skip, global step of the pass's first batch]``."""

    def __init__(self) -> None:
        self._state = torch.zeros(3, dtype=torch.int64).share_memory_()

    def set(self, epoch: int, skip_batches: int, base_step: int) -> None:
        self._state.copy_(torch.tensor([epoch, skip_batches, base_step], dtype=torch.int64))

    def get(self) -> tuple[int, int, int]:
        epoch, skip, base = (int(v) for v in self._state.tolist())
        return epoch, skip, base


def skipped_batches(skip: int, worker: int, workers: int) -> int:
    """How many of the first ``skip`` batches of a pass came from ``worker`` (batches are taken
    from the workers in turn: batch ``j`` from worker ``j % workers``)."""
    return (skip - worker + workers - 1) // workers if skip > worker else 0


class ResumableLoader(DataLoader):
    """A training DataLoader whose position Lightning stores in step checkpoints and restores on
    resume (``state_dict`` / ``load_state_dict``; see the module docstring). ``progress()`` gives
    (pass, batches trained in it, global step) from the trainer."""

    def __init__(self, *args: Any, position: TrainPosition, progress: Callable[[], tuple[int, int, int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.position = position
        self.progress = progress
        self._pending: dict[str, int] | None = None

    def __iter__(self):
        epoch, _, step = self.progress()
        pending, self._pending = self._pending, None
        if pending is not None and pending["epoch"] == epoch:
            self.position.set(epoch, pending["batches"], pending["global_step"] - pending["batches"])
        else:
            self.position.set(epoch, 0, step)
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        epoch, batches, step = self.progress()
        return {"epoch": epoch, "batches": batches, "global_step": step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._pending = {key: int(state[key]) for key in ("epoch", "batches", "global_step")}


def trainer_progress(owner: Any) -> Callable[[], tuple[int, int, int]]:
    """(pass, batches trained in it, global step) of the trainer ``owner`` (a DataModule) is
    attached to; zeros before it is attached."""

    def progress() -> tuple[int, int, int]:
        trainer = getattr(owner, "trainer", None)
        if trainer is None:
            return 0, 0, 0
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return int(trainer.current_epoch), int(batches), int(trainer.global_step)

    return progress


class StepSeed(Callback):
    """Re-seeds torch's global generator before every training step from ``(seed, step)``."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        torch.manual_seed(derive_seed(self.seed, trainer.global_step))


__all__ = ["ResumableLoader", "StepSeed", "TrainPosition", "derive_seed", "skipped_batches", "trainer_progress"]
