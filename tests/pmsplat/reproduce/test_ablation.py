"""`pmsplat reproduce --ablation`: the plan (variants x seeds, the overrides of each variant, what
reaches the resolved configs), the outputs on constructed results (gains, verdicts, CSV, PNG),
and one real smoke run through the CLI."""

from __future__ import annotations

import csv
import subprocess

import pytest
import torch
from PIL import Image

from pmsplat.reproduce import pipeline
from pmsplat.reproduce.protocol import (
    ABLATION_SCHEDULES,
    SCRATCH_ABLATION_SCHEDULES,
    SYNTHETIC_SCHEDULES,
    TEACHER_DEGRADATIONS,
    AblationSchedule,
    Schedule,
    ablation_variants,
    estimate_seconds,
    make_ablation_plan,
)
from pmsplat.reproduce.stages import weights_digest
from pmsplat.teachers.synthetic import SyntheticTeacherCfg
from testkit import REPO_ROOT as REPO

SMOKE = SCRATCH_ABLATION_SCHEDULES["smoke"]["mvsplat"]
EXPECTED = ["baseline", "pmloss", "weight_0.001", "weight_0.02", "warmup", "confidence", "huber", "bidirectional",
            "stop_gradient", "scale_invariant", "scale_invariant_0.2", "teacher_perfect", "teacher_doubled", "baseline_x2", "pmloss_x2"]


def _value(overrides: list[str], key: str) -> str | None:
    values = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key]
    assert len(values) <= 1, f"{key} given {len(values)} times"
    return values[0] if values else None


def test_plan_has_every_variant_for_every_seed_from_the_same_base(tmp_path) -> None:
    plan = make_ablation_plan("mvsplat", from_scratch=True, root=tmp_path, schedule=SMOKE)
    assert [v.name for v in plan.variants] == EXPECTED
    trains = [r for r in plan.runs if r.kind == "train"]
    assert trains[0].name == "base" and _value(trains[0].overrides, "trainer.max_steps") == "1"
    finetunes = trains[1:]
    assert sorted((r.variant, r.seed) for r in finetunes) == sorted((v, s) for v in EXPECTED for s in SMOKE.seeds)
    assert len({r.name for r in finetunes}) == len(finetunes)
    assert all(r.start_from == "base" for r in finetunes)
    for run in finetunes:  # same seed and data order for every variant of a seed
        assert _value(run.overrides, "seed") == str(run.seed)
        assert _value(run.overrides, "data_loader.train.seed") == str(1234 + run.seed)
    evaluations = [r for r in plan.runs if r.kind == "evaluate"]
    assert sorted((r.start_from, r.split) for r in evaluations) == sorted(
        (r.name, split) for r in finetunes for split in ("interpolation", "extrapolation"))


def test_overrides_per_variant(tmp_path) -> None:
    plan = make_ablation_plan("mvsplat", from_scratch=True, root=tmp_path, schedule=SMOKE)
    runs = {r.variant: r.overrides for r in plan.runs if r.kind == "train" and r.seed == 0 and r.name != "base"}
    steps = {v: int(_value(o, "trainer.max_steps")) for v, o in runs.items()}
    assert steps["baseline_x2"] == steps["pmloss_x2"] == 2 * SMOKE.finetune_steps
    assert all(steps[v] == SMOKE.finetune_steps for v in EXPECTED if not v.endswith("_x2"))
    for variant in ("baseline", "baseline_x2"):
        assert runs[variant][0] == "+experiment=mvsplat_synthetic_cpu"
        assert not any(o.startswith(("loss.", "teacher")) for o in runs[variant])
    pm_variants = [v for v in EXPECTED if not v.startswith("baseline")]
    for variant in pm_variants:
        assert runs[variant][0] == "+experiment=pmloss_mvsplat_synthetic_cpu"
        assert _value(runs[variant], "teacher") == "synthetic"
    weights = {v: float(_value(runs[v], "loss.pm.weight")) for v in pm_variants}
    assert weights == {v: {"weight_0.001": 0.001, "weight_0.02": 0.02, "scale_invariant_0.2": 0.2}.get(v, 0.005)
                       for v in pm_variants}
    assert _value(runs["warmup"], "loss.pm.apply_after_step") == str(SMOKE.finetune_steps // 2)
    assert _value(runs["confidence"], "loss.pm.confidence_weighting") == "true"
    assert _value(runs["huber"], "loss.pm.robust") == "huber"
    assert _value(runs["bidirectional"], "loss.pm.bidirectional") == "true"
    assert _value(runs["stop_gradient"], "loss.pm.stop_gradient_alignment") == "true"
    assert _value(runs["scale_invariant"], "loss.pm.scale_invariant") == "true"
    assert _value(runs["scale_invariant_0.2"], "loss.pm.scale_invariant") == "true"
    defaults = SyntheticTeacherCfg()
    for knob in TEACHER_DEGRADATIONS:
        assert float(_value(runs["teacher_perfect"], f"teacher.{knob}")) == 0.0
        assert float(_value(runs["teacher_doubled"], f"teacher.{knob}")) == pytest.approx(2 * getattr(defaults, knob))
        assert getattr(defaults, knob) > 0  # "doubled" really differs from "default"
    # the plain PM variants carry nothing else
    base_pm = set(runs["pmloss"])
    for variant in ("confidence", "huber", "bidirectional", "stop_gradient", "scale_invariant", "warmup"):
        assert len(set(runs[variant]) - base_pm) == 1


def test_variant_overrides_reach_the_resolved_config(tmp_path) -> None:
    from omegaconf import OmegaConf
    from splatcore.main import compose_config

    plan = make_ablation_plan("mvsplat", from_scratch=True, root=tmp_path, schedule=SMOKE)
    runs = {r.variant: r.overrides for r in plan.runs if r.kind == "train" and r.seed == 1 and r.name != "base"}

    def resolved(variant):
        return OmegaConf.to_container(compose_config(runs[variant]), resolve=True)

    base = resolved("baseline")
    assert "pm" not in base["loss"] and "lpips" in base["loss"]  # the photometric loss of the presets
    checks = {
        "scale_invariant": ("scale_invariant", True), "stop_gradient": ("stop_gradient_alignment", True),
        "warmup": ("apply_after_step", SMOKE.finetune_steps // 2), "weight_0.02": ("weight", 0.02),
    }
    for variant, (key, value) in checks.items():
        config = resolved(variant)
        assert config["loss"]["pm"][key] == value, variant
        assert "lpips" in config["loss"]
    doubled = resolved("teacher_doubled")["loss"]["pm"]["teacher"]
    assert doubled["name"] == "synthetic" and doubled["noise_std"] == pytest.approx(2 * SyntheticTeacherCfg().noise_std)


def test_variant_subset_adds_its_references_and_rejects_unknown_names(tmp_path) -> None:
    plan = make_ablation_plan("mvsplat", from_scratch=True, root=tmp_path, schedule=SMOKE, variants=["scale_invariant", "pmloss_x2"])
    assert [v.name for v in plan.variants] == ["baseline", "scale_invariant", "baseline_x2", "pmloss_x2"]
    with pytest.raises(ValueError, match="unknown ablation variant"):
        make_ablation_plan("mvsplat", from_scratch=True, root=tmp_path, schedule=SMOKE, variants=["nope"])


def test_long_variant_reuses_the_main_comparison_runs(tmp_path) -> None:
    schedule = AblationSchedule(base_steps=800, finetune_steps=100, long_factor=4, seeds=(0, 1))
    main = Schedule(base_steps=800, finetune_steps=400, seeds=(0, 1), pm_weight=0.005)
    plan = make_ablation_plan("mvsplat", from_scratch=True, root=tmp_path, schedule=schedule, main_schedule=main)
    assert plan.run_names[("pmloss_x4", 1)] == "pmloss_seed1" and plan.run_names[("baseline_x4", 0)] == "baseline_seed0"
    assert plan.run_names[("pmloss", 0)] == "ablation_pmloss_seed0"
    other = make_ablation_plan("mvsplat", from_scratch=True, root=tmp_path, schedule=schedule,
                               main_schedule=Schedule(base_steps=800, finetune_steps=300, seeds=(0, 1), pm_weight=0.005))
    assert other.run_names[("pmloss_x4", 1)] == "ablation_pmloss_x4_seed1"  # different settings: never the same name


def test_default_schedules_fit_the_budget() -> None:
    """The documented budget (60 min for the MVSplat ablation from scratch, measured step costs)."""
    for name in ("mvsplat",):
        plan = make_ablation_plan(name, from_scratch=True, schedule=SCRATCH_ABLATION_SCHEDULES["default"][name])
        assert estimate_seconds(plan) <= 60 * 60
        assert len(plan.schedule.seeds) >= 2
    assert SYNTHETIC_SCHEDULES["default"]["mvsplat"].finetune_steps == (
        ABLATION_SCHEDULES["default"]["mvsplat"].finetune_steps * ABLATION_SCHEDULES["default"]["mvsplat"].long_factor)


# --------------------------------------------------------------- outputs on constructed results

PSNR_BUMP = {"baseline": 0.0, "pmloss": -1.0, "weight_0.001": -0.05, "scale_invariant": 0.5, "baseline_x2": 1.0, "pmloss_x2": 0.2}
P2S = {"baseline": 1.0, "pmloss": 0.5, "weight_0.001": 0.9, "scale_invariant": 0.6, "baseline_x2": 0.8, "pmloss_x2": 0.4}


def _metrics(variant: str, seed: int, split: str) -> dict[str, float]:
    shift = 0.0 if split == "interpolation" else -3.0
    psnr = 20.0 + shift + PSNR_BUMP[variant] + 0.1 * seed
    return {"psnr": psnr, "ssim": 0.5, "lpips": 0.3, "psnr_boundary": psnr - 2, "psnr_interior": psnr + 1,
            "psnr_covered": psnr + 0.5, "psnr_uncovered": psnr - 4 - PSNR_BUMP[variant], "uncovered_fraction": 0.25,
            "depth_abs_rel": 0.4, "p2s_mean": P2S[variant] + 0.01 * seed, "floating_fraction": 0.5,
            "scale_ratio": 1.0 - (0.3 if variant.startswith("pmloss") else 0.0), "scenes": 8.0}


def _history(variant: str, seed: int) -> list[dict[str, float]]:
    """20 logged steps; PM variants log a raw Chamfer 10 + seed - 0.25 * step (the PM term at weight
    0.01) next to a photometric loss of 0.02; the first 4 steps log no PM term (a warm-up)."""
    rows = []
    for step in range(24):
        row = {"step": float(step), "loss/mse": 0.02}
        if variant != "baseline" and not variant.startswith("baseline") and step >= 4:
            raw = 10.0 + seed - 0.25 * (step - 4)
            row.update({"loss/pm/raw_mean": raw, "loss/pm": 0.01 * raw})
        row["loss/total"] = row["loss/mse"] + row.get("loss/pm", 0.0)
        rows.append(row)
    return rows


@pytest.fixture
def constructed(tmp_path, monkeypatch):
    plan = make_ablation_plan("mvsplat", from_scratch=True, root=tmp_path / "data", schedule=SMOKE,
                              variants=["pmloss", "weight_0.001", "scale_invariant", "pmloss_x2"])

    def fake_train(spec, directory, start):
        checkpoint = directory / "checkpoints" / "last.ckpt"
        checkpoint.parent.mkdir(parents=True)
        torch.save({"state_dict": {"encoder.w": torch.tensor([float(len(spec.name))])}}, checkpoint)
        return {"checkpoint": "checkpoints/last.ckpt", "weights": weights_digest(checkpoint), "overrides": spec.overrides,
                "history": _history(spec.variant, spec.seed)}

    def fake_evaluate(spec, directory, checkpoint, max_scenes):
        return {"averages": _metrics(spec.variant, spec.seed, spec.split), "rows": [], "notes": []}

    monkeypatch.setattr(pipeline, "ensure_synthetic_data", lambda root, log: None)
    monkeypatch.setattr(pipeline, "_train", fake_train)
    monkeypatch.setattr(pipeline, "_evaluate", fake_evaluate)
    out = tmp_path / "out"
    report = pipeline.execute(plan, out, log=lambda _: None)
    return plan, out, report


def test_ablation_table_gains_and_verdicts(constructed) -> None:
    plan, out, report = constructed
    assert report == out / "ablation.md"
    rows = {(r["variant"], r["split"]): r for r in csv.DictReader((out / "ablation.csv").open())}
    assert set(rows) == {(v.name, s) for v in plan.variants for s in ("interpolation", "extrapolation")}
    pm = rows[("pmloss", "extrapolation")]
    assert float(pm["psnr_mean"]) == pytest.approx(16.05) and float(pm["psnr_std"]) == pytest.approx(0.0707107, rel=1e-5)
    assert float(pm["psnr_gain_mean"]) == pytest.approx(-1.0) and float(pm["psnr_gain_std"]) == pytest.approx(0.0, abs=1e-12)
    assert pm["psnr_verdict"] == "beyond seed spread"  # |-1.0| > 0.0707 + 0.0707
    # p2s 1.00/1.01 -> 0.50/0.51: per-seed reductions 50 % and 49.505 %
    assert float(pm["geometry_gain_pct_mean"]) == pytest.approx((50.0 + 100 * 0.5 / 1.01) / 2)
    small = rows[("weight_0.001", "interpolation")]
    assert float(small["psnr_gain_mean"]) == pytest.approx(-0.05) and small["psnr_verdict"] == "within seed spread"
    long = rows[("pmloss_x2", "extrapolation")]
    assert long["reference"] == "baseline_x2" and float(long["psnr_gain_mean"]) == pytest.approx(-0.8)
    assert float(rows[("scale_invariant", "extrapolation")]["psnr_uncovered_gain_mean"]) == pytest.approx(0.0, abs=1e-9)
    assert rows[("baseline", "extrapolation")]["reference"] == ""
    text = report.read_text()
    assert "| pmloss | extrapolation | 2 | 2 | 16.050 ± 0.071 |" in text
    assert "-1.00 (beyond seed spread)" in text and "+50.0" not in text  # means, not a single seed
    assert "Not run in this call (`--variants`)" in text and "stop_gradient" in text  # what was cut
    runs = list(csv.DictReader((out / "ablation_runs.csv").open()))
    assert len(runs) == len(plan.variants) * 2 * len(SMOKE.seeds)
    with Image.open(out / "ablation.png") as image:
        assert image.size == (2 * 520, 520)


def test_ablation_cli_smoke_run(tmp_path) -> None:
    """The real thing on a tiny benchmark: base + 2 seeds x (baseline, scale-invariant PM-Loss)."""
    from pmsplat.cli import main
    from pmsplat.synthetic import SynthConfig, generate

    root = tmp_path / "synthetic"
    generate(SynthConfig(out=root, train_scenes=2, test_scenes=1, frames=40, height=32, width=32))
    out = tmp_path / "out"
    code = main(["reproduce", "--baseline", "mvsplat", "--ablation", "--schedule", "smoke", "--variants", "scale_invariant",
                 "--root", str(root), "--out", str(out), "dataset.image_shape=[32,32]", "dataset.ori_image_shape=[32,32]",
                 "trainer.enable_progress_bar=false"])
    assert code == 0
    rows = list(csv.DictReader((out / "ablation.csv").open()))
    assert {(r["variant"], r["split"]) for r in rows} == {
        (v, s) for v in ("baseline", "scale_invariant") for s in ("interpolation", "extrapolation")}
    for row in rows:
        assert row["seeds"] == "2" and 0 < float(row["psnr_mean"]) < 60 and float(row["scale_ratio_mean"]) > 0
    config = (out / "runs" / "ablation_scale_invariant_seed1" / "config.yaml").read_text()
    assert "scale_invariant: true" in config and str(out) not in config
    assert (out / "ablation.png").is_file() and "## Results" in (out / "ablation.md").read_text()


def test_make_target_runs_the_ablation() -> None:
    dry = subprocess.run(["make", "-n", "reproduce-ablation", "BASELINE=depthsplat"], cwd=REPO, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "pmsplat reproduce --ablation --baseline depthsplat" in dry.stdout


def test_cli_rejects_ablation_on_real_data(capsys) -> None:
    from pmsplat.cli import main

    assert main(["reproduce", "--baseline", "mvsplat", "--ablation", "--data", "re10k"]) == 2
    assert "synthetic benchmark" in capsys.readouterr().err
    assert main(["reproduce", "--baseline", "mvsplat", "--variants", "huber"]) == 2
    assert "--ablation" in capsys.readouterr().err


def test_every_variant_name_is_unique_and_described() -> None:
    variants = ablation_variants(ABLATION_SCHEDULES["default"]["mvsplat"])
    assert len({v.name for v in variants}) == len(variants)
    assert all(v.description for v in variants)
    long = ABLATION_SCHEDULES["default"]["mvsplat"].long_factor
    assert {v.reference for v in variants} == {None, "baseline", f"baseline_x{long}"}


def test_cli_schedule_choices_are_the_protocols_schedules() -> None:
    from pmsplat.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._subparsers._group_actions[0].choices["reproduce"]._actions if a.dest == "schedule")
    assert list(action.choices) == list(SYNTHETIC_SCHEDULES) == list(ABLATION_SCHEDULES)
    long_main, long_ablation = SYNTHETIC_SCHEDULES["long"]["mvsplat"], ABLATION_SCHEDULES["long"]["mvsplat"]
    assert long_ablation.finetune_steps * long_ablation.long_factor == long_main.finetune_steps


def test_pm_term_table_from_the_training_histories(constructed) -> None:
    plan, out, report = constructed
    from pmsplat.reproduce.ablation import pm_term_rows

    # The PM steps are 4..23 (20 rows); a tenth is 2 rows. Seed 0: first (10 + 9.75) / 2 = 9.875,
    # last (5.5 + 5.25) / 2 = 5.375; seed 1 adds 1 to both: last / first 0.5443 and 0.5862 (mean 0.565,
    # std 0.030). PM / photometric = 0.01 * last / 0.02 = 2.6875 and 3.1875 (mean 2.94, std 0.354).
    text = report.read_text()
    assert "## The PM term during fine-tuning" in text
    assert "| pmloss | 2 | 10.375 ± 0.707 | 5.875 ± 0.707 | 0.57 ± 0.03 | 2.94 ± 0.35 |" in text
    assert "| baseline |" not in text.split("## The PM term during fine-tuning")[1].split("##")[0]
    results = {spec.name: {"history": []} for spec in plan.runs}
    assert pm_term_rows(plan, results) == []  # no logged PM term: no row, no division by zero
