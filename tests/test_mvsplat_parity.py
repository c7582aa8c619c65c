"""MVSplat port vs the upstream golden tensors (../shared/parity/mvsplat/public.safetensors):
every intermediate stage and every final output within the README tolerances, and the
checkpoint layout (key names, order, shapes) of the official encoder."""

from __future__ import annotations

import json

import pytest
import torch

from mvsplat import EncoderCostVolume, EncoderCostVolumeCfg
from mvsplat.parity import build_encoder, run_encoder
from splatcore.testing.parity import base_name, compare_tensor, load_parity_file

STAGES = [
    "inter_backbone_cnn_features",
    "inter_transformer_features",
    "inter_cost_volume",
    "inter_coarse_depth_logits",
    "inter_refine_unet_out_stride2",
    "inter_raw_delta_disp_density",
    "inter_raw_gaussians_stride4",
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


@pytest.fixture(scope="module")
def public_set(shared_dir):
    return load_parity_file(shared_dir / "parity/mvsplat/public.safetensors")


@pytest.fixture(scope="module")
def port_outputs(public_set):
    encoder = build_encoder(public_set.metadata)
    return run_encoder(encoder, public_set.inputs)


@pytest.fixture(scope="module")
def key_list(shared_dir):
    return json.loads((shared_dir / "parity/mvsplat/state_dict_keys.json").read_text())


def test_fixture_holds_exactly_the_checked_tensors(public_set):
    assert sorted(public_set.references) == sorted(STAGES + FINALS)


@pytest.mark.parametrize("name", STAGES + FINALS)
def test_stage_matches_upstream(public_set, port_outputs, name):
    result = compare_tensor(name, public_set.references[name], port_outputs.get(base_name(name)))
    assert result.problem is None, result.problem
    expected_tolerance = 5e-4 if name.startswith("inter_") else 2e-3
    assert result.tolerance == expected_tolerance
    assert result.relative_error <= expected_tolerance, (
        f"{name}: max|port-ref|/max|ref| = {result.relative_error:.3e} > {expected_tolerance}"
    )


def test_state_dict_keys_shapes_and_order_equal_upstream(key_list):
    encoder = EncoderCostVolume(EncoderCostVolumeCfg())
    state = encoder.state_dict()
    expected = [(entry["name"], entry["shape"], entry["dtype"]) for entry in key_list["keys"]]
    actual = [(name, list(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in state.items()]
    assert actual == expected
    assert key_list["num_elements"] == sum(t.numel() for t in state.values())


def test_shapes_do_not_depend_on_view_count():
    two = EncoderCostVolume(EncoderCostVolumeCfg(num_context_views=2)).state_dict()
    three = EncoderCostVolume(EncoderCostVolumeCfg(num_context_views=3)).state_dict()
    assert {k: v.shape for k, v in two.items()} == {k: v.shape for k, v in three.items()}


def test_checkpoint_round_trip_with_encoder_prefix(tmp_path, key_list):
    """An official-style Lightning checkpoint ({'state_dict': {'encoder.<key>': ...}}) loads with
    zero missing / unexpected keys, and save -> load -> save reproduces every tensor exactly."""
    prefix = key_list["checkpoint_key_prefix"]
    source = build_encoder({"V": "2", "seed": "3"})
    checkpoint = {"state_dict": {prefix + k: v for k, v in source.state_dict().items()}}
    path = tmp_path / "official_like.ckpt"
    torch.save(checkpoint, path)

    loaded = torch.load(path, weights_only=True)["state_dict"]
    encoder_entries = {k.removeprefix(prefix): v for k, v in loaded.items() if k.startswith(prefix)}
    target = EncoderCostVolume(EncoderCostVolumeCfg())
    probe = "depth_predictor.to_gaussians.2.weight"
    before = target.state_dict()[probe].clone()
    assert not torch.equal(before, encoder_entries[probe])  # the load below is not vacuous
    result = target.load_state_dict(encoder_entries, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    resaved = {prefix + k: v for k, v in target.state_dict().items()}
    assert list(resaved) == list(checkpoint["state_dict"])
    for key, value in checkpoint["state_dict"].items():
        assert torch.equal(resaved[key], value), key


@pytest.mark.gpu
def test_parity_on_cuda(public_set):
    """The same tolerances hold when the port runs on a GPU (TF32 off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    encoder = build_encoder(public_set.metadata).cuda()
    outputs = run_encoder(encoder, {k: v.cuda() for k, v in public_set.inputs.items()})
    for name, reference in public_set.references.items():
        result = compare_tensor(name, reference, outputs.get(base_name(name)))
        assert result.ok, f"{name}: {result.relative_error:.3e} {result.problem or ''}"
