"""A PM-Loss preset with ``loss.pm.weight=0`` warns at start-up, in one line naming the key and
saying that the run trains without a PM term (issue #27: it used to train silently without it);
a positive weight does not warn."""

from __future__ import annotations

import subprocess
import sys

from pmsplat.adapter.loss_pm import LossPmCfg, zero_weight_warning


def _checked(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    """``pmsplat train --cfg``: composes and type-checks the run config (start-up checks included), trains nothing."""
    return subprocess.run(
        [sys.executable, "-m", "pmsplat.cli", "train", "--cfg", "+experiment=pmloss_mvsplat_synthetic_cpu",
         f"dataset.roots=[{tmp_path / 'data'}]", f"output_dir={tmp_path / 'out'}", *overrides],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )


def test_a_pm_preset_with_weight_zero_warns_in_one_line(tmp_path):
    done = _checked(tmp_path, "loss.pm.weight=0")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if "loss.pm.weight" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("warning: loss.pm.weight=0")
    assert "WITHOUT a PM-Loss term" in warnings[0] and "0.005" in warnings[0]
    assert not (tmp_path / "out").exists()


def test_a_positive_weight_does_not_warn(tmp_path):
    done = _checked(tmp_path, "loss.pm.weight=0.005")
    assert done.returncode == 0, done.stderr
    assert "loss.pm.weight" not in done.stderr


def test_the_warning_text():
    assert zero_weight_warning(LossPmCfg(weight=0.005, teacher={"name": "synthetic"})) is None
    text = zero_weight_warning(LossPmCfg(weight=0.0, teacher={"name": "synthetic"}))
    assert text is not None and "\n" not in text and "loss.pm.weight=0" in text
