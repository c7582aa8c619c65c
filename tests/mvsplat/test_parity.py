"""MVSplat port vs the upstream golden tensors, one test per public parity file and tensor:
``public.safetensors`` (seed 0, V = 2, 64x64) and ``public_v3.safetensors`` (seed 2, V = 3, 64x96,
coarser subsampling, the V >= 3 transformer mask rule). Every intermediate stage and every final
output within the README tolerances (5e-4 / 2e-3 x max|ref|), the encoder config taken from the
file's metadata or the fixture config.json, and the checkpoint layout of the official encoder."""

from __future__ import annotations

import json

import pytest
import torch

from mvsplat import EncoderCostVolume, EncoderCostVolumeCfg
from mvsplat.parity import build_encoder, encoder_config_from_dict, run_encoder
from splatcore.testing.parity import ParityError, base_name, compare_tensor, load_parity_file

STAGES = [
    "inter_backbone_cnn_features",
    "inter_transformer_features",
    "inter_cost_volume",
    "inter_coarse_depth_logits",
    "inter_refine_unet_out",
    "inter_raw_delta_disp_density",
    "inter_raw_gaussians",
]
FINALS = [
    "depth",
    "gaussians_means",
    "gaussians_covariances",
    "gaussians_harmonics",
    "gaussians_opacities",
    "gaussians_scales",
    "gaussians_rotations",
]
# file -> (seed, V, H, W) it must hold, so the tests check what they claim to check.
PUBLIC_FILES = {"public.safetensors": (0, 2, 64, 64), "public_v3.safetensors": (2, 3, 64, 96)}


@pytest.fixture(scope="module", params=sorted(PUBLIC_FILES))
def parity_case(request, shared_dir):
    path = shared_dir / "parity/mvsplat" / request.param
    if not path.is_file():
        pytest.skip(f"{path} not found (the public MVSplat parity sets live in ../shared/parity/mvsplat)")
    parity_set = load_parity_file(path)
    outputs = run_encoder(build_encoder(parity_set.metadata), parity_set.inputs)
    return request.param, parity_set, outputs


@pytest.fixture(scope="module")
def key_list(shared_dir):
    return json.loads((shared_dir / "parity/mvsplat/state_dict_keys.json").read_text())


def test_fixture_holds_exactly_the_checked_tensors(parity_case):
    name, parity_set, _ = parity_case
    assert sorted(base_name(n) for n in parity_set.references) == sorted(STAGES + FINALS)
    seed, v, h, w = PUBLIC_FILES[name]
    assert parity_set.seed == seed and tuple(parity_set.inputs["image"].shape) == (1, v, 3, h, w)


@pytest.mark.parametrize("tensor", STAGES + FINALS)
def test_every_tensor_matches_upstream(parity_case, tensor):
    _, parity_set, outputs = parity_case
    [name] = [n for n in parity_set.references if base_name(n) == tensor]
    result = compare_tensor(name, parity_set.references[name], outputs.get(tensor))
    assert result.problem is None, result.problem
    expected_tolerance = 5e-4 if name.startswith("inter_") else 2e-3
    assert result.tolerance == expected_tolerance
    assert result.relative_error <= expected_tolerance, (
        f"{name}: max|port-ref|/max|ref| = {result.relative_error:.3e} > {expected_tolerance}"
    )


def test_default_config_is_the_fixture_config(shared_dir):
    """Without ``encoder_config`` metadata the port uses EncoderCostVolumeCfg(); it must be the
    fixture's config.json (costvolume.yaml + re10k.yaml) key by key."""
    fixture = json.loads((shared_dir / "parity/mvsplat/config.json").read_text())
    assert encoder_config_from_dict(fixture) == EncoderCostVolumeCfg()
    assert encoder_config_from_dict(fixture["encoder_config"]) == EncoderCostVolumeCfg()


def test_encoder_config_comes_from_metadata_when_present(shared_dir):
    fixture = json.loads((shared_dir / "parity/mvsplat/config.json").read_text())["encoder_config"]
    changed = {**fixture, "num_depth_candidates": 32, "d_feature": 64}
    encoder = build_encoder({"seed": "0", "V": "4", "encoder_config": json.dumps(changed)})
    assert encoder.cfg.num_depth_candidates == 32 and encoder.cfg.d_feature == 64
    assert not encoder.training
    # Also given through the fixture_config argument (the parsed config.json); metadata wins.
    assert build_encoder({"seed": "0"}, fixture_config={"encoder_config": changed}).cfg.d_feature == 64
    assert build_encoder({"seed": "0", "encoder_config": json.dumps(fixture)}, {"encoder_config": changed}).cfg.d_feature == 128
    with pytest.raises(ParityError, match="not usable"):
        build_encoder({"seed": "0", "encoder_config": json.dumps({**fixture, "d_featuer": 64})})
    with pytest.raises(ParityError, match="not valid JSON"):
        build_encoder({"seed": "0", "encoder_config": "{d_feature: 64"})
    with pytest.raises(ParityError, match="not MVSplat"):
        build_encoder({"seed": "0", "encoder_config": json.dumps({**fixture, "name": "depthsplat"})})
    with pytest.raises(ParityError, match="integer 'seed'"):
        build_encoder({"V": "3"})
    with pytest.raises(ParityError, match="V >= 2"):
        build_encoder({"seed": "0", "V": "1"})


def test_state_dict_keys_shapes_and_order_equal_upstream(key_list):
    encoder = EncoderCostVolume(EncoderCostVolumeCfg())
    state = encoder.state_dict()
    expected = [(entry["name"], entry["shape"], entry["dtype"]) for entry in key_list["keys"]]
    actual = [(name, list(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in state.items()]
    assert actual == expected
    assert key_list["num_elements"] == sum(t.numel() for t in state.values())


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
def test_parity_on_cuda(parity_case):
    """The same tolerances hold when the port runs on a GPU (TF32 off), for every public set."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    _, parity_set, _ = parity_case
    encoder = build_encoder(parity_set.metadata).cuda()
    outputs = run_encoder(encoder, {k: v.cuda() for k, v in parity_set.inputs.items()})
    for name, reference in parity_set.references.items():
        result = compare_tensor(name, reference, outputs.get(base_name(name)))
        assert result.ok, f"{name}: {result.relative_error:.3e} {result.problem or ''}"
