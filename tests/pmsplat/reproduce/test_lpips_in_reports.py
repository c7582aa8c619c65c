"""LPIPS in training and in every report once ``make setup`` has converted the VGG16 weights.

The CPU presets train with the upstream photometric loss (mse + 0.05 lpips from step 0, as the
real presets); a tiny reproduction (smoke schedule) reports a finite LPIPS for every run and split
in results.csv, per_scene.csv and report.md; ``pmsplat evaluate`` and the test step's score files
carry it too. Skipped, saying so, when the converted weights are missing.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from splatcore.evaluation import lpips_availability
from splatcore.main import compose_config
from testkit.tiny_mvsplat import tiny_overrides

CPU_PRESETS = {
    "mvsplat_synthetic_cpu": ["mse", "lpips"],
    "pmloss_mvsplat_synthetic_cpu": ["mse", "lpips", "pm"],
    "depthsplat_synthetic_cpu": ["mse", "lpips"],
    "pmloss_depthsplat_synthetic_cpu": ["mse", "lpips", "pm"],
}
TINY = ["dataset.image_shape=[32,32]", "dataset.ori_image_shape=[32,32]", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module", autouse=True)
def lpips_weights_present():
    available, reason = lpips_availability()
    if not available:
        pytest.skip(f"LPIPS weights not found: run `make setup` ({reason})")


def _finite_lpips(value) -> bool:
    value = float(value)
    return math.isfinite(value) and 0 < value < 1


@pytest.mark.parametrize("preset", sorted(CPU_PRESETS))
def test_cpu_presets_train_with_mse_plus_lpips(preset):
    loss = compose_config([f"+experiment={preset}"]).loss
    assert list(loss.keys()) == CPU_PRESETS[preset]
    assert loss.lpips.weight == 0.05 and loss.lpips.apply_after_step == 0
    assert loss.lpips.allow_missing_weights is False  # a missing file is an error, never a silent 0
    # dropping the term stays possible: loss=[...] without lpips plus deleting the preset's block
    kept = [name for name in CPU_PRESETS[preset] if name != "lpips"]
    without = compose_config([f"+experiment={preset}", f"loss=[{','.join(kept)}]", "~loss.lpips"]).loss
    assert list(without.keys()) == kept


@pytest.fixture(scope="module")
def smoke_reproduction(tmp_path_factory):
    from pmsplat.reproduce import pipeline
    from pmsplat.reproduce.protocol import Schedule, make_plan
    from pmsplat.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(SynthConfig(out=root, train_scenes=2, test_scenes=1, frames=40, height=32, width=32))
    out = tmp_path_factory.mktemp("reproduce")
    schedule = Schedule(base_steps=1, finetune_steps=1, seeds=(0,), pm_weight=0.005, max_eval_scenes=1)
    plan = make_plan("mvsplat", from_scratch=True, root=root, schedule=schedule, extra_overrides=TINY)
    report = pipeline.execute(plan, out, log=lambda _: None)
    return root, out, report


def test_reproduction_reports_finite_lpips_for_every_run_and_split(smoke_reproduction):
    _, out, report = smoke_reproduction
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {(r["variant"], r["split"]) for r in rows} == {
        (v, s) for v in ("baseline", "pmloss") for s in ("interpolation", "extrapolation")
    }
    assert all(_finite_lpips(row["lpips"]) for row in rows), [row["lpips"] for row in rows]
    per_scene = list(csv.DictReader((out / "per_scene.csv").open()))
    assert per_scene and all(_finite_lpips(row["lpips"]) for row in per_scene)
    text = report.read_text()
    assert "LPIPS unavailable" not in text and "LPIPS" in text
    # both fine-tunes (and the base) optimised the LPIPS term
    for run in ("base", "baseline_seed0", "pmloss_seed0"):
        history = list(csv.DictReader((out / "runs" / run / "train_history.csv").open()))
        values = [float(row["loss/lpips"]) for row in history if row.get("loss/lpips") not in (None, "")]
        assert values and all(math.isfinite(v) and v > 0 for v in values), run


def test_evaluate_command_reports_lpips(smoke_reproduction, tmp_path):
    from pmsplat.cli import main
    from pmsplat.evaluation import read_table_csv

    root, out, _ = smoke_reproduction
    checkpoint = out / "runs" / "baseline_seed0" / "checkpoints" / "last.ckpt"
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--index",
                 str(root / "evaluation_index_interpolation.json"), "--out", str(tmp_path),
                 "+experiment=mvsplat_synthetic_cpu", f"dataset.roots=[{root}]", *TINY])
    assert code == 0
    (summary,) = read_table_csv(tmp_path / "summary.csv", text_columns=("checkpoint", "index"))
    assert _finite_lpips(summary["lpips"])
    assert all(_finite_lpips(row["lpips"]) for row in read_table_csv(tmp_path / "scores.csv"))


def test_test_step_score_files_have_lpips(tiny_synthetic, tmp_path):  # noqa: F811
    from splatcore.main import run

    overrides = tiny_overrides(tiny_synthetic, tmp_path, "mode=test", "dataset/view_sampler=evaluation",
                               "test.compute_scores=true", "test.save_image=false", "wandb.name=tiny")
    run(compose_config(overrides))
    out = Path(tmp_path) / "test" / "tiny"
    averages = json.loads((out / "scores_all_avg.json").read_text())
    assert "unavailable" not in averages and _finite_lpips(averages["lpips"])
    per_scene = json.loads((out / "scores_lpips_all.json").read_text())
    assert len(per_scene) == 2 and all(_finite_lpips(v) for v in per_scene)
