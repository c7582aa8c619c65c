"""DepthSplat port vs the upstream golden tensors (../shared/parity/depthsplat/*.safetensors) and
the official checkpoint layout (state_dict_keys.json), stage by stage.

Status: every stage up to the cost volumes / match probabilities matches the ViT-S fixture, and
``inter_mono_intermediate_l3`` the ViT-B one; the DPT head's residual (``inter_dpt_residual_depth``)
does not (see DPT_OPEN for what was ruled out), so the tensors computed from it
(``depth``, ``gaussians_*`` and the Gaussian-branch stages) are checked twice:
* end to end (strict xfail until the DPT head matches: the test turns into a failure the day it
  passes, so the marker cannot be forgotten);
* with the DPT head's output replaced by the reference residual (a forward hook), which checks
  every later stage (feature upsampler, Gaussian regressor U-Net, Gaussian head, activations,
  adapter) against upstream within the README tolerances.
"""

from __future__ import annotations

import json

import pytest
import torch

from depthsplat.parity import build_encoder, run_encoder
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
DPT = ["inter_dpt_residual_depth"]
AFTER_DPT = ["inter_gaussian_regressor_out_stride2", "inter_raw_gaussian_head_out_stride4"]
FINALS = [
    "depth",
    "gaussians_means",
    "gaussians_covariances",
    "gaussians_harmonics_every8",
    "gaussians_opacities",
    "gaussians_scales",
    "gaussians_rotations",
]
DPT_OPEN = (
    "the DPT head does not reproduce upstream's inter_dpt_residual_depth (error 0.65-1.2 x max|ref|, "
    "uncorrelated) although all of its inputs match; the variants ruled out are listed in the test module"
)
# What was ruled out (2026-12-01) with the head's inputs captured from the port (all verified against
# the fixture: ViT l0/l3, CNN 1/4 and 1/8, MV 1/8 and 1/4 through the cost volumes, the scale-1
# inverse depth through the final depth) and the fixture's weights, comparing the head output alone:
# every concat order at the three concat levels (2 x 24 x 6), raw / normalised / metric / zero depth
# channel, the CNN 1/2 map from the stem instead of layer1, layer3 or the transformer input instead of
# conv2 at 1/8, the depth regressors' outputs, cost volumes or match probabilities instead of the MV
# features, the ViT maps on the patch grid (resized before / after the projections), all 24 orders of
# the four ViT maps, ReLU / GELU / identity in the residual units and after each output conv,
# align_corners False, out_conv before the resize, the x2 upsample inside the output head or after it,
# the skip and the path swapped in the fusion blocks, and the concat projection as a residual. The
# key layout (names and shapes) is upstream's, so the difference is in the forward wiring only.
# Second pass (2026-12-01, same method, ~40k variants, each alone and crossed with the others):
# in-place ReLU in the residual units (the skip adds relu(x)) and units without pre-activation, x
# ReLU/GELU/identity after output_conv.0 and .2; concat projections applied before the resize
# layers (extras resized to 1/8: bilinear with/without align_corners, antialias, area, nearest) per
# level; ViT maps on the 4x4 patch grid with level maps or extras resized to match; resize_layers.0
# as a x2 ConvTranspose (stride 2, padding 1) with levels 0 and 1 at 1/4 and an Interpolate in the
# output head (MiDaS-style ``output_conv``: conv, Interpolate, conv, ReLU, conv); refinenet1 at 1/2
# + x2 in the head; x2 in the head then a resize back to H x W; all 24 ViT orders x concat orders;
# refinenet1-3 permuted and conv1/conv2 swapped; ReLU/GELU after projects, resize layers, concat
# projections or layer_rn; replicate/reflect padding; the two views swapped in any input; other
# blocks (any pair for l1, l2) or un-normalised block outputs as ViT maps; every channel-count-
# consistent choice of extras from {CNN stem, layer1, layer2, layer3, conv2, transformer input/output,
# MV 1/4, cost volumes, match probabilities, regressor outputs, inverse depth, resized 1/2 and 1/4
# maps}. Best: max error 0.66 x max|ref|, correlation <= 0.5. Probes: refitting the last 1x1 conv
# by least squares gives R^2 <= 0.46; ten free per-input gains fit to corr <= 0.62; freeing the whole
# output head (trained on view 0) predicts view 1 with corr 0.39, so refinenet1's output already lacks
# the reference's information: the difference is in the fusion path or in the wiring of the inputs.
# The ViT-B file (residual = 1/depth - upsampled scale-1 inverse depth at unclamped pixels) is just
# as uncorrelated (0.03). The reference is smoother than any variant (2-6x weaker 2/4/8-px periodic
# components and Nyquist content).


@pytest.fixture(scope="module")
def public_set(shared_dir):
    return load_parity_file(shared_dir / "parity/depthsplat/public.safetensors")


@pytest.fixture(scope="module")
def vitb_set(shared_dir):
    return load_parity_file(shared_dir / "parity/depthsplat/public_vitb.safetensors")


@pytest.fixture(scope="module")
def key_list(shared_dir):
    return json.loads((shared_dir / "parity/depthsplat/state_dict_keys.json").read_text())


@pytest.fixture(scope="module")
def vits_encoder(public_set):
    return build_encoder(public_set.metadata)


@pytest.fixture(scope="module")
def port_outputs(public_set, vits_encoder):
    return run_encoder(vits_encoder, public_set.inputs)


@pytest.fixture(scope="module")
def port_outputs_reference_dpt(public_set, vits_encoder):
    """Outputs with the DPT residual replaced by the reference's (checks the later stages)."""
    reference = public_set.references["inter_dpt_residual_depth"]
    handle = vits_encoder.depth_predictor.upsampler.register_forward_hook(lambda module, args, out: reference)
    try:
        return run_encoder(vits_encoder, public_set.inputs)
    finally:
        handle.remove()


def _check(name, references, outputs):
    result = compare_tensor(name, references[name], outputs.get(base_name(name)))
    assert result.problem is None, result.problem
    assert result.tolerance == (5e-4 if name.startswith("inter_") else 2e-3)
    assert result.ok, f"{name}: max |port - ref| / max |ref| = {result.relative_error:.3e} > {result.tolerance}"


def test_fixture_holds_exactly_the_checked_tensors(public_set, vitb_set):
    assert sorted(public_set.references) == sorted(DEPTH_BRANCH + DPT + AFTER_DPT + FINALS)
    assert sorted(vitb_set.references) == sorted(FINALS + ["inter_mono_intermediate_l3"])


@pytest.mark.parametrize("name", DEPTH_BRANCH)
def test_depth_branch_stage_matches_upstream(public_set, port_outputs, name):
    _check(name, public_set.references, port_outputs)


@pytest.mark.parametrize("name", AFTER_DPT + FINALS)
def test_stages_after_the_dpt_head_match_upstream(public_set, port_outputs_reference_dpt, name):
    _check(name, public_set.references, port_outputs_reference_dpt)


@pytest.mark.xfail(strict=True, reason=DPT_OPEN)
@pytest.mark.parametrize("name", DPT + ["depth", "gaussians_means"])
def test_end_to_end_matches_upstream(public_set, port_outputs, name):
    _check(name, public_set.references, port_outputs)


@pytest.fixture(scope="module")
def vitb_encoder(vitb_set):
    return build_encoder(vitb_set.metadata)


@pytest.fixture(scope="module")
def vitb_outputs(vitb_set, vitb_encoder):
    return run_encoder(vitb_encoder, vitb_set.inputs)


def test_vitb_monocular_features_match_upstream(vitb_set, vitb_encoder, vitb_outputs):
    assert vitb_encoder.depth_predictor.pretrained.embed_dim == 768
    _check("inter_mono_intermediate_l3", vitb_set.references, vitb_outputs)


@pytest.mark.xfail(strict=True, reason=DPT_OPEN)
@pytest.mark.parametrize("name", FINALS)
def test_vitb_final_outputs_match_upstream(vitb_set, vitb_outputs, name):
    _check(name, vitb_set.references, vitb_outputs)


@pytest.mark.parametrize("file,vit", [("public.safetensors", "vits"), ("public_vitb.safetensors", "vitb")])
def test_parity_command_checks_every_tensor_of_either_file(shared_dir, file, vit, capsys, monkeypatch):
    """``pmsplat parity --baseline depthsplat FILE``: the ViT size comes from the file's metadata,
    every reference is compared, and only tensors computed from the DPT head's residual may fail
    (exit code 1 then, 0 when all pass)."""
    import argparse

    from pmsplat.commands import parity as command

    built = []
    original = command._load_hooks

    def spy(baseline):
        hooks = original(baseline)

        class Spy:
            run_encoder = staticmethod(hooks.run_encoder)

            @staticmethod
            def build_encoder(metadata):
                encoder = hooks.build_encoder(metadata)
                built.append(encoder.cfg.monodepth_vit_type)
                return encoder

        return Spy

    monkeypatch.setattr(command, "_load_hooks", spy)
    path = shared_dir / "parity/depthsplat" / file
    code = command.run(argparse.Namespace(baseline="depthsplat", file=str(path), threads=torch.get_num_threads()))
    out = capsys.readouterr().out
    assert built == [vit]
    references = load_parity_file(path).references
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ")}
    assert sorted(rows) == sorted(references)
    failing = sorted(name for name, row in rows.items() if "FAIL" in row)
    assert set(failing) <= set(DPT + AFTER_DPT + FINALS)  # the depth branch and the ViT always pass
    assert code == (1 if failing else 0)


def _layout(state_dict):
    return [(name, list(tensor.shape)) for name, tensor in state_dict.items()]


@pytest.mark.parametrize("variant", ["vits", "vitb"])
def test_state_dict_layout_equals_upstream(key_list, variant, request):
    entries = key_list["keys"] if variant == "vits" else key_list["configured_variant"]["keys"]
    expected = {e["name"]: e["shape"] for e in entries}
    state = request.getfixturevalue(f"{variant}_encoder").state_dict()
    mine = dict(_layout(state))
    assert sorted(set(expected) - set(mine)) == []  # missing
    assert sorted(set(mine) - set(expected)) == []  # unexpected (e.g. DINOv2's mask_token)
    assert {k: v for k, v in mine.items() if expected[k] != v} == {}
    assert all(t.dtype == torch.float32 for t in state.values())
    assert sum(t.numel() for t in state.values()) == (
        key_list["num_elements"] if variant == "vits" else key_list["configured_variant"]["num_elements"]
    )


def test_official_style_checkpoint_loads_with_no_missing_or_unexpected_keys(vits_encoder, tmp_path):
    from depthsplat.checkpoint import load_encoder_checkpoint
    from depthsplat.encoder import EncoderDepthSplat

    checkpoint = {"state_dict": {"encoder." + k: v.clone() for k, v in vits_encoder.state_dict().items()}}
    path = tmp_path / "depthsplat.ckpt"
    torch.save(checkpoint, path)
    fresh = EncoderDepthSplat(vits_encoder.cfg)
    result = load_encoder_checkpoint(fresh, path, strict=True)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    name = "depth_predictor.pretrained.blocks.3.attn.qkv.weight"
    assert torch.equal(fresh.state_dict()[name], vits_encoder.state_dict()[name])


def test_checkpoint_built_from_the_upstream_key_list_loads_strictly(key_list, vits_encoder, tmp_path):
    """A Lightning-style checkpoint holding exactly the upstream names and shapes (``encoder.``
    prefix, decoder/loss entries beside them, no DINOv2 ``mask_token``) loads with zero missing and
    zero unexpected keys, and every value lands under its own name."""
    from depthsplat.checkpoint import load_encoder_checkpoint
    from depthsplat.encoder import EncoderDepthSplat

    # a distinct constant per entry: a value loaded under the wrong name is caught
    state = {"encoder." + e["name"]: torch.full(e["shape"], float(i)) for i, e in enumerate(key_list["keys"])}
    state["decoder.background_color"] = torch.zeros(3)  # not an encoder key: ignored
    assert not any("mask_token" in name for name in state)
    path = tmp_path / "upstream_layout.ckpt"
    torch.save({"state_dict": state, "epoch": 0}, path)
    fresh = EncoderDepthSplat(vits_encoder.cfg)
    result = load_encoder_checkpoint(fresh, path, strict=True)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    mine = fresh.state_dict()
    for name in ("depth_predictor.upsampler.concat_projects.1.weight", "gaussian_head.2.bias",
                 "depth_predictor.pretrained.pos_embed"):  # fmt: skip
        assert torch.equal(mine[name], state["encoder." + name])
    # a checkpoint that still carries DINOv2's mask_token is not the upstream layout
    state["encoder.depth_predictor.pretrained.mask_token"] = torch.zeros(1, 384)
    torch.save({"state_dict": state}, path)
    with pytest.raises(RuntimeError, match="mask_token"):
        load_encoder_checkpoint(fresh, path, strict=True)
