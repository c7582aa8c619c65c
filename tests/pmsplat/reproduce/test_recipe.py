"""The embedded comparison's recipe: both runs train with the paper's photometric loss (mse +
0.05 LPIPS from step 0), and for DepthSplat the PM run alone carries the PM-Loss fork's settings
(unconstrained offsets, MSE clamp, large-sample skip) -- derived from the resolved configs, as
the report does."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pmsplat.reproduce.pipeline import recipe_difference
from pmsplat.reproduce.protocol import make_plan


def _pair(baseline: str):
    plan = make_plan(baseline, from_scratch=True, root=Path("datasets/synthetic"))
    runs = {r.name: r for r in plan.runs}
    return runs["baseline_seed0"], runs["pmloss_seed0"]


@pytest.mark.parametrize("baseline", ["mvsplat", "depthsplat"])
def test_both_runs_use_the_paper_photometric_loss(baseline) -> None:
    from splatcore.main import compose_config

    for spec in _pair(baseline):
        assert not any(o.startswith(("loss=", "~loss", "loss.lpips", "loss.mse")) for o in spec.overrides)
        losses = OmegaConf.to_container(compose_config(spec.overrides), resolve=True)["loss"]
        assert losses["mse"]["weight"] == 1.0
        assert losses["lpips"]["weight"] == 0.05 and losses["lpips"]["apply_after_step"] == 0


def test_depthsplat_pair_differs_by_the_fork_settings_only(tmp_path) -> None:
    rows, source = recipe_difference(tmp_path, *_pair("depthsplat"))  # no run folders: composed
    assert "composed from the overrides" in source
    diff = {key: (a, b) for key, a, b in rows}
    assert diff["model.encoder.offset_mode"] == ("ori", "unconstrained")
    assert diff["loss.mse.clamp_large_error"] == ("0.0", "0.2")
    assert diff["train.skip_large_sample_loss"] == ("—", "0.1")
    assert diff["train.train_ignore_large_loss"] == ("0.0", "0.2")
    assert diff["train.skip_large_sample_after_step"] == ("—", "300")
    assert diff["dataset.load_pointmap"] == ("false", "true")
    assert diff["loss.pm.*"][0] == "—" and "weight=0.005" in diff["loss.pm.*"][1]
    assert diff["teacher.*"][0] == "—" and "name=synthetic" in diff["teacher.*"][1]
    assert set(diff) == {"model.encoder.offset_mode", "loss.mse.clamp_large_error", "train.skip_large_sample_loss",
                         "train.train_ignore_large_loss", "train.skip_large_sample_after_step", "dataset.load_pointmap",
                         "loss.pm.*", "teacher.*"}


def test_mvsplat_pair_differs_by_the_pm_term_only(tmp_path) -> None:
    rows, _ = recipe_difference(tmp_path, *_pair("mvsplat"))
    assert {key for key, _, _ in rows} == {"dataset.load_pointmap", "loss.pm.*", "teacher.*"}
