"""DepthSplat model-size presets against upstream's released layouts
(../shared/parity/depthsplat/preset_state_dict_keys.json: small, base, large, dl3dv_base):

* each port preset builds exactly the listed layout: same names, same shapes, same order, the
  exact tensor and element counts (no tolerance);
* the loader ``pmsplat train`` uses for ``checkpointing.pretrained_model``
  (``splatcore.model.checkpoints.load_weights``) loads a checkpoint built from each key list
  strictly, and rejects a tampered one naming the differing entry;
* ``pmsplat parity --baseline depthsplat --keys FILE`` prints OK per preset on the shared file and
  exits non-zero naming the differing entry on a tampered copy;
* the preset values of the model zoo, the backbone swap and the CPU preset's (fallback branch) DPT
  layout.

Models are built on the ``meta`` device (no memory, no initialisation) wherever only shapes matter;
the small preset is also built for real to check that every value lands under its own name.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import pytest
import torch

from depthsplat.config import PRESETS, EncoderDepthSplatCfg
from depthsplat.encoder import EncoderDepthSplat

# key-file preset -> port preset; (vit, num_scales, upsample_factor, lowest_feature_resolution,
# gaussian_regressor_channels, feature_upsampler_channels, colour U-Net channel mult)
KEY_FILE_PRESETS = {"small": "re10k_small", "base": "re10k_base", "large": "re10k_large", "dl3dv_base": "dl3dv_base"}
MODEL_ZOO = {
    "re10k_small": ("vits", 1, 4, 4, 16, 64, (1, 2, 4, 4, 4)),
    "re10k_base": ("vitb", 2, 2, 4, 32, 128, (1, 2, 4, 4, 4)),
    "re10k_large": ("vitl", 2, 2, 4, 64, 128, (1, 2, 4, 4, 4)),
    "dl3dv_base": ("vitb", 2, 4, 8, 32, 128, (1, 2, 4, 4, 4)),
}
# config keys where a port preset may differ from the key file's encoder_config: the unused
# weights path, and the PM-Loss evaluation settings the port's dl3dv_base carries (README overrides
# offset_mode=unconstrained; PM-Loss's dl3dv.yaml shim_patch_size 4). None changes the layout.
ALLOWED_DIFFERENCES = {
    "re10k_small": {"unimatch_weights_path"},
    "re10k_base": {"unimatch_weights_path"},
    "re10k_large": {"unimatch_weights_path"},
    "dl3dv_base": {"unimatch_weights_path", "offset_mode", "shim_patch_size"},
}


@pytest.fixture(scope="module")
def key_file(shared_dir):
    path = shared_dir / "parity/depthsplat/preset_state_dict_keys.json"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return json.loads(path.read_text())


def _meta_encoder(cfg: EncoderDepthSplatCfg) -> EncoderDepthSplat:
    with torch.device("meta"):
        return EncoderDepthSplat(cfg)


@pytest.fixture(scope="module")
def meta_encoders():
    return {name: _meta_encoder(preset()) for name, preset in PRESETS.items()}


def _layout(state_dict) -> list[tuple[str, list[int]]]:
    return [(name, list(tensor.shape)) for name, tensor in state_dict.items()]


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_preset_is_listed_and_builds(meta_encoders):
    assert set(PRESETS) == set(MODEL_ZOO) | {"cpu_tiny"}
    for name, encoder in meta_encoders.items():
        assert isinstance(encoder.cfg, EncoderDepthSplatCfg) and _count(encoder) > 0, name


@pytest.mark.parametrize("preset", sorted(KEY_FILE_PRESETS))
def test_preset_builds_exactly_the_released_layout(key_file, meta_encoders, preset):
    entry = key_file["presets"][preset]
    encoder = meta_encoders[KEY_FILE_PRESETS[preset]]
    state = encoder.state_dict()
    assert _layout(state) == [(e["name"], e["shape"]) for e in entry["keys"]]  # names, shapes, order
    assert len(state) == entry["num_tensors"]
    assert sum(t.numel() for t in state.values()) == entry["num_elements"] == _count(encoder)
    assert {e["dtype"] for e in entry["keys"]} == {"float32"} and {t.dtype for t in state.values()} == {torch.float32}


@pytest.mark.parametrize("preset", sorted(KEY_FILE_PRESETS))
def test_preset_config_equals_the_released_config(key_file, preset):
    port = PRESETS[KEY_FILE_PRESETS[preset]]().to_dict()
    released = EncoderDepthSplatCfg.from_dict(key_file["presets"][preset]["encoder_config"]).to_dict()
    differing = {k for k in released if released[k] != port[k]}
    assert differing <= ALLOWED_DIFFERENCES[KEY_FILE_PRESETS[preset]], {k: (port[k], released[k]) for k in differing}


def _checkpoint_from_key_list(entry) -> dict[str, torch.Tensor]:
    """A Lightning-style state dict with exactly the listed names and shapes; entry i holds the
    constant i (stride-0 tensors: a few bytes on disk even for ViT-L), beside a non-encoder key."""
    state = {"encoder." + e["name"]: torch.full((), float(i)).expand(e["shape"]) for i, e in enumerate(entry["keys"])}
    state["decoder.background_color"] = torch.zeros(3)  # not an encoder key: ignored by the prefix
    return state


@pytest.mark.parametrize("preset", sorted(KEY_FILE_PRESETS))
def test_production_loader_loads_each_released_key_list_strictly(key_file, preset, tmp_path):
    from splatcore.model.checkpoints import load_weights

    entry = key_file["presets"][preset]
    path = tmp_path / f"{preset}.ckpt"
    torch.save({"state_dict": _checkpoint_from_key_list(entry), "epoch": 0}, path)
    encoder = _meta_encoder(PRESETS[KEY_FILE_PRESETS[preset]]())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*meta parameter.*")  # copying into meta is a no-op
        missing, unexpected = load_weights(encoder, path, prefix="encoder.", strict=True, what="pretrained_model")
    assert missing == [] and unexpected == []


def test_production_loader_puts_every_value_of_the_small_key_list_under_its_name(key_file, tmp_path):
    from splatcore.model.checkpoints import load_weights

    entry = key_file["presets"]["small"]
    path = tmp_path / "small.ckpt"
    torch.save({"state_dict": _checkpoint_from_key_list(entry)}, path)
    encoder = EncoderDepthSplat(PRESETS["re10k_small"]())
    load_weights(encoder, path, prefix="encoder.", strict=True, what="pretrained_model")
    state = encoder.state_dict()
    wrong = [e["name"] for i, e in enumerate(entry["keys"]) if not bool((state[e["name"]] == float(i)).all())]
    assert wrong == []


def test_production_loader_rejects_a_key_list_with_another_width(key_file, tmp_path):
    from splatcore.model.checkpoints import load_weights
    from splatcore.errors import CheckpointError

    entry = json.loads(json.dumps(key_file["presets"]["base"]))
    name = "depth_predictor.upsampler.concat_projects.0.weight"
    target = next(e for e in entry["keys"] if e["name"] == name)
    target["shape"] = [96, 257, 1, 1]  # the width the port had before (one 1/2 CNN map only)
    path = tmp_path / "tampered.ckpt"
    torch.save({"state_dict": _checkpoint_from_key_list(entry)}, path)
    with pytest.raises(CheckpointError, match="concat_projects.0.weight"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*meta parameter.*")
            load_weights(_meta_encoder(PRESETS["re10k_base"]()), path, prefix="encoder.", strict=True)


def _keys_command(path) -> tuple[int, str]:
    from pmsplat.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["parity", "--baseline", "depthsplat", "--keys", str(path), "--threads", "1"])
    return code, buffer.getvalue()


def test_keys_command_reports_ok_for_every_preset_of_the_shared_file(shared_dir, key_file):
    code, text = _keys_command(shared_dir / "parity/depthsplat/preset_state_dict_keys.json")
    lines = [line for line in text.splitlines() if line.split(":")[0] in key_file["presets"]]
    assert [line.split(":")[0] for line in lines] == list(key_file["presets"])
    assert all(line.split(": ", 1)[1].startswith("OK") for line in lines), text
    assert code == 0


def test_keys_command_fails_naming_the_differing_entry_of_a_tampered_copy(key_file, tmp_path):
    tampered = json.loads(json.dumps(key_file))
    tampered["presets"] = {"small": tampered["presets"]["small"]}
    keys = tampered["presets"]["small"]["keys"]
    name = "depth_predictor.upsampler.concat_projects.2.weight"
    next(e for e in keys if e["name"] == name)["shape"] = [192, 449, 1, 1]
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(tampered))
    code, text = _keys_command(path)
    assert code == 1
    line = next(line for line in text.splitlines() if line.startswith("small:"))
    assert "FAIL" in line and name in line and "[192, 449, 1, 1]" in line and "[192, 192, 1, 1]" in line
    # a dropped entry is named too
    removed = keys.pop(3)["name"]
    path.write_text(json.dumps(tampered))
    code, text = _keys_command(path)
    assert code == 1 and removed in text


def test_keys_command_rejects_an_unusable_file(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": []}))
    assert _keys_command(path)[0] == 2
    assert _keys_command(tmp_path / "absent.json")[0] == 2


@pytest.mark.parametrize("name", sorted(MODEL_ZOO))
def test_preset_values_match_the_model_zoo(meta_encoders, name):
    vit, scales, upsample, lowest, regressor, upsampler, mult = MODEL_ZOO[name]
    cfg = PRESETS[name]()
    assert (
        cfg.monodepth_vit_type, cfg.num_scales, cfg.upsample_factor, cfg.lowest_feature_resolution,
        cfg.gaussian_regressor_channels, cfg.feature_upsampler_channels,
    ) == (vit, scales, upsample, lowest, regressor, upsampler)
    unet = meta_encoders[name].gaussian_regressor[3]
    widest = max(m.out_channels for m in unet.modules() if isinstance(m, torch.nn.Conv2d))
    assert (unet.num_levels, widest // regressor) == (len(mult), max(mult))


def test_dl3dv_base_carries_the_pm_loss_evaluation_overrides():
    cfg = PRESETS["dl3dv_base"]()
    assert cfg.costvolume_nearest_n_views == 3 and cfg.multiview_trans_nearest_n_views == 3
    assert cfg.offset_mode == "unconstrained" and cfg.offset_factor == 0.5
    assert cfg.color_large_unet and cfg.return_depth


@pytest.mark.parametrize("vit,width", [("vits", 384), ("vitb", 768), ("vitl", 1024)])
def test_backbone_swap_is_one_override(vit, width):
    encoder = _meta_encoder(PRESETS["dl3dv_base"](monodepth_vit_type=vit))
    assert encoder.depth_predictor.pretrained.embed_dim == width
    # the DPT projections and the 1/4 mono pyramid follow the ViT width
    assert encoder.depth_predictor.upsampler.projects[0].in_channels == width
    assert encoder.depth_predictor.mono_pyramid.stages[1][0].out_channels == width // 2


def test_cpu_tiny_uses_the_fallback_dpt_wiring(meta_encoders):
    """cpu_tiny (ViT-S, upsample 8, one scale) is not an upstream model; its DPT head follows the
    fallback branch of depthsplat-dpt-head.md: concat_projects 112->48, 192->96, 449->192."""
    head = meta_encoders["cpu_tiny"].depth_predictor.upsampler
    assert [(c.in_channels, c.out_channels) for c in head.concat_projects] == [(112, 48), (192, 96), (449, 192)]
