"""The Hydra tree in config/: presets compose, overrides reach the built modules, the YAML mirrors
the code's presets and constants, and invalid combinations fail at start-up with a clear message."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from splatcore.main import build_encoder, compose_config, encoder_cfg, typed_config
from splatcore.errors import ConfigError
from testkit.tiny_mvsplat import tiny_overrides


def _typed(overrides):
    """Typed config without file checks; main.yaml keeps upstream's max_steps -1, which OneCycle
    rejects, so tests that do not set it train for 100 steps."""
    if not any(o.startswith("trainer.max_steps") or o.startswith("+experiment") for o in overrides):
        overrides = [*overrides, "trainer.max_steps=100"]
    return typed_config(compose_config(overrides), check_files=False)


def test_encoder_override_reaches_the_built_module(tmp_path):
    small = build_encoder(compose_config(tiny_overrides(tmp_path, tmp_path, "model.encoder.num_depth_candidates=8")))
    large = build_encoder(compose_config(tiny_overrides(tmp_path, tmp_path, "model.encoder.num_depth_candidates=12")))
    assert small.depth_predictor.num_depth_candidates == 8 and large.depth_predictor.num_depth_candidates == 12
    d_feature = small.cfg.d_feature
    assert small.depth_predictor.corr_refine_net[0].weight.shape[1] == 8 + d_feature
    assert large.depth_predictor.corr_refine_net[0].weight.shape[1] == 12 + d_feature


@pytest.mark.parametrize(
    "encoder,preset",
    [
        ("depthsplat_small", "re10k_small"),
        ("depthsplat_base", "re10k_base"),
        ("depthsplat_large", "re10k_large"),
        ("depthsplat_dl3dv_base", "dl3dv_base"),
        ("depthsplat_cpu_tiny", "cpu_tiny"),
    ],
)
def test_depthsplat_backbone_yaml_mirrors_the_code_preset(encoder, preset):
    from depthsplat.config import PRESETS

    cfg = encoder_cfg(compose_config(["baseline=depthsplat", f"model/encoder={encoder}"]))
    assert asdict(cfg) == asdict(PRESETS[preset]())


def test_baselines_set_their_optimizers():
    mvsplat = _typed([])
    assert (mvsplat.optimizer.name, mvsplat.optimizer.lr, mvsplat.optimizer.lr_monodepth) == ("adam", 2e-4, 0.0)
    depthsplat = _typed(["baseline=depthsplat"])
    assert (depthsplat.optimizer.name, depthsplat.optimizer.weight_decay, depthsplat.optimizer.lr_monodepth) == ("adamw", 0.01, 2e-6)
    assert depthsplat.train.intermediate_loss_weight == 0.9 and depthsplat.trainer["val_check_interval"] == 0.25


def test_experiment_presets():
    mv = _typed(["+experiment=re10k"])
    assert [next(iter(vars(c))) for c in mv.losses] == ["mse", "lpips"]
    assert mv.losses[1].lpips.apply_after_step == 0 and mv.losses[1].lpips.weight == 0.05
    assert (mv.dataset.near, mv.dataset.far, mv.dataset.make_baseline_1) == (1.0, 100.0, True)
    assert mv.dataset.view_sampler.mvsplat_min_gap_quirk and mv.dataset.image_shape == [256, 256]
    assert mv.data_loader.train.batch_size == 14 and mv.trainer["max_steps"] == 300_001
    ds = _typed(["baseline=depthsplat", "+experiment=re10k"])
    assert (ds.dataset.near, ds.dataset.make_baseline_1, ds.dataset.view_sampler.mvsplat_min_gap_quirk) == (0.5, False, False)
    dl3dv = _typed(["+experiment=dl3dv"])
    assert dl3dv.baseline == "depthsplat" and dl3dv.dataset.name == "dl3dv" and dl3dv.test.chunk_size == 30
    assert encoder_cfg(compose_config(["+experiment=dl3dv"])).shim_patch_size == 16
    for name in ("acid", "mvsplat_synthetic_cpu", "depthsplat_synthetic_cpu"):
        _typed([f"+experiment={name}"])


def test_synthetic_dataset_yaml_matches_the_generator():
    from pmsplat.synthetic import SYNTHETIC_FAR, SYNTHETIC_NEAR, synthetic_dataset_cfg

    cfg = _typed(["dataset=synthetic"])
    assert (cfg.dataset.near, cfg.dataset.far) == (SYNTHETIC_NEAR, SYNTHETIC_FAR)
    assert str(cfg.dataset.roots[0]) == "datasets/synthetic"
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "synthetic.json").write_text(json.dumps({"dataset": {"image_shape": [64, 64], "ori_image_shape": [64, 64]}}))
        code = synthetic_dataset_cfg(Path(folder))
    for key in ("min_distance_between_context_views", "max_distance_between_context_views", "num_target_views"):
        assert getattr(cfg.dataset.view_sampler, key) == getattr(code.view_sampler, key), key
    evaluation = _typed(["dataset=synthetic", "dataset/view_sampler=evaluation", "mode=test", "dataset.roots=[/x]"])
    assert str(evaluation.dataset.view_sampler.index_path) == "/x/evaluation_index_interpolation.json"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model/encoder=depthsplat_base"], "baseline=mvsplat does not match model/encoder"),
        (["+experiment=mvsplat_synthetic_cpu", "baseline=depthsplat"], "preset is for baseline=mvsplat"),
        (["optimizer.lr_monodepth=1e-6"], "lr_monodepth > 0 only applies to DepthSplat"),
        (["loss=[mse,depth]"], "train.depth_mode=depth"),
        (["trainer.max_steps=-1"], "needs trainer.max_steps >= 1"),
        (["mode=test", "data_loader.test.batch_size=2"], "batch_size=1"),
        (["dataset/view_sampler=evaluation"], "test-time sampler"),
        (["+checkpointing.pretrained_depth=x.pth"], "DepthSplat keys"),
        (["optimizer.name=sgd"], "optimizer.name must be one of"),
        (["train.depth_mode=bogus"], "train.depth_mode must be one of"),
    ],
)
def test_invalid_combinations_fail_at_start_up(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _typed(overrides)


def test_unknown_group_option_is_a_config_error():
    with pytest.raises(ConfigError, match="invalid overrides"):
        compose_config(["loss=[mse,nope]"])


def test_missing_dataset_names_the_generator_command(tmp_path):
    with pytest.raises(ConfigError, match="pmsplat data synth --out"):
        typed_config(compose_config(["dataset=synthetic", f"dataset.roots=[{tmp_path / 'none'}]", "trainer.max_steps=5"]))


def test_cli_reports_invalid_configuration_without_traceback(capsys):
    from pmsplat.cli import main

    assert main(["train", "model/encoder=depthsplat_base", "trainer.max_steps=5"]) == 2
    assert "does not match" in capsys.readouterr().err
    assert main(["train", "--cfg", "+experiment=re10k"]) == 0
    assert "num_depth_candidates: 128" in capsys.readouterr().out
