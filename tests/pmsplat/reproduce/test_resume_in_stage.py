"""A training stage killed (SIGKILL) after a step checkpoint resumes from that checkpoint and ends
with the same weights, history and data order as an uninterrupted one (weights, optimizer,
scheduler, RNG and data-loader position restored), in folders whose names Hydra's grammar would
otherwise choke on (spaces, non-ASCII, parentheses, commas, ``=``, quotes)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import REPO_ROOT as REPO

ODD = '"my runs (ü), v=2"'
STEPS = 5  # 3 training scenes, batch 1: killed mid-pass, the run then crosses a pass (epoch) boundary

# Runs one training stage of the reproduction pipeline (pmsplat.reproduce.pipeline's own stage
# runner, resume logic included) in this process; with "kill_at", SIGKILLs itself after that
# training step once a step checkpoint exists.
DRIVER = """
import json, os, signal, sys
from pathlib import Path
import splatcore.main as trainer
from pmsplat.reproduce import pipeline
from pmsplat.reproduce.protocol import RunSpec
from pmsplat.reproduce.stages import run_stage

spec = json.loads(sys.argv[1])
original = trainer.HistoryWriter.on_train_batch_end

def kill_after_step(self, lightning, *args, **kwargs):
    original(self, lightning, *args, **kwargs)
    if spec.get("kill_at") is not None and lightning.global_step >= spec["kill_at"] \\
            and list((self.path.parent / "checkpoints").glob("*step_*.ckpt")):
        os.kill(os.getpid(), signal.SIGKILL)

trainer.HistoryWriter.on_train_batch_end = kill_after_step
run = RunSpec("base", "train", spec["overrides"])
directory = Path(spec["out"]) / "runs" / "base"
result, _, _ = run_stage(directory, {"overrides": run.overrides}, lambda d: pipeline._train(run, d, None), print,
                         artifacts=pipeline._train_artifacts, resumable=pipeline._resume_point)
print("WEIGHTS", result["weights"])
"""


@pytest.fixture(scope="module")
def odd_synthetic(tmp_path_factory) -> Path:
    from pmsplat.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("data") / f"synthetic {ODD}"
    generate(SynthConfig(out=root, train_scenes=3, test_scenes=1, frames=40, height=32, width=32))
    return root


def _overrides(root: Path) -> list[str]:
    # the dataset root goes in as pmsplat.reproduce.protocol writes it (unquoted): the pipeline quotes it
    return ["+experiment=mvsplat_synthetic_cpu", f"dataset.roots=[{root}]", "dataset.image_shape=[32,32]",
            "dataset.ori_image_shape=[32,32]", "trainer.enable_progress_bar=false", f"trainer.max_steps={STEPS}",
            "seed=0", "checkpointing.every_n_train_steps=2", "checkpointing.save_top_k=-1"]


def _drive(out: Path, root: Path, kill_at: int | None) -> subprocess.CompletedProcess:
    spec = {"out": str(out), "overrides": _overrides(root), "kill_at": kill_at}
    return subprocess.run([sys.executable, "-c", DRIVER, json.dumps(spec)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)


def test_killed_stage_resumes_from_its_step_checkpoint_with_the_same_weights(odd_synthetic, tmp_path):
    reference = _drive(tmp_path / f"uninterrupted {ODD}", odd_synthetic, None)
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert "Traceback" not in reference.stderr

    out = tmp_path / f"killed {ODD}"
    killed = _drive(out, odd_synthetic, 3)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    stage = out / "runs" / "base"
    assert not (stage / "done.json").exists() and list((stage / "checkpoints").glob("*step_*.ckpt"))

    resumed = _drive(out, odd_synthetic, None)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert "resuming an unfinished earlier attempt from its step-" in resumed.stdout
    assert "discarded" not in resumed.stdout

    digest = [line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("WEIGHTS")]
    expected = [line.split()[1] for line in reference.stdout.splitlines() if line.startswith("WEIGHTS")]
    assert digest == expected and digest  # the same weights as the uninterrupted run
    done = json.loads((stage / "done.json").read_text())["result"]
    first = json.loads((tmp_path / f"uninterrupted {ODD}" / "runs" / "base" / "done.json").read_text())["result"]
    assert [row["step"] for row in done["history"]] == list(map(float, range(STEPS)))
    assert done["history"] == first["history"]  # same losses at every step: same data order and randomness
    assert done["overrides"] == first["overrides"]  # recorded as an uninterrupted run (no resume keys)
    assert "checkpointing.load" not in (stage / "config.yaml").read_text().split("checkpointing:")[1].split("\n\n")[0] \
        or "load: null" in (stage / "config.yaml").read_text()
