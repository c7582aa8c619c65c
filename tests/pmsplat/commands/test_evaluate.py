"""`pmsplat evaluate` run as a user would (subprocess): when every scene of the index is skipped by
the loader, the one error line says why (the loader's skip reasons), not "no scene was found"."""

from __future__ import annotations

import subprocess
import sys

from pmsplat.synthetic import SynthConfig, generate


def test_all_scenes_skipped_for_their_size_says_why(tmp_path):
    root = tmp_path / "synthetic"
    generate(SynthConfig(out=root, train_scenes=1, test_scenes=2, frames=40, height=32, width=32))
    index = root / "evaluation_index_extrapolation.json"
    done = subprocess.run(
        [sys.executable, "-m", "pmsplat.cli", "evaluate", "--index", str(index), "--out", str(tmp_path / "eval"),
         "+experiment=mvsplat_synthetic_cpu", f"dataset.roots=[{root}]", "dataset.ori_image_shape=[48,48]"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pmsplat evaluate: no scene of") and "could be evaluated" in last
    assert "skipped 2 examples" in last and "unexpected size" in last, last
