"""DepthSplat port vs the upstream golden tensors (../shared/parity/depthsplat/*.safetensors), run
through ``pmsplat parity --baseline depthsplat FILE`` (the command's own code path: configuration
from the file's metadata, the deterministic weight rule, the comparison table and exit code), and
the official checkpoint layout of the fixture encoders (state_dict_keys.json).

One test per public file (every tensor within the README tolerances, exit code 0), one test per
reference tensor (so a failure names the stage), and the configuration each file selects:
``public.safetensors`` (ViT-S, the DL3DV fixture config.json), ``public_vitb.safetensors`` (the
same with the configured ViT-B) and ``public_small.safetensors`` (the RE10K small preset, config in
its ``encoder_config`` metadata: one scale, lowest resolution 1/4, ``offset_mode=ori``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json

import pytest
import torch

from depthsplat.config import EncoderDepthSplatCfg
from splatcore.testing.parity import base_name, compare_tensor, load_parity_file

DEPTH_BRANCH = [
    "inter_cnn_features_s0",
    "inter_cnn_features_s1",
    "inter_mv_transformer_features",
    "inter_mono_intermediate_l0",
    "inter_mono_intermediate_l3",
    "inter_cost_volume_s0",
    "inter_match_prob_s0",
    "inter_cost_volume_s1",
    "inter_match_prob_s1",
]
HEAD_AND_GAUSSIAN_BRANCH = [
    "inter_dpt_residual_depth",
    "inter_gaussian_regressor_out_stride2",
    "inter_raw_gaussian_head_out_stride4",
]
FINALS = [
    "depth",
    "gaussians_means",
    "gaussians_covariances",
    "gaussians_harmonics_every8",
    "gaussians_opacities",
    "gaussians_scales",
    "gaussians_rotations",
]
SMALL_ONE_SCALE = [n for n in DEPTH_BRANCH if not n.endswith("_s1")]
# every reference tensor of each public file
FILES = {
    "public.safetensors": DEPTH_BRANCH + HEAD_AND_GAUSSIAN_BRANCH + FINALS,
    "public_vitb.safetensors": ["inter_mono_intermediate_l3"] + FINALS,
    "public_small.safetensors": SMALL_ONE_SCALE + HEAD_AND_GAUSSIAN_BRANCH + FINALS,
}


@pytest.fixture(scope="module")
def command_runs(shared_dir):
    """``pmsplat parity --baseline depthsplat FILE`` for each public file, with spies on the
    hooks: {file: (exit code, printed text, built encoder, port outputs, reference tensors)}."""
    from pmsplat.commands import parity as command

    runs = {}
    original = command._load_hooks
    for file in FILES:
        path = shared_dir / "parity/depthsplat" / file
        if not path.is_file():
            continue
        seen: dict = {}
        hooks = original("depthsplat")

        class Spy:
            @staticmethod
            def build_encoder(metadata):
                seen["encoder"] = hooks.build_encoder(metadata)
                return seen["encoder"]

            @staticmethod
            def run_encoder(encoder, inputs):
                seen["outputs"] = hooks.run_encoder(encoder, inputs)
                return seen["outputs"]

        command._load_hooks = lambda baseline: Spy
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer):
                code = command.run(
                    argparse.Namespace(baseline="depthsplat", file=str(path), keys=None, threads=torch.get_num_threads())
                )
        finally:
            command._load_hooks = original
        references = load_parity_file(path).references
        runs[file] = (code, buffer.getvalue(), seen.get("encoder"), seen.get("outputs"), references)
    return runs


def _run(command_runs, file):
    if file not in command_runs:
        pytest.skip(f"../shared/parity/depthsplat/{file} is not present")
    return command_runs[file]


def _check(name, references, outputs):
    result = compare_tensor(name, references[name], outputs.get(base_name(name)))
    assert result.problem is None, result.problem
    assert result.tolerance == (5e-4 if name.startswith("inter_") else 2e-3)
    assert result.ok, f"{name}: max |port - ref| / max |ref| = {result.relative_error:.3e} > {result.tolerance}"


@pytest.mark.parametrize("file", sorted(FILES))
def test_parity_command_passes_every_tensor_of_the_file(command_runs, file):
    """Exit code 0, one table row per reference tensor, every row within tolerance."""
    code, text, _, _, references = _run(command_runs, file)
    assert sorted(references) == sorted(FILES[file])  # the file holds exactly the tensors listed here
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("│ ")}
    assert sorted(rows) == sorted(references)
    status = {name: [cell.strip() for cell in row.split("│")][-2] for name, row in rows.items()}
    assert {name: s for name, s in status.items() if s != "ok"} == {}
    assert code == 0, text


@pytest.mark.parametrize("file,name", [(file, name) for file, names in FILES.items() for name in names])
def test_stage_matches_upstream(command_runs, file, name):
    _, _, _, outputs, references = _run(command_runs, file)
    _check(name, references, outputs)


def test_each_file_selects_its_own_configuration(shared_dir, command_runs):
    fixture = json.loads((shared_dir / "parity/depthsplat/config.json").read_text())["encoder_config"]
    for file, vit in (("public.safetensors", "vits"), ("public_vitb.safetensors", "vitb")):
        encoder = _run(command_runs, file)[2]
        assert encoder.cfg == EncoderDepthSplatCfg.from_dict({**fixture, "monodepth_vit_type": vit})
        assert encoder.depth_predictor.pretrained.embed_dim == {"vits": 384, "vitb": 768}[vit]
    small = _run(command_runs, "public_small.safetensors")[2]
    metadata = load_parity_file(shared_dir / "parity/depthsplat/public_small.safetensors").metadata
    assert small.cfg == EncoderDepthSplatCfg.from_dict(json.loads(metadata["encoder_config"]))
    assert (small.cfg.num_scales, small.cfg.lowest_feature_resolution, small.cfg.offset_mode) == (1, 4, "ori")


def _layout(state_dict):
    return [(name, list(tensor.shape)) for name, tensor in state_dict.items()]


@pytest.mark.parametrize("file,variant", [("public.safetensors", "keys"), ("public_vitb.safetensors", "configured_variant")])
def test_fixture_encoder_layout_equals_upstream(shared_dir, command_runs, file, variant):
    """Names, shapes and order of the fixture encoders equal state_dict_keys.json exactly."""
    key_list = json.loads((shared_dir / "parity/depthsplat/state_dict_keys.json").read_text())
    listing = key_list if variant == "keys" else key_list["configured_variant"]
    state = _run(command_runs, file)[2].state_dict()
    assert _layout(state) == [(e["name"], e["shape"]) for e in listing["keys"]]
    assert all(t.dtype == torch.float32 for t in state.values())
    assert sum(t.numel() for t in state.values()) == listing["num_elements"]


def test_official_style_checkpoint_round_trips_through_the_production_loader(command_runs, tmp_path):
    """The fixture encoder saved as a Lightning checkpoint (``encoder.`` prefix) loads strictly into
    a fresh encoder through the loader ``pmsplat train`` uses, value for value."""
    from depthsplat.encoder import EncoderDepthSplat
    from splatcore.model.checkpoints import load_weights

    encoder = _run(command_runs, "public.safetensors")[2]
    path = tmp_path / "depthsplat.ckpt"
    torch.save({"state_dict": {"encoder." + k: v.clone() for k, v in encoder.state_dict().items()}}, path)
    fresh = EncoderDepthSplat(encoder.cfg)
    missing, unexpected = load_weights(fresh, path, prefix="encoder.", strict=True, what="pretrained_model")
    assert missing == [] and unexpected == []
    mine, theirs = fresh.state_dict(), encoder.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
