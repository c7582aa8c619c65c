"""Portable, robust resume of `pmsplat reproduce` on a tiny synthetic benchmark:

- a process killed (SIGKILL) in the middle of a fine-tune, its output folder moved elsewhere, then
  resumed, finishes with the same report numbers as an uninterrupted run and redoes only the
  fine-tune that was cut off;
- the stored records hold no absolute path;
- a finished stage whose checkpoint is corrupt or missing is run again (and the log says so)
  instead of stopping with a traceback.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from pmsplat.reproduce import pipeline
from pmsplat.reproduce.protocol import Schedule, make_plan
from testkit import REPO_ROOT as REPO

TINY = ["dataset.image_shape=[32,32]", "dataset.ori_image_shape=[32,32]", "trainer.enable_progress_bar=false"]
SCHEDULE = Schedule(base_steps=1, finetune_steps=2, seeds=(0,), pm_weight=0.005, max_eval_scenes=1)


def _plan(root: Path):
    """The smallest plan with every kind of stage: base (1 step), the PM-Loss fine-tune from it
    (2 steps), its evaluation on the extrapolation split (the baseline fine-tune is left out)."""
    plan = make_plan("mvsplat", from_scratch=True, root=root, schedule=SCHEDULE, extra_overrides=TINY)
    plan.splits = {"extrapolation": plan.splits["extrapolation"]}
    plan.runs = [r for r in plan.runs if r.variant != "baseline" and r.split in (None, "extrapolation")]
    assert [r.name for r in plan.runs] == ["base", "pmloss_seed0", "eval_pmloss_seed0_extrapolation"]
    return plan


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory) -> Path:
    from pmsplat.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(SynthConfig(out=root, train_scenes=2, test_scenes=1, frames=40, height=32, width=32))
    return root


def _numbers(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out / "results.csv").open()))


@pytest.fixture(scope="module")
def reference(tiny_synthetic, tmp_path_factory) -> Path:
    """The same plan run once without interruption."""
    out = tmp_path_factory.mktemp("uninterrupted")
    pipeline.execute(_plan(tiny_synthetic), out, log=lambda _: None)
    return out


class Counter:
    """Wraps pipeline._train / _evaluate and records which runs did real work."""

    def __init__(self, monkeypatch) -> None:
        self.trained: list[str] = []
        self.evaluated: list[str] = []
        train, evaluate = pipeline._train, pipeline._evaluate

        def counting_train(spec, *args, **kwargs):
            self.trained.append(spec.name)
            return train(spec, *args, **kwargs)

        def counting_evaluate(spec, *args, **kwargs):
            self.evaluated.append(spec.name)
            return evaluate(spec, *args, **kwargs)

        monkeypatch.setattr(pipeline, "_train", counting_train)
        monkeypatch.setattr(pipeline, "_evaluate", counting_evaluate)


# Runs the plan in a fresh process and SIGKILLs that process right after the training step
# `step` of the run `victim` (the trainer's history callback is the hook).
KILL_DRIVER = """
import json, os, signal, sys
from pathlib import Path
import splatcore.main as trainer
from pmsplat.reproduce import pipeline
from pmsplat.reproduce.protocol import Plan, RunSpec, Schedule

spec = json.loads(sys.argv[1])
original = trainer.HistoryWriter.on_train_batch_end

def kill_after_step(self, lightning, *args, **kwargs):
    original(self, lightning, *args, **kwargs)
    if self.path.parent.name == spec["victim"] and lightning.global_step >= spec["step"]:
        os.kill(os.getpid(), signal.SIGKILL)

trainer.HistoryWriter.on_train_batch_end = kill_after_step
plan = Plan("mvsplat", "synthetic", Path(spec["root"]), "synthetic", Schedule(**spec["schedule"]),
            runs=[RunSpec(**r) for r in spec["runs"]], splits={k: Path(v) for k, v in spec["splits"].items()})
pipeline.execute(plan, Path(spec["out"]), log=lambda _: None)
"""


def test_killed_mid_finetune_moved_and_resumed_gives_the_same_report(reference, tiny_synthetic, tmp_path, monkeypatch):
    plan = _plan(tiny_synthetic)
    first = tmp_path / "first_disk" / "reproduce"
    spec = {
        "victim": "pmloss_seed0", "step": 1, "root": str(tiny_synthetic), "out": str(first),
        "schedule": asdict(SCHEDULE), "runs": [asdict(r) for r in plan.runs],
        "splits": {k: str(v) for k, v in plan.splits.items()},
    }
    killed = subprocess.run([sys.executable, "-c", KILL_DRIVER, json.dumps(spec)], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    runs = first / "runs"
    assert (runs / "base" / "done.json").is_file()
    cut = runs / "pmloss_seed0"
    assert not (cut / "done.json").exists()  # killed inside the fine-tune, after its first step
    assert (cut / "train_history.csv").read_text().count("\n") >= 2

    moved = tmp_path / "second_disk" / "reproduce"
    moved.parent.mkdir()
    shutil.move(str(first), str(moved))
    counter = Counter(monkeypatch)
    messages: list[str] = []
    pipeline.execute(_plan(tiny_synthetic), moved, log=messages.append)
    assert counter.trained == ["pmloss_seed0"]  # the base is reused from the moved folder
    assert counter.evaluated == ["eval_pmloss_seed0_extrapolation"]
    assert any("unfinished earlier attempt" in m for m in messages)
    assert _numbers(moved) == _numbers(reference)  # the same report numbers, to the last digit

    # nothing stored refers to where the folder was or is
    for path in [*moved.glob("runs/*/done.json"), *moved.glob("runs/*/spec.json"), *moved.glob("runs/*/config.yaml")]:
        text = path.read_text()
        assert str(first) not in text and str(moved) not in text, path
    done = json.loads((moved / "runs" / "pmloss_seed0" / "done.json").read_text())
    assert done["result"]["checkpoint"] == "checkpoints/last.ckpt"
    assert "checkpointing.pretrained_model=../base/checkpoints/last.ckpt" in done["result"]["overrides"]


@pytest.mark.parametrize("run, damage", [("pmloss_seed0", "truncate"), ("base", "delete")])
def test_broken_checkpoint_of_a_finished_stage_reruns_that_stage(reference, tiny_synthetic, tmp_path, monkeypatch, run, damage):
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    checkpoint = out / "runs" / run / "checkpoints" / "last.ckpt"
    if damage == "truncate":
        data = checkpoint.read_bytes()
        checkpoint.write_bytes(data[: len(data) // 2])
    else:
        checkpoint.unlink()
    counter = Counter(monkeypatch)
    messages: list[str] = []
    pipeline.execute(_plan(tiny_synthetic), out, log=messages.append)
    assert counter.trained == [run]  # only the damaged stage; training is deterministic, so the
    assert counter.evaluated == []   # retrained weights are identical and nothing downstream is redone
    said = [m for m in messages if run in m and "running this stage again" in m]
    assert said and ("corrupt" in said[0] if damage == "truncate" else "missing" in said[0])
    assert list(out.glob(f"runs/{run}.broken-*"))  # the broken folder is kept aside, not deleted
    assert _numbers(out) == _numbers(reference)


def test_changed_settings_move_the_old_run_aside(reference, tiny_synthetic, tmp_path, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    plan = _plan(tiny_synthetic)
    eval_spec = next(r for r in plan.runs if r.name == "eval_pmloss_seed0_extrapolation")
    eval_spec.overrides = eval_spec.overrides + ["dataset.view_sampler.num_context_views=2"]
    counter = Counter(monkeypatch)
    pipeline.execute(plan, out, log=lambda _: None)
    assert counter.trained == [] and counter.evaluated == ["eval_pmloss_seed0_extrapolation"]
    assert list(out.glob("runs/eval_pmloss_seed0_extrapolation.stale-*"))
