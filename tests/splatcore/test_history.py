"""The training-history CSV keeps every logged key, including keys that first appear mid-run (the PM
term after a warm-up), and its rows match the records in memory."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest

from splatcore.history import HistoryWriter


def _step(writer: HistoryWriter, record: dict, lr: float = 1e-3, rank: int = 0) -> None:
    trainer = SimpleNamespace(global_rank=rank, optimizers=[SimpleNamespace(param_groups=[{"lr": lr}])])
    writer.on_train_batch_end(trainer, SimpleNamespace(last_train_record=record), None, None, 0)


def _read(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_a_key_that_appears_later_widens_the_header_and_keeps_earlier_rows(tmp_path) -> None:
    writer = HistoryWriter(tmp_path / "train_history.csv")
    _step(writer, {"step": 0.0, "loss/mse": 0.5, "loss/pm": 0.0})
    _step(writer, {"step": 1.0, "loss/mse": 0.4, "loss/pm": 0.0})
    _step(writer, {"step": 2.0, "loss/mse": 0.3, "loss/pm": 0.2, "loss/pm/raw_mean": 40.0})
    _step(writer, {"step": 3.0, "loss/mse": 0.2, "loss/pm": 0.1, "loss/pm/raw_mean": 20.0})
    rows = _read(tmp_path / "train_history.csv")
    assert list(rows[0]) == ["step", "loss/mse", "loss/pm", "loss/pm/raw_mean", "lr"]
    assert [r["step"] for r in rows] == ["0.0", "1.0", "2.0", "3.0"]
    assert [r["loss/pm/raw_mean"] for r in rows] == ["", "", "40.0", "20.0"]
    assert [float(r["loss/mse"]) for r in rows] == pytest.approx([0.5, 0.4, 0.3, 0.2])
    assert len(writer.rows) == 4 and writer.rows[3]["loss/pm/raw_mean"] == 20.0


def test_only_rank_zero_writes_and_empty_records_are_skipped(tmp_path) -> None:
    writer = HistoryWriter(tmp_path / "train_history.csv")
    _step(writer, {"step": 0.0, "loss/mse": 0.5}, rank=1)
    _step(writer, {})
    assert not (tmp_path / "train_history.csv").exists() and writer.rows == []
    _step(writer, {"step": 0.0, "loss/mse": 0.5}, lr=2e-4)
    assert _read(tmp_path / "train_history.csv") == [{"step": "0.0", "loss/mse": "0.5", "lr": "0.0002"}]
