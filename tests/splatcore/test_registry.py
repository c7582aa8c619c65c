"""The encoder registry of the shared core: baselines register their encoders (and presets), the
core never imports a baseline by name, and a new baseline is its package + config, no core edit."""

from __future__ import annotations

import ast
import shutil
import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest

import splatcore.registry as registry
from splatcore.config_dir import DEFAULT_CONFIG_DIR, available_baselines
from splatcore.main import build_encoder, compose_config, typed_config
from splatcore.errors import ConfigError

CORE = Path(registry.__file__).resolve().parent


def test_the_core_imports_no_baseline():
    baselines = set(available_baselines())
    assert {"mvsplat", "depthsplat"} <= baselines
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in baselines, f"{path.relative_to(CORE)} imports {name}"


def test_baselines_register_their_encoders_when_composed():
    compose_config([])
    assert registry.ENCODERS["costvolume"].baseline == "mvsplat"
    assert registry.ENCODERS["depthsplat"].baseline == "depthsplat"
    assert set(registry.registered_baselines()) >= {"mvsplat", "depthsplat"}


def test_depthsplat_presets_have_one_home():
    """The model/encoder=depthsplat_<size> options are the Python presets, published by the
    registry (no YAML copy of their numbers)."""
    from depthsplat.config import PRESETS
    from depthsplat.registration import PRESET_OPTIONS

    folder = DEFAULT_CONFIG_DIR / "model" / "encoder"
    for preset, option in PRESET_OPTIONS.items():
        assert not (folder / f"{option}.yaml").exists()
        cfg = typed_config(compose_config(["baseline=depthsplat", f"model/encoder={option}", "trainer.max_steps=5"]), check_files=False)
        assert asdict(cfg.encoder) == asdict(PRESETS[preset]())
    override = typed_config(compose_config(
        ["baseline=depthsplat", "model/encoder=depthsplat_base", "model.encoder.costvolume_nearest_n_views=2", "trainer.max_steps=5"]
    ), check_files=False)
    assert override.encoder.costvolume_nearest_n_views == 2 and override.encoder.monodepth_vit_type == "vitb"


def test_run_config_is_complete_and_typed():
    from mvsplat import EncoderCostVolumeCfg
    from pmsplat.adapter import LossPmCfgWrapper
    from pmsplat.teachers.registry import TeacherConfig
    from pmsplat.teachers.synthetic import SyntheticTeacherCfg

    run = typed_config(compose_config(["+experiment=pmloss_mvsplat_synthetic_cpu"]), check_files=False)
    assert isinstance(run.encoder, EncoderCostVolumeCfg) and run.baseline == "mvsplat"
    pm = next(loss.pm for loss in run.losses if isinstance(loss, LossPmCfgWrapper))
    assert isinstance(pm.teacher, TeacherConfig) and isinstance(pm.teacher.options, SyntheticTeacherCfg)
    assert run.teacher is pm.teacher and run.max_steps == run.trainer["max_steps"]


def test_unknown_encoder_names_the_registered_ones():
    with pytest.raises(ConfigError, match=r"model.encoder.name='nope' is unknown; registered encoders: .*costvolume \(mvsplat\)"):
        typed_config(compose_config(["model.encoder.name=nope", "trainer.max_steps=5"]), check_files=False)


TOY_PACKAGE = '''
"""A toy baseline: one encoder, registered with the shared core."""
from dataclasses import dataclass

import torch
from splatcore.errors import ConfigError
from splatcore.registry import EncoderSpec, register_encoder


@dataclass
class ToyEncoderCfg:
    name: str = "toyenc"
    width: int = 4
    num_surfaces: int = 1
    gaussians_per_pixel: int = 1


class ToyEncoder(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.layer = torch.nn.Linear(cfg.width, cfg.width)


def validate(run):
    if run.optimizer.lr > 1e-2:
        raise ConfigError("toybase trains with optimizer.lr <= 1e-2")


register_encoder(EncoderSpec(name="toyenc", baseline="toybase", config_class=ToyEncoderCfg,
                             encoder_class=ToyEncoder, presets={"wide": lambda: ToyEncoderCfg(width=16)},
                             validate=validate))
'''

TOY_BASELINE_YAML = """
# @package _global_
defaults:
  - override /model/encoder: toyenc

baseline: toybase

optimizer:
  name: adam
  lr: 1.e-3
  warm_up_steps: 10
  cosine_lr: true
"""


def test_a_new_baseline_is_its_package_and_config(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "ENCODERS", dict(registry.ENCODERS))
    monkeypatch.setattr(registry, "_DISCOVERED", set(registry._DISCOVERED))
    packages = tmp_path / "packages" / "toybase"
    packages.mkdir(parents=True)
    (packages / "__init__.py").write_text(textwrap.dedent(TOY_PACKAGE))
    monkeypatch.syspath_prepend(str(tmp_path / "packages"))
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    (config / "baseline" / "toybase.yaml").write_text(TOY_BASELINE_YAML)
    (config / "model" / "encoder" / "toyenc.yaml").write_text("name: toyenc\nwidth: 4\n")
    monkeypatch.setenv("PMSPLAT_CONFIG_DIR", str(config))

    assert "toybase" in available_baselines()
    run = typed_config(compose_config(["baseline=toybase", "trainer.max_steps=5"]), check_files=False)
    assert run.baseline == "toybase" and type(run.encoder).__name__ == "ToyEncoderCfg" and run.encoder.width == 4
    assert build_encoder(run).layer.in_features == 4
    wide = typed_config(compose_config(["baseline=toybase", "model/encoder=toybase_wide", "trainer.max_steps=5"]), check_files=False)
    assert wide.encoder.width == 16
    with pytest.raises(ConfigError, match="toybase trains with optimizer.lr <= 1e-2"):
        typed_config(compose_config(["baseline=toybase", "optimizer.lr=0.1", "trainer.max_steps=5"]), check_files=False)
    with pytest.raises(ConfigError, match="baseline=mvsplat does not match model/encoder \\(toyenc, a toybase encoder\\)"):
        typed_config(compose_config(["model/encoder=toyenc", "trainer.max_steps=5"]), check_files=False)


def test_unread_upstream_keys_warn_when_set():
    with pytest.warns(UserWarning, match=r"train.viz_depth=True is ignored by pmsplat"):
        typed_config(compose_config(["+train.viz_depth=true", "trainer.max_steps=5"]), check_files=False)
    with pytest.warns(UserWarning, match=r"wandb.project='x' is ignored by pmsplat"):
        typed_config(compose_config(["+wandb.project=x", "trainer.max_steps=5"]), check_files=False)
