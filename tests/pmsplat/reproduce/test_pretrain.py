"""``pmsplat pretrain`` (pmsplat.reproduce.pretrain): the stopping rule on synthetic PSNR curves
(both branches, and bad input), a short run on the tiny synthetic set whose float16 export the
loader accepts (sha256 matches, strict load into the preset model), and a resume after a crash
that continues the step count and the history."""

from __future__ import annotations

import csv
import json

import pytest

from pmsplat.errors import DataError, InputError
from pmsplat.reproduce.bases import file_sha256, provenance_path
from pmsplat.reproduce.pretrain import PretrainConfig, load_exported, pretrain, stopping_decision
from testkit.tiny_mvsplat import SIZE

TINY = [f"dataset.image_shape=[{SIZE},{SIZE}]", f"dataset.ori_image_shape=[{SIZE},{SIZE}]", "model.encoder.d_feature=32",
        "model.encoder.num_depth_candidates=8", "model.encoder.costvolume_unet_feat_dim=16",
        "model.encoder.costvolume_unet_channel_mult=[1,1]", "model.encoder.depth_unet_feat_dim=16", "loss=[mse]"]


def _curve(values, every=10):
    return [(i * every, v) for i, v in enumerate(values)]


def test_plateau_fires_when_the_last_fifth_gains_less_than_a_tenth_of_a_db():
    # steps 0..100 by 10; PSNR flat at 20 from step 60 on: at step 100 the reference is step 80
    curve = _curve([10, 14, 17, 19, 19.9, 19.95, 20, 20.02, 20.03, 20.04, 20.05])
    decision = stopping_decision(curve, budget=1000, val_every=10)
    assert decision.stop and decision.reason == "plateau"
    assert decision.reference_step == 80 and decision.gain_db == pytest.approx(0.02)
    assert "< 0.1 dB" in decision.describe()


def test_still_improving_continues_then_budget_fires():
    curve = _curve([10 + i for i in range(11)])  # +1 dB per validation
    decision = stopping_decision(curve, budget=1000, val_every=10)
    assert not decision.stop and decision.reason is None and decision.gain_db == pytest.approx(2.0)
    at_budget = stopping_decision(curve, budget=100, val_every=10)
    assert at_budget.stop and at_budget.reason == "budget" and "budget" in at_budget.describe()


def test_one_noisy_dip_does_not_stop_a_rising_curve():
    # the shipped MVSplat base's first run: 27.55 at 1250, 27.96 at 1500, a noisy 27.35 at 1750
    curve = [(0, 13.5), (250, 18.3), (500, 24.3), (750, 26.1), (1000, 26.5), (1250, 27.55), (1500, 27.96), (1750, 27.35)]
    decision = stopping_decision(curve, budget=9000, val_every=250)
    assert not decision.stop and decision.best_step == 1500 and decision.reference_step == 1250
    assert decision.gain_db == pytest.approx(27.96 - 27.55)
    # ... but a curve whose best is before the window stops, naming both best points
    falling = curve[:-2] + [(1500, 27.5), (1750, 27.35)]
    stopped = stopping_decision(falling, budget=9000, val_every=250)
    assert stopped.stop and stopped.reason == "plateau" and stopped.gain_db == pytest.approx(27.5 - 27.55)
    assert "step 1500" in stopped.describe() and "step 1250" in stopped.describe()


def test_rule_waits_for_enough_history():
    flat = _curve([20.0] * 4)  # steps 0..30 with val_every 10: before step 50 the rule is not applied
    decision = stopping_decision(flat, budget=1000, val_every=10)
    assert not decision.stop and decision.gain_db is None
    assert stopping_decision(_curve([20.0] * 6), budget=1000, val_every=10).reason == "plateau"


@pytest.mark.parametrize("points, kwargs", [
    ([], {}), ([(10, 1.0), (5, 2.0)], {}), ([(0, float("nan"))], {}), ([(0, 1.0)], {"fraction": 1.5}),
])
def test_rule_rejects_bad_input(points, kwargs):
    with pytest.raises(InputError):
        stopping_decision(points, budget=10, val_every=5, **kwargs)


def test_config_rejects_bad_options(tmp_path):
    with pytest.raises(InputError, match="baseline"):
        PretrainConfig(baseline="nerf")
    with pytest.raises(InputError, match="max-steps"):
        PretrainConfig(baseline="mvsplat", max_steps=0)
    with pytest.raises(InputError, match="trainer.max_steps"):
        PretrainConfig(baseline="mvsplat", overrides=["trainer.max_steps=5"])


def _cfg(tiny_synthetic, tmp_path, steps):
    return PretrainConfig(baseline="mvsplat", out=tmp_path / "run", max_steps=steps, scenes=1, data=tiny_synthetic,
                          val_every=2, val_scenes=1, checkpoint_every=2, overrides=TINY,
                          export=tmp_path / "export" / "base.safetensors", command="pytest")


class Crash(Exception):
    pass


def _crash_after(step):
    from lightning.pytorch import Callback

    class CrashAt(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step >= step:
                raise Crash(f"simulated kill at step {trainer.global_step}")

    return CrashAt()


def _history_steps(path):
    return [int(float(row["step"])) for row in csv.DictReader(path.open())]


def test_crash_resume_then_export_loads_strictly(tiny_synthetic, tmp_path):
    from splatcore.main import build_model, compose_config, typed_config

    from pmsplat.reproduce.pretrain import training_overrides

    cfg = _cfg(tiny_synthetic, tmp_path, steps=4)
    with pytest.raises(Crash):
        pretrain(cfg, log=lambda _: None, extra_callbacks=[_crash_after(3)])  # checkpoint at step 2, killed at 3
    first = _history_steps(cfg.out / "train_history.csv")
    assert len(first) == 3 and not cfg.export.exists()
    logs = []
    provenance = pretrain(cfg, log=logs.append)
    assert any("resuming" in line and "step 2" in line for line in logs)
    steps = _history_steps(cfg.out / "train_history.csv")
    assert steps == first[:2] + [first[1] + 1, first[1] + 2], steps  # continues after the checkpoint's step
    assert provenance["steps"] == 4 and provenance["stop"]["reason"] == "budget"
    validation = [int(float(r["step"])) for r in csv.DictReader((cfg.out / "validation.csv").open())]
    assert validation == [0, 2, 4]
    # the export: sha256 recorded, strict load into the preset model, metrics measured
    record = json.loads(provenance_path(cfg.export).read_text())
    assert record["sha256"] == file_sha256(cfg.export) and record["dtype"] == "float16"
    for key in ("command", "commit", "data", "steps", "wall_seconds", "machine"):
        assert key in record
    assert {"validation", "interpolation", "extrapolation"} <= set(record["metrics"])
    assert "psnr" in record["metrics"]["validation"] and "scale_ratio" in record["metrics"]["extrapolation"]
    model = build_model(typed_config(compose_config(training_overrides(cfg)), check_files=False))
    load_exported(cfg.export, model)
    report = (cfg.out / "report.md").read_text()
    assert "Stopped by: **budget**" in report and (cfg.out / "curves.png").is_file()
    # a corrupt export and a run folder with other settings are one clear error each
    cfg.export.write_bytes(cfg.export.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(DataError, match="sha256"):
        load_exported(cfg.export, model)
    with pytest.raises(DataError, match="max_steps"):
        pretrain(_cfg(tiny_synthetic, tmp_path, steps=6), log=lambda _: None)
