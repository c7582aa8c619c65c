"""DepthSplat model-size presets against the upstream model zoo (upstream-facts §8 table): the
configuration values of each released model, the parameter counts the model zoo states (37M /
117M / 360M), the exact element count of the configured ViT-B key list for the DL3DV base, the
one-override backbone swap, and a real CPU forward of the CPU-sized preset.

Models are built on the ``meta`` device (no memory, no weights) wherever only shapes matter."""

from __future__ import annotations

import json

import pytest
import torch

from depthsplat.config import PRESETS, EncoderDepthSplatCfg
from depthsplat.encoder import EncoderDepthSplat

# upstream-facts §8 "Model sizes": (vit, num_scales, upsample_factor, lowest_feature_resolution,
# gaussian_regressor_channels, feature_upsampler_channels, colour U-Net channel mult, params in M)
MODEL_ZOO = {
    "re10k_small": ("vits", 1, 4, 4, 16, 64, (1, 2, 4, 4, 4), 37),
    "re10k_base": ("vitb", 2, 2, 4, 32, 128, (1, 2, 4, 4, 4), 117),
    "re10k_large": ("vitl", 2, 2, 4, 64, 128, (1, 2, 4, 4, 4), 360),
    "dl3dv_base": ("vitb", 2, 4, 8, 32, 128, (1, 2, 4, 4, 4), 117),
}


def _meta_encoder(cfg: EncoderDepthSplatCfg) -> EncoderDepthSplat:
    with torch.device("meta"):
        return EncoderDepthSplat(cfg)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _colour_unet_shape(encoder: EncoderDepthSplat) -> tuple[int, int]:
    """(levels, widest conv / base width) of the Gaussian regressor U-Net."""
    unet = encoder.gaussian_regressor[3]
    base = encoder.cfg.gaussian_regressor_channels
    widest = max(m.out_channels for m in unet.modules() if isinstance(m, torch.nn.Conv2d))
    return unet.num_levels, widest // base


def test_every_preset_is_listed_and_builds():
    assert set(PRESETS) == set(MODEL_ZOO) | {"cpu_tiny"}
    for name, preset in PRESETS.items():
        cfg = preset()
        assert isinstance(cfg, EncoderDepthSplatCfg), name
        encoder = _meta_encoder(cfg)
        assert _count(encoder) > 0, name


@pytest.mark.parametrize("name", sorted(MODEL_ZOO))
def test_preset_values_and_parameter_count_match_the_model_zoo(name):
    vit, scales, upsample, lowest, regressor, upsampler, mult, millions = MODEL_ZOO[name]
    cfg = PRESETS[name]()
    assert (
        cfg.monodepth_vit_type, cfg.num_scales, cfg.upsample_factor, cfg.lowest_feature_resolution,
        cfg.gaussian_regressor_channels, cfg.feature_upsampler_channels,
    ) == (vit, scales, upsample, lowest, regressor, upsampler)
    encoder = _meta_encoder(cfg)
    assert _colour_unet_shape(encoder) == (len(mult), max(mult))
    count = _count(encoder)
    # the model zoo rounds to whole millions; allow 2 % for the rounding
    assert abs(count / 1e6 - millions) <= 0.02 * millions, f"{name}: {count / 1e6:.2f}M vs {millions}M"


def test_dl3dv_base_has_exactly_the_configured_vitb_element_count(shared_dir):
    keys = json.loads((shared_dir / "parity/depthsplat/state_dict_keys.json").read_text())
    encoder = _meta_encoder(PRESETS["dl3dv_base"]())
    assert _count(encoder) == keys["configured_variant"]["num_elements"]
    assert len(encoder.state_dict()) == keys["configured_variant"]["num_tensors"]


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


def test_cpu_tiny_runs_a_real_forward_on_cpu():
    torch.manual_seed(0)
    encoder = EncoderDepthSplat(PRESETS["cpu_tiny"]()).eval()
    b, v, h, w = 1, 2, 64, 64
    x = torch.linspace(-0.2, 0.2, v)
    extrinsics = torch.eye(4).repeat(b, v, 1, 1)
    extrinsics[0, :, 0, 3] = x
    intrinsics = torch.tensor([[0.9, 0, 0.5], [0, 0.9, 0.5], [0, 0, 1.0]]).repeat(b, v, 1, 1)
    context = {
        "image": torch.rand(b, v, 3, h, w, generator=torch.Generator().manual_seed(0)),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
        "near": torch.full((b, v), 1.0),
        "far": torch.full((b, v), 100.0),
    }
    with torch.no_grad():
        out = encoder(context, 0)
    depth = out["depths"]
    assert depth.shape == (b, v, h, w)
    assert bool(((depth >= 1.0 - 1e-4) & (depth <= 100.0 + 1e-2)).all())
    assert out["gaussians"].means.shape == (b, v * h * w, 3)
    assert torch.isfinite(out["gaussians"].covariances).all()
