"""MVSplat encoder behaviour beyond the parity set: small configs, B > 1, V = 3, non-square sizes,
geometry of the outputs, gradients, the data shim and the input / config errors."""

from __future__ import annotations

import pytest
import torch

from mvsplat import EncoderCostVolume, EncoderCostVolumeCfg
from mvsplat.errors import MVSplatConfigError, MVSplatInputError
from splatcore.model.gaussian_adapter import GaussianAdapterCfg


def small_cfg(views: int = 3) -> EncoderCostVolumeCfg:
    return EncoderCostVolumeCfg(
        d_feature=64,
        num_depth_candidates=16,
        gaussian_adapter=GaussianAdapterCfg(0.5, 15.0, sh_degree=1),
        costvolume_unet_feat_dim=32,
        depth_unet_feat_dim=32,  # attention heads have 32 channels
        num_context_views=views,
    )


def make_context(batch: int, views: int, height: int, width: int, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    extrinsics = torch.eye(4).repeat(batch, views, 1, 1)
    extrinsics[..., 0, 3] = torch.linspace(-0.3, 0.3, views)
    extrinsics[..., 1, 3] = 0.02 * torch.randn(batch, views, generator=generator)
    intrinsics = torch.tensor([[0.9, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]]).repeat(batch, views, 1, 1)
    return {
        "image": torch.rand(batch, views, 3, height, width, generator=generator),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
        "near": torch.full((batch, views), 1.0),
        "far": torch.full((batch, views), 50.0),
    }


@pytest.fixture(scope="module")
def small_encoder():
    torch.manual_seed(0)
    return EncoderCostVolume(small_cfg()).eval()


def test_outputs_have_upstream_layout_and_geometry(small_encoder):
    b, v, h, w = 2, 3, 16, 32
    context = make_context(b, v, h, w)
    dump: dict = {}
    with torch.no_grad():
        gaussians = small_encoder(context, global_step=0, visualization_dump=dump)
    g = v * h * w
    assert gaussians.means.shape == (b, g, 3) and gaussians.covariances.shape == (b, g, 3, 3)
    assert gaussians.harmonics.shape == (b, g, 3, 4) and gaussians.opacities.shape == (b, g)
    assert dump["depth"].shape == (b, v, h, w, 1, 1)
    assert dump["scales"].shape == (b, g, 3) and dump["rotations"].shape == (b, g, 4)
    depth = dump["depth"].reshape(b, v, h * w)
    assert bool(((depth >= 1.0 - 1e-4) & (depth <= 50.0 + 1e-3)).all())
    assert bool(((gaussians.opacities > 0) & (gaussians.opacities < 1)).all())
    # View-major order: Gaussian n = view * H * W + pixel lies at ray distance depth from its camera.
    centres = context["extrinsics"][..., :3, 3].repeat_interleave(h * w, dim=1)
    torch.testing.assert_close((gaussians.means - centres).norm(dim=-1), depth.reshape(b, g), rtol=1e-4, atol=1e-4)
    eigenvalues = torch.linalg.eigvalsh(gaussians.covariances.double())
    assert bool((eigenvalues > 0).all())


def test_intermediates_are_collected_only_on_request(small_encoder):
    context = make_context(1, 3, 32, 32)
    intermediates: dict = {}
    with torch.no_grad():
        small_encoder(context, 0, intermediates=intermediates)
    assert set(intermediates) == {
        "inter_backbone_cnn_features", "inter_transformer_features", "inter_cost_volume",
        "inter_coarse_depth_logits", "inter_refine_unet_out", "inter_raw_delta_disp_density",
        "inter_raw_gaussians",
    }  # fmt: skip
    assert intermediates["inter_cost_volume"].shape == (3, 16, 8, 8)
    assert intermediates["inter_raw_gaussians"].shape == (3, 2 + 7 + 12, 32, 32)


def test_gradients_reach_every_parameter():
    torch.manual_seed(1)
    encoder = EncoderCostVolume(small_cfg(views=2)).train()
    gaussians = encoder(make_context(1, 2, 16, 16, seed=1), global_step=0)
    loss = gaussians.means.square().mean() + gaussians.harmonics.square().mean() + gaussians.opacities.mean()
    loss = loss + gaussians.covariances.abs().mean()
    loss.backward()
    missing = [name for name, p in encoder.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_data_shim_crops_to_multiples_of_16_and_fixes_intrinsics(small_encoder):
    context = make_context(1, 3, 40, 70)
    batch = {"context": context, "target": make_context(1, 1, 40, 70)}
    shimmed = small_encoder.get_data_shim()(batch)
    assert shimmed["context"]["image"].shape[-2:] == (32, 64)
    torch.testing.assert_close(shimmed["context"]["intrinsics"][..., 0, 0], context["intrinsics"][..., 0, 0] * 70 / 64)
    torch.testing.assert_close(shimmed["context"]["intrinsics"][..., 1, 1], context["intrinsics"][..., 1, 1] * 40 / 32)
    torch.testing.assert_close(shimmed["context"]["image"], context["image"][..., 4:36, 3:67])


def test_bad_inputs_and_configs_get_clear_errors(small_encoder):
    with pytest.raises(MVSplatInputError, match="multiples of 16"):
        small_encoder(make_context(1, 3, 24, 32), 0)
    with pytest.raises(MVSplatInputError, match="built for 3 context views but got 2"):
        small_encoder(make_context(1, 2, 32, 32), 0)
    context = make_context(1, 3, 32, 32)
    del context["far"]
    with pytest.raises(MVSplatInputError, match="'far'"):
        small_encoder(context, 0)
    with pytest.raises(MVSplatConfigError, match="wo_cost_volume"):
        EncoderCostVolume(EncoderCostVolumeCfg(wo_cost_volume=True))
    with pytest.raises(MVSplatConfigError, match="gaussians_per_pixel"):
        EncoderCostVolume(EncoderCostVolumeCfg(gaussians_per_pixel=2))
