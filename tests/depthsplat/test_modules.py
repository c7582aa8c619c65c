"""DepthSplat building blocks against independent references: DINOv2's position-embedding rule
(float64 bicubic written out here), attention kernels, offset modes, nearest-view ranking, the
Gaussian geometry and the training-time stacking of intermediate depths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from depthsplat.config import EncoderDepthSplatCfg, preset_cpu_tiny, preset_dl3dv_base
from depthsplat.encoder import EncoderDepthSplat
from depthsplat.errors import DepthSplatError
from depthsplat.views import nearest_view_partners
from depthsplat.vit.attention import multi_head_attention
from depthsplat.vit.dinov2 import DINOV2_SPECS, DinoVisionTransformer
from pmsplat.adapter.fork import pixel_offsets


def _cubic_weights(t: float, a: float = -0.75) -> list[float]:
    def k(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    return [k(t + 1), k(t), k(1 - t), k(2 - t)]


def _bicubic_scale_factor_reference(grid: np.ndarray, out_rows: int, out_cols: int, scale: tuple[float, float]):
    """float64 bicubic (a = -0.75, half-pixel mapping src = (dst + 0.5) / scale - 0.5, border
    indices clamped), one axis at a time."""

    def axis(values, n_out, s):
        n_in = values.shape[0]
        out = np.zeros((n_out,) + values.shape[1:])
        for i in range(n_out):
            src = (i + 0.5) / s - 0.5
            base = math.floor(src)
            for offset, weight in zip(range(-1, 3), _cubic_weights(src - base)):
                out[i] += weight * values[min(max(base + offset, 0), n_in - 1)]
        return out

    rows = axis(grid, out_rows, scale[0])
    return axis(rows.transpose(1, 0, 2), out_cols, scale[1]).transpose(1, 0, 2)


@pytest.fixture(scope="module")
def tiny_vit():
    spec = DINOV2_SPECS["vits"]
    torch.manual_seed(0)
    return DinoVisionTransformer(type(spec)(64, 2, 2, (0, 1))).eval()


@pytest.mark.parametrize("rows,cols", [(4, 4), (3, 5), (18, 32)])
def test_position_embedding_follows_dinov2_scale_factor_rule(tiny_vit, rows, cols):
    with torch.no_grad():
        tiny_vit.pos_embed.normal_()
        table = tiny_vit.interpolated_pos_embed(rows, cols)
    grid = tiny_vit.pos_embed.detach()[0, 1:].double().reshape(37, 37, -1).numpy()
    scale = ((rows + 0.1) / 37, (cols + 0.1) / 37)
    expected = _bicubic_scale_factor_reference(grid, rows, cols, scale).reshape(rows * cols, -1)
    assert table.shape == (1, 1 + rows * cols, 64)
    assert torch.equal(table[0, 0], tiny_vit.pos_embed[0, 0])
    np.testing.assert_allclose(table.detach()[0, 1:].double().numpy(), expected, atol=2e-5)
    # a size-based resize (what timm does) gives clearly different numbers
    by_size = torch.nn.functional.interpolate(
        tiny_vit.pos_embed[:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2), size=(rows, cols), mode="bicubic"
    )
    assert (by_size.permute(0, 2, 3, 1).reshape(rows * cols, -1) - table[0, 1:]).abs().max().item() > 0.05


def test_position_embedding_unchanged_for_the_native_grid(tiny_vit):
    assert tiny_vit.interpolated_pos_embed(37, 37) is tiny_vit.pos_embed


def test_vit_rejects_sizes_that_are_not_multiples_of_14(tiny_vit):
    with pytest.raises(DepthSplatError, match="multiple of 14"):
        tiny_vit.get_intermediate_layers(torch.rand(1, 3, 30, 28))


def test_sdpa_attention_equals_float64_softmax_attention():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g) for _ in range(3))
    weights = torch.softmax(q.double() @ k.double().transpose(-1, -2) / math.sqrt(8), dim=-1)
    expected = weights @ v.double()
    torch.testing.assert_close(multi_head_attention(q, k, v, backend="sdpa").double(), expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="backend"):
        multi_head_attention(q, k, v, backend="flash")


@pytest.mark.gpu
def test_xformers_attention_equals_sdpa_on_cuda():
    pytest.importorskip("xformers")
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 6, 50, 64, generator=g).cuda() for _ in range(3))
    torch.testing.assert_close(
        multi_head_attention(q, k, v, backend="xformers"), multi_head_attention(q, k, v, backend="sdpa"),
        atol=2e-5, rtol=0,
    )


@pytest.mark.gpu
def test_dinov2_gives_the_same_features_with_xformers_and_sdpa_on_cuda():
    """The whole ViT-S (deterministic weights) on CUDA, every attention layer switched between
    the two kernels: the intermediate features agree to float32 rounding."""
    pytest.importorskip("xformers")
    from depthsplat.vit import build_dinov2
    from depthsplat.vit.dinov2 import SelfAttention
    from splatcore.testing.parity import apply_deterministic_weights

    vit = build_dinov2("vits")
    apply_deterministic_weights(vit, 0)
    vit = vit.cuda().eval()
    images = torch.rand(2, 3, 56, 70, generator=torch.Generator().manual_seed(3)).cuda()
    attention = [m for m in vit.modules() if isinstance(m, SelfAttention)]
    assert len(attention) == 12
    outputs = {}
    with torch.no_grad():
        for backend in ("xformers", "sdpa"):
            vit.set_attention_backend(backend)
            assert {m.backend for m in attention} == {backend}
            outputs[backend] = vit.get_intermediate_layers(images)
    vit.set_attention_backend("auto")
    for fast, reference in zip(outputs["xformers"], outputs["sdpa"]):
        scale = reference.abs().max().item()
        assert (fast - reference).abs().max().item() <= 1e-4 * scale


@pytest.fixture
def xformers_reference_kernel(monkeypatch):
    """xformers' own CPU reference (``attn_bias_utils.ref_attention_bmhk``: BMHK layout, scale
    1/sqrt(K)) in place of ``memory_efficient_attention``, and the CUDA check lifted, so the
    xformers branch of ``multi_head_attention`` runs on CPU. The stand-in binds the real
    operator's signature and records the layout it was given."""
    import inspect

    pytest.importorskip("xformers", reason="xformers is a test dependency (pip install xformers==0.0.35)")
    from xformers.attn_bias_utils import ref_attention_bmhk
    from xformers.ops import memory_efficient_attention

    import depthsplat.vit.attention as attention

    calls = []

    def kernel(*args, **kwargs):
        bound = inspect.signature(memory_efficient_attention).bind(*args, **kwargs)
        bound.apply_defaults()
        query, key, value = (bound.arguments[n] for n in ("query", "key", "value"))
        calls.append(tuple(query.shape))
        return ref_attention_bmhk(query, key, value, bound.arguments["attn_bias"], scale=bound.arguments["scale"])

    monkeypatch.setattr(attention, "_xformers_attention", lambda: kernel)
    monkeypatch.setattr(attention, "_kernel_runs_on", lambda q: True)
    return calls


def test_xformers_branch_with_xformers_reference_equals_sdpa_on_cpu(xformers_reference_kernel):
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 6, 50, 64, generator=g) for _ in range(3))  # (batch, head, token, dim)
    fast = multi_head_attention(q, k, v, backend="xformers")
    torch.testing.assert_close(fast, multi_head_attention(q, k, v, backend="sdpa"), atol=2e-6, rtol=0)
    assert xformers_reference_kernel == [(2, 50, 6, 64)]  # BMHK: (batch, token, head, dim)
    # "auto" takes the kernel where it can run (here: the stand-in)
    multi_head_attention(q, k, v, backend="auto")
    assert len(xformers_reference_kernel) == 2


@pytest.mark.parametrize("size", ["vits", "vitb"])
def test_dinov2_features_with_the_xformers_reference_equal_sdpa_on_cpu(xformers_reference_kernel, size):
    """The whole ViT (deterministic weights) of both DepthSplat monocular backbones, every
    attention layer on the xformers branch: the features equal the SDPA ones to float32 rounding.
    (MVSplat has no xformers path: upstream imports it only for a cross-attention block that the
    released configs never build.)"""
    from depthsplat.vit import build_dinov2
    from depthsplat.vit.dinov2 import SelfAttention
    from splatcore.testing.parity import apply_deterministic_weights

    vit = build_dinov2(size)
    apply_deterministic_weights(vit, 0)
    vit = vit.eval()
    images = torch.rand(1, 3, 28, 42, generator=torch.Generator().manual_seed(3))
    layers = [m for m in vit.modules() if isinstance(m, SelfAttention)]
    outputs = {}
    with torch.no_grad():
        for backend in ("xformers", "sdpa"):
            vit.set_attention_backend(backend)
            outputs[backend] = vit.get_intermediate_layers(images)
    assert len(xformers_reference_kernel) == len(layers) == 12
    for fast, reference in zip(outputs["xformers"], outputs["sdpa"]):
        assert (fast - reference).abs().max().item() <= 1e-4 * reference.abs().max().item()


def test_offset_modes():
    raw = torch.linspace(-6, 6, 13)[:, None].expand(13, 2)
    torch.testing.assert_close(pixel_offsets(raw, "ori", 0.5), 1 / (1 + torch.exp(-raw)) - 0.5)
    torch.testing.assert_close(pixel_offsets(raw, "origin", 0.5), pixel_offsets(raw, "ori", 0.5))
    torch.testing.assert_close(pixel_offsets(raw, "pixel", 0.5), torch.tanh(raw) * 0.25)
    torch.testing.assert_close(pixel_offsets(raw, "unconstrained", 0.5), raw * 0.5)
    assert pixel_offsets(raw, "ori", 0.5).abs().max() < 0.5
    with pytest.raises(DepthSplatError, match="offset_mode"):
        pixel_offsets(raw, "free", 0.5)


@pytest.mark.parametrize("nearest_n", [None, 2, 3, 10])
def test_nearest_view_partners_match_brute_force(nearest_n):
    g = torch.Generator().manual_seed(3)
    extrinsics = torch.eye(4).repeat(2, 5, 1, 1)
    extrinsics[..., :3, 3] = torch.randn(2, 5, 3, generator=g)
    partners = nearest_view_partners(extrinsics, nearest_n)
    keep = 4 if nearest_n is None else min(nearest_n, 5) - 1
    assert partners.shape == (2, 5, keep)
    centres = extrinsics[..., :3, 3].numpy()
    for b in range(2):
        for v in range(5):
            others = [j for j in range(5) if j != v]  # no restriction: increasing view index
            if nearest_n is not None:  # restriction: camera-distance order
                others.sort(key=lambda j: np.linalg.norm(centres[b, v] - centres[b, j]))
            assert partners[b, v].tolist() == others[:keep]
    with pytest.raises(DepthSplatError):
        nearest_view_partners(extrinsics, 1)


def test_config_validation_and_upstream_config_loading(shared_dir):
    with pytest.raises(DepthSplatError, match="offset_mode"):
        EncoderDepthSplatCfg(offset_mode="free")
    with pytest.raises(DepthSplatError, match="lowest_feature_resolution"):
        EncoderDepthSplatCfg(num_scales=2, upsample_factor=4, lowest_feature_resolution=4)
    upstream = json.loads((shared_dir / "parity/depthsplat/config.json").read_text())["encoder_config"]
    assert EncoderDepthSplatCfg.from_dict(upstream) == preset_dl3dv_base(monodepth_vit_type="vits")


def _tiny_context(b=1, v=2, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    extrinsics = torch.eye(4).repeat(b, v, 1, 1)
    extrinsics[..., 0, 3] = torch.linspace(-0.3, 0.3, v)
    intrinsics = torch.tensor([[0.9, 0, 0.5], [0, 0.9, 0.5], [0, 0, 1.0]]).repeat(b, v, 1, 1)
    return {
        "image": torch.rand(b, v, 3, h, w, generator=g),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
        "near": torch.full((b, v), 1.0),
        "far": torch.full((b, v), 100.0),
    }


@pytest.fixture(scope="module")
def tiny_encoder():
    torch.manual_seed(0)
    encoder = EncoderDepthSplat(preset_cpu_tiny(num_scales=1))
    with torch.no_grad():  # non-zero heads so that every output depends on the weights
        for p in encoder.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return encoder


def test_training_stacks_intermediate_depths_before_the_final_one(tiny_encoder):
    context = _tiny_context(b=2)
    with torch.no_grad():
        tiny_encoder.train()
        dump: dict = {}
        train = tiny_encoder(context, 0, visualization_dump=dump)
        tiny_encoder.eval()
        final = tiny_encoder(context, 0)
    k = 2  # one cost-volume scale + the DPT-refined depth
    assert train["depths"].shape == (2 * k, 2, 32, 32)
    assert train["gaussians"].means.shape == (2 * k, 2 * 32 * 32, 3)
    torch.testing.assert_close(train["depths"][-2:], final["depths"])
    torch.testing.assert_close(train["gaussians"].means[-2:], final["gaussians"].means)
    torch.testing.assert_close(train["gaussians"].harmonics[:2], final["gaussians"].harmonics)  # shared colour head
    assert not torch.allclose(train["depths"][:2], train["depths"][-2:])
    # means lie at distance `depth` from the camera centre along unit rays, for every stack
    centres = context["extrinsics"][..., :3, 3].repeat(k, 1, 1)
    distance = (train["gaussians"].means.reshape(2 * k, 2, -1, 3) - centres[:, :, None]).norm(dim=-1)
    torch.testing.assert_close(distance, train["depths"].reshape(2 * k, 2, -1), rtol=1e-5, atol=1e-5)
    # scale activation min(exp(raw - 4), 0.3): positive and capped
    assert dump["scales"].min() > 0 and dump["scales"].max() <= 0.3 + 1e-7
    assert (dump["depth"][..., 0, 0] == train["depths"]).all()


def test_depth_stays_in_the_near_far_range_and_sizes_are_checked(tiny_encoder):
    tiny_encoder.eval()
    with torch.no_grad():
        depths = tiny_encoder(_tiny_context(), 0)["depths"]
    assert depths.min() >= 1.0 - 1e-4 and depths.max() <= 100.0 * (1 + 1e-4)
    with pytest.raises(DepthSplatError, match="divisible by 32"):
        tiny_encoder(_tiny_context(h=48, w=32), 0)
    bad = _tiny_context()
    bad["near"] = bad["far"] * 2
    with pytest.raises(DepthSplatError, match="near"):
        tiny_encoder(bad, 0)


def test_data_shim_crops_to_multiples_of_16(tiny_encoder):
    context = _tiny_context(h=40, w=52)
    batch = {"context": context, "target": _tiny_context(h=40, w=52)}
    shimmed = tiny_encoder.get_data_shim()(batch)
    assert shimmed["context"]["image"].shape[-2:] == (32, 48)
