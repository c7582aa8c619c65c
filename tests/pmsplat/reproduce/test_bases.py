"""The shipped synthetic bases (pmsplat.reproduce.bases): the committed MVSplat base matches its
provenance (sha256, the fields a reader needs), loads strictly into its preset through both
loaders (``load_exported`` and ``checkpointing.pretrained_model``), re-scores the recorded PSNR on
2 test scenes within 0.05 dB; the reproduction plan fine-tunes it (no base run; both fine-tunes
of every seed from it, as the resolved configs show); a missing or corrupt base is one error
naming ``make pretrain-synthetic``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pmsplat.errors import DataError
from pmsplat.reproduce import bases
from pmsplat.reproduce.pretrain import CHECK_SCENES, CHECK_SET, check_metrics, load_exported
from pmsplat.reproduce.protocol import make_ablation_plan, make_plan, synthetic_schedule

PROVENANCE_FIELDS = ("command", "commit", "data", "steps", "budget", "stop", "wall_seconds", "machine", "sha256", "metrics")
METRICS = ("psnr", "ssim", "lpips", "depth_abs_rel", "p2s_mean", "floating_fraction", "scale_ratio")
SHIPPED = ("mvsplat",)  # the bases committed under checkpoints/synthetic/


def _checkout_base(baseline: str) -> Path:
    path = Path(__file__).resolve().parents[3] / "checkpoints" / "synthetic" / f"{baseline}_base.safetensors"
    assert path.is_file(), f"{path} must be committed (git lfs is not used; it is a plain file in the repository)"
    return path


@pytest.fixture(scope="module")
def test_scenes(tmp_path_factory) -> Path:
    """The synthetic benchmark's test split (default settings) plus one training scene (config
    validation wants a ``train/`` folder): the same test scenes as datasets/synthetic's (each split
    is seeded on its own), so the tests need no generated datasets/ folder in the checkout."""
    from pmsplat.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("synthetic-test")
    generate(SynthConfig(out=root, train_scenes=1, workers=1))
    return root


@pytest.mark.parametrize("baseline", SHIPPED)
def test_shipped_base_matches_its_provenance(baseline):
    weights = _checkout_base(baseline)
    record = bases.read_provenance(weights, "unused")
    assert record["sha256"] == bases.file_sha256(weights)
    assert record["baseline"] == baseline and record["dtype"] == "float16"
    assert all(key in record for key in PROVENANCE_FIELDS), sorted(set(PROVENANCE_FIELDS) - set(record))
    for split in ("validation", "interpolation", "extrapolation", CHECK_SET):
        assert all(key in record["metrics"][split] for key in METRICS), (split, record["metrics"][split])
    assert weights.stat().st_size <= 60e6
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        dtypes = {str(handle.get_slice(k).get_dtype()) for k in handle.keys()}
        assert all(k.startswith("encoder.") for k in handle.keys())
    assert dtypes <= {"F16", "I64", "BOOL"}, dtypes


@pytest.mark.parametrize("baseline", SHIPPED)
def test_shipped_base_loads_strictly_through_both_loaders(baseline, test_scenes):
    import torch
    from splatcore.main import build_model, compose_config, typed_config
    from splatcore.overrides import list_override
    from splatcore.model.checkpoints import load_weights
    from safetensors.torch import load_file

    weights = _checkout_base(baseline)
    run_cfg = typed_config(
        compose_config([f"+experiment={baseline}_synthetic_cpu", "output_dir=unused", list_override("dataset.roots", [test_scenes])])
    )
    exported = build_model(run_cfg)
    load_exported(weights, exported)
    through_config = build_model(run_cfg)
    missing, unexpected = load_weights(through_config.encoder, weights, prefix="encoder.", strict=True, what="pretrained_model")
    assert missing == [] and unexpected == []
    stored = load_file(str(weights))
    for name, value in through_config.state_dict().items():
        assert torch.equal(value, stored[name].to(value.dtype)), name
        assert torch.equal(value, exported.state_dict()[name]), name


@pytest.mark.parametrize("baseline", SHIPPED)
def test_shipped_base_reproduces_its_recorded_psnr(baseline, test_scenes):
    weights = _checkout_base(baseline)
    recorded = bases.read_provenance(weights, "unused")["metrics"][CHECK_SET]
    measured = check_metrics(baseline, weights, test_scenes)
    assert measured["scenes"] == CHECK_SCENES
    assert measured["psnr"] == pytest.approx(recorded["psnr"], abs=0.05)
    assert measured["depth_abs_rel"] == pytest.approx(recorded["depth_abs_rel"], abs=0.01)


def test_plan_fine_tunes_the_shipped_base_without_a_base_run():
    plan = make_plan("mvsplat")
    weights = _checkout_base("mvsplat")
    assert plan.base_checkpoint == weights and plan.base_sha256 == bases.file_sha256(weights) and not plan.from_scratch
    trains = [r for r in plan.runs if r.kind == "train"]
    assert {r.variant for r in trains} == {"baseline", "pmloss"} and all(r.start_from is None for r in trains)
    assert len(plan.schedule.seeds) >= 3 and len(trains) == 2 * len(plan.schedule.seeds)
    scratch = make_plan("mvsplat", from_scratch=True)
    assert scratch.runs[0].name == "base" and scratch.base_checkpoint is None
    assert all(r.start_from == "base" for r in scratch.runs if r.kind == "train" and r.variant != "base")
    ablation = make_ablation_plan("mvsplat")
    assert ablation.base_checkpoint == weights and all(r.start_from is None for r in ablation.runs if r.kind == "train")


def test_resolved_configs_of_both_fine_tunes_start_from_the_shipped_base(tmp_path, monkeypatch):
    """The configs the pipeline's training stage composes (splatcore.main.run stubbed to capture
    them) load the shipped base, at the fine-tuning lr, and differ in the PM term."""
    import splatcore.main

    from pmsplat.reproduce import pipeline

    seen = {}

    class Captured(Exception):
        pass

    def capture(cfg):
        seen[cfg.wandb.name] = cfg
        raise Captured

    monkeypatch.setattr(splatcore.main, "run", capture)
    plan = make_plan("mvsplat", schedule=synthetic_schedule("smoke", "mvsplat"))
    for spec in [r for r in plan.runs if r.kind == "train"]:
        with pytest.raises(Captured):
            pipeline._train(spec, tmp_path / spec.name, plan.base_checkpoint)
    assert set(seen) == {f"{variant}_seed{seed}" for variant in ("baseline", "pmloss") for seed in plan.schedule.seeds}
    for name, cfg in seen.items():
        assert Path(cfg.checkpointing.pretrained_model) == _checkout_base("mvsplat"), name
        assert cfg.optimizer.lr == pytest.approx(2e-4), name
        assert ("pm" in cfg.loss) == name.startswith("pmloss"), name


def _fake_base(folder: Path, baseline: str = "mvsplat") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{baseline}_base.safetensors"
    weights.write_bytes(b"0123456789" * 10)
    bases.provenance_path(weights).write_text(json.dumps({"baseline": baseline, "sha256": bases.file_sha256(weights)}))
    return weights


def test_missing_or_corrupt_base_is_one_error_naming_pretraining(tmp_path, monkeypatch):
    monkeypatch.setenv(bases.FOLDER_VARIABLE, str(tmp_path / "bases"))
    with pytest.raises(DataError, match="make pretrain-synthetic BASELINE=mvsplat"):
        make_plan("mvsplat")
    weights = _fake_base(tmp_path / "bases")
    assert make_plan("mvsplat").base_checkpoint == weights.resolve()
    data = bytearray(weights.read_bytes())
    data[3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"corrupt or replaced.*make pretrain-synthetic"):
        make_plan("mvsplat")
    bases.provenance_path(weights).write_text("{not json")
    with pytest.raises(DataError, match="not readable JSON"):
        make_plan("mvsplat")
    assert make_plan("mvsplat", from_scratch=True).runs[0].name == "base"  # --from-scratch needs no base


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_cli_names_make_pretrain_synthetic(tmp_path, damage):
    folder = tmp_path / "bases dir (ü)"
    if damage == "corrupt":
        weights = _fake_base(folder)
        weights.write_bytes(weights.read_bytes()[:-1] + b"X")
    env = {**os.environ, bases.FOLDER_VARIABLE: str(folder)}
    result = subprocess.run([sys.executable, "-m", "pmsplat.cli", "reproduce", "--baseline", "mvsplat", "--dry-run"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "make pretrain-synthetic BASELINE=mvsplat" in result.stderr and "--from-scratch" in result.stderr
    assert ("missing" if damage == "missing" else "corrupt") in result.stderr
    scratch = subprocess.run([sys.executable, "-m", "pmsplat.cli", "reproduce", "--baseline", "mvsplat", "--dry-run",
                              "--from-scratch"], capture_output=True, text=True, env=env, timeout=300)
    assert scratch.returncode == 0 and "train    base:" in scratch.stdout, scratch.stderr
