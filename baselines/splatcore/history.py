"""The training-history callback: one CSV row per training step, written as the run goes."""

from __future__ import annotations

import csv
from pathlib import Path

from lightning.pytorch import Callback

HISTORY_FILE = "train_history.csv"


class HistoryWriter(Callback):
    """Appends ``pl_module.last_train_record`` (+ the first group's lr) to a CSV after each
    training step (rank 0), so a loss curve survives an interrupted run; ``rows`` keeps them.
    A key that first appears later (e.g. the PM term after a warm-up) widens the header: the
    file is rewritten with the new column, empty in the earlier rows, so nothing is dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, float]] = []
        self.columns: list[str] | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        """A resumed run keeps the rows of the steps before its checkpoint and drops the later ones
        (written by the interrupted attempt after that checkpoint)."""
        if trainer.global_step <= 0 or not self.path.is_file() or self.rows:
            return
        with self.path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = [{k: float(v) for k, v in row.items() if k and v not in ("", None)} for row in reader]
        self.rows = [row for row in rows if row.get("step", -1) < trainer.global_step]
        self.columns = columns or None
        if trainer.global_rank == 0:
            with self.path.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                writer.writerows([r.get(c, "") for c in columns] for r in self.rows)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_rank != 0 or not pl_module.last_train_record:
            return
        row = dict(pl_module.last_train_record)
        row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.rows.append(row)
        if self.columns is not None and set(row) <= set(self.columns):
            with self.path.open("a", newline="") as handle:
                csv.writer(handle).writerow([row.get(c, "") for c in self.columns])
            return
        known = set(self.columns or []) | set(row)
        self.columns = ["step"] + sorted(k for k in known if k != "step")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.columns)
            writer.writerows([r.get(c, "") for c in self.columns] for r in self.rows)


__all__ = ["HISTORY_FILE", "HistoryWriter"]
