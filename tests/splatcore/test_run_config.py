"""``compose_config`` errors for keys the tree does not have: one sentence naming the override and
the closest existing key (not Hydra's ``+key=value``, which would add a key nothing reads), and the
suggested override composes; ``checkpointing.no_strict_load`` is a key of both baselines' trees."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from splatcore.errors import ConfigError
from splatcore.run_config import compose_config, typed_config

PRESET = "+experiment=mvsplat_synthetic_cpu"


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("trainer.max_step=5", "trainer.max_steps=5"), ("model.encoder.d_featur=48", "model.encoder.d_feature=48"),
     ("optimizer.lrr=1e-4", "optimizer.lr=1e-4")],
)
def test_a_misspelt_key_names_the_closest_key_and_that_override_composes(typo, meant):
    with pytest.raises(ConfigError) as caught:
        compose_config([PRESET, typo])
    message = str(caught.value)
    assert f"invalid override {typo!r}" in message and f"did you mean {meant}?" in message
    assert "+" + typo not in message  # not Hydra's "append" hint
    suggested = re.search(r"did you mean (\S+)\?", message).group(1)
    key, value = suggested.split("=")
    assert OmegaConf.select(compose_config([PRESET, suggested]), key) == (float(value) if "e" in value else int(value))


def test_a_key_with_no_close_match_points_to_the_listing_of_its_group():
    with pytest.raises(ConfigError, match=r"no key 'model\.encoder\.zzzqqq'; `pmsplat train --cfg .*` prints the keys under model\.encoder"):
        compose_config([PRESET, "model.encoder.zzzqqq=1"])


def test_other_override_errors_keep_hydras_message():
    with pytest.raises(ConfigError, match="invalid overrides"):
        compose_config(["+experiment=no_such_preset"])


@pytest.mark.parametrize("preset", ["mvsplat_synthetic_cpu", "depthsplat_synthetic_cpu"])
def test_no_strict_load_is_a_key_of_both_baselines(preset):
    run = typed_config(compose_config([f"+experiment={preset}", "checkpointing.no_strict_load=true"]), check_files=False)
    assert run.checkpointing.no_strict_load is True
    assert typed_config(compose_config([f"+experiment={preset}"]), check_files=False).checkpointing.no_strict_load is False


def test_an_output_dir_below_a_file_is_one_line_before_anything_is_created(tmp_path, tiny_synthetic):
    import subprocess
    import sys

    from testkit.tiny_mvsplat import tiny_overrides

    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    overrides = tiny_overrides(tiny_synthetic, blocker / "run", "trainer.max_steps=1")
    done = subprocess.run([sys.executable, "-m", "pmsplat.cli", "train", *overrides], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("pmsplat train: output_dir=") and f"{blocker} is a file, not a folder" in line
    assert blocker.read_text() == "not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["a file"]
