"""The Lightning DataModule with the upstream ``data_loader.{train,val,test}`` keys.

Each stage's DataLoader gets a ``torch.Generator`` seeded with ``seed + global_rank`` (so worker
base seeds, and through them chunk shuffling and view sampling, are reproducible per rank) and a
worker initialiser that seeds Python's and NumPy's generators from the worker's torch seed.
The training loader is a :class:`~splatcore.dataset.positions.ResumableLoader`: its order
derives from the seed and the position, and a resumed run continues it where the step
checkpoint was written. Validation yields one example per validation run (upstream's ``ValidationWrapper``).
``dataset_shim`` (upstream hook) maps each unbatched example before collation.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from lightning.pytorch import Callback, LightningDataModule
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .config import DataLoaderCfg, DataLoaderStageCfg, DatasetCfg
from .dataset import ChunkedDataset, get_dataset
from .positions import ResumableLoader, TrainPosition, trainer_progress
from .skips import SkipCounter
from .view_sampler import StepTracker

log = logging.getLogger(__name__)


def worker_init_fn(worker_id: int) -> None:
    """Seed Python and NumPy in a data-loader worker from its torch seed (base seed + id)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class ValidationWrapper(IterableDataset):
    """Yields ``length`` examples per pass, continuing the wrapped iterator across passes."""

    def __init__(self, dataset: Dataset, length: int) -> None:
        super().__init__()
        self.dataset = dataset
        self.length = length
        self._iterator: Iterator | None = None

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        for _ in range(self.length):
            if self._iterator is None:
                self._iterator = iter(self.dataset)
            try:
                yield next(self._iterator)
            except StopIteration:
                self._iterator = iter(self.dataset)
                yield next(self._iterator)


class _ShimmedDataset(IterableDataset):
    def __init__(self, dataset: Dataset, shim: Callable[[dict], dict]) -> None:
        super().__init__()
        self.dataset = dataset
        self.shim = shim

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        for example in self.dataset:
            yield self.shim(example)


def _identity(example: dict) -> dict:
    return example


class DataModule(LightningDataModule):
    def __init__(
        self,
        dataset_cfg: DatasetCfg,
        data_loader_cfg: DataLoaderCfg,
        step_tracker: StepTracker | None = None,
        dataset_shim: Callable[[dict], dict] = _identity,
        global_rank: int = 0,
    ) -> None:
        super().__init__()
        self.dataset_cfg = dataset_cfg
        self.data_loader_cfg = data_loader_cfg
        self.step_tracker = step_tracker
        self.dataset_shim = dataset_shim
        self.global_rank = global_rank
        self.skip_counters = {stage: SkipCounter() for stage in ("train", "val", "test")}
        self.train_position = TrainPosition()
        self.fallback_seed = torch.initial_seed() % 2**62  # the run's torch seed (main.run sets it)

    def generator(self, cfg: DataLoaderStageCfg) -> torch.Generator | None:
        if cfg.seed is None:
            return None
        return torch.Generator().manual_seed(cfg.seed + self.global_rank)

    def _loader(self, stage: str, cfg: DataLoaderStageCfg, validation_length: int | None = None) -> DataLoader:
        dataset: Dataset = get_dataset(self.dataset_cfg, stage, self.step_tracker, self.skip_counters[stage])
        resumable = stage == "train" and isinstance(dataset, ChunkedDataset)
        if resumable:  # the order is a function of the seed and the position (splatcore.dataset.positions)
            dataset.position = self.train_position
            dataset.seed = (cfg.seed + self.global_rank) if cfg.seed is not None else self.fallback_seed
            dataset.batch_size = cfg.batch_size
        if stage == "test" and isinstance(dataset, ChunkedDataset):
            dataset.shard_rank, dataset.shard_count = self.process_rank()
        if self.dataset_shim is not _identity:
            dataset = _ShimmedDataset(dataset, self.dataset_shim)
        if validation_length is not None:
            dataset = ValidationWrapper(dataset, validation_length)
        options = dict(
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            generator=self.generator(cfg),
            worker_init_fn=worker_init_fn,
            persistent_workers=cfg.persistent_workers and cfg.num_workers > 0,
        )
        if resumable:
            return ResumableLoader(dataset, position=self.train_position, progress=trainer_progress(self), **options)
        return DataLoader(dataset, **options)

    def process_rank(self) -> tuple[int, int]:
        """(global rank, world size) of the attached trainer; (0, 1) without one."""
        trainer = getattr(self, "trainer", None)
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.data_loader_cfg.train)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.data_loader_cfg.val, validation_length=1)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.data_loader_cfg.test)

    def skip_report(self, stage: str, reset: bool = True) -> str:
        """The skip totals of a stage over all workers since the last reset."""
        counter = self.skip_counters[stage]
        report = counter.report(f"{self.dataset_cfg.name}/{stage}")
        if reset:
            counter.reset()
        return report


class SkipReportCallback(Callback):
    """Logs each stage's skip totals (all workers) at the end of its epoch and resets them."""

    def __init__(self, data_module: DataModule) -> None:
        self.data_module = data_module

    def _report(self, stage: str) -> None:
        counter = self.data_module.skip_counters[stage]
        if counter.total():
            log.warning(self.data_module.skip_report(stage))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._report("train")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._report("val")

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._report("test")
