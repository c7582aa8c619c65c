"""Shared network blocks (splatcore.nn) against independent references: brute-force attention
loops, float64 formulas, analytic plane-sweep geometry and the upstream key layouts."""

from __future__ import annotations

import json
import math

import pytest
import torch

from splatcore.nn import (
    CNNBackbone,
    MultiViewTransformer,
    UNet,
    all_other_views,
    correlation,
    group_norm_groups,
    inverse_depth_candidates,
    merge_windows,
    pixel_intrinsics,
    relative_pose,
    shifted_window_mask,
    sine_position_encoding,
    split_windows,
    warp_with_depth_candidates,
    window_attention,
)
from splatcore.errors import InputError


def test_split_merge_windows_round_trip_and_order(rng):
    x = torch.randn(2, 3, 8, 12, generator=rng)
    windows = split_windows(x, 2)
    assert windows.shape == (8, 3, 4, 6)
    # window 1 of batch 0 = top-right quadrant, window 6 = batch 1 bottom-left.
    assert torch.equal(windows[1], x[0, :, :4, 6:])
    assert torch.equal(windows[6], x[1, :, 4:, :6])
    assert torch.equal(merge_windows(windows, 2), x)
    with pytest.raises(InputError, match="cannot be cut"):
        split_windows(torch.zeros(1, 1, 7, 8), 2)


def test_sine_position_encoding_matches_float64_formula():
    h, w, c = 5, 7, 16
    enc = sine_position_encoding(h, w, c).double()
    f = c // 2
    for i in range(h):
        for j in range(w):
            y = 2 * math.pi * (i + 1) / (h + 1e-6)
            x = 2 * math.pi * (j + 1) / (w + 1e-6)
            for k in range(f):
                dim_t = 10000 ** (2 * (k // 2) / f)
                trig = math.sin if k % 2 == 0 else math.cos
                assert abs(enc[k, i, j] - trig(y / dim_t)) < 1e-5
                assert abs(enc[f + k, i, j] - trig(x / dim_t)) < 1e-5


def _attention(q, k, v, bias=None):
    scores = q @ k.T / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    return torch.softmax(scores, dim=-1) @ v


def test_window_attention_unshifted_matches_per_window_loop(rng):
    b, p, h, w, c = 2, 2, 4, 6, 8
    q = torch.randn(b, h, w, c, generator=rng, dtype=torch.float64)
    k = torch.randn(b, p, h, w, c, generator=rng, dtype=torch.float64)
    v = torch.randn(b, p, h, w, c, generator=rng, dtype=torch.float64)
    out = window_attention(q, k, v, num_splits=2, with_shift=False)
    expected = torch.empty_like(q)
    for bi in range(b):
        for r in range(2):
            for s in range(2):
                rows, cols = slice(2 * r, 2 * r + 2), slice(3 * s, 3 * s + 3)
                qq = q[bi, rows, cols].reshape(-1, c)
                kk = k[bi, :, rows, cols].reshape(-1, c)
                vv = v[bi, :, rows, cols].reshape(-1, c)
                expected[bi, rows, cols] = _attention(qq, kk, vv).reshape(2, 3, c)
    torch.testing.assert_close(out, expected)
    # One split = global attention over all partner tokens.
    global_out = window_attention(q, k, v, num_splits=1, with_shift=False)
    torch.testing.assert_close(global_out[0].reshape(-1, c), _attention(q[0].reshape(-1, c), k[0].reshape(-1, c), v[0].reshape(-1, c)))


def test_shifted_window_attention_matches_rolled_masked_loop(rng):
    """Shifted windows: roll by half a window, attend inside windows only between tokens whose
    un-rolled positions lie in the same Swin region (mask -100), roll back."""
    h, w, c, s = 8, 8, 4, 2
    q = torch.randn(1, h, w, c, generator=rng, dtype=torch.float64)
    k = torch.randn(1, 1, h, w, c, generator=rng, dtype=torch.float64)
    v = torch.randn(1, 1, h, w, c, generator=rng, dtype=torch.float64)
    out = window_attention(q, k, v, num_splits=s, with_shift=True)
    win, shift = h // s, h // s // 2
    # Region label of each rolled position (Swin: three bands per axis on the rolled map).
    def band(index, size):
        return 0 if index < size - win else (1 if index < size - shift else 2)

    qr = torch.roll(q[0], (-shift, -shift), (0, 1))
    kr = torch.roll(k[0, 0], (-shift, -shift), (0, 1))
    vr = torch.roll(v[0, 0], (-shift, -shift), (0, 1))
    expected_rolled = torch.empty_like(qr)
    for r in range(s):
        for t in range(s):
            coords = [(i, j) for i in range(r * win, (r + 1) * win) for j in range(t * win, (t + 1) * win)]
            labels = torch.tensor([3 * band(i, h) + band(j, w) for i, j in coords])
            bias = torch.where(labels[:, None] == labels[None, :], 0.0, -100.0).double()
            qq = torch.stack([qr[i, j] for i, j in coords])
            kk = torch.stack([kr[i, j] for i, j in coords])
            vv = torch.stack([vr[i, j] for i, j in coords])
            result = _attention(qq, kk, vv, bias)
            for n, (i, j) in enumerate(coords):
                expected_rolled[i, j] = result[n]
    expected = torch.roll(expected_rolled, (shift, shift), (0, 1))
    torch.testing.assert_close(out[0], expected)
    mask = shifted_window_mask(h, w, s)
    assert mask.shape == (4, 16, 16) and set(mask.unique().tolist()) == {-100.0, 0.0}
    assert torch.equal(mask[0], torch.zeros(16, 16))  # the top-left window is one region


def test_multiview_transformer_view_permutation_follows_upstream(rng):
    """Where upstream's transformer is view-permutation-equivariant, and where it is not.

    Equivariant: with two views (one partner, the shifted-window mask is the textbook one) and with
    unshifted windows at any V (softmax over a set of keys does not care about their order).
    Not equivariant for V >= 3 with shifted windows: upstream lays the partners' keys out
    token-major / partner-minor and tiles the [T, T] mask along that axis as whole blocks, so which
    partner occupies which slot changes which keys are masked (../shared/reference/upstream-facts.md;
    the V = 3 parity set pins it). It *is* equivariant once the partner slot order is carried along:
    permuting the views and passing each view its old partners, in their old slot order, permutes
    the outputs."""
    torch.manual_seed(0)
    model = MultiViewTransformer(num_layers=2, d_model=16, ffn_expansion=2).double().eval()
    two = torch.randn(1, 2, 16, 4, 6, generator=rng, dtype=torch.float64)
    torch.testing.assert_close(model(two[:, [1, 0]], 2), model(two, 2)[:, [1, 0]])

    x = torch.randn(1, 3, 16, 4, 6, generator=rng, dtype=torch.float64)
    perm = [2, 0, 1]  # new view k = old view perm[k]
    torch.testing.assert_close(model(x[:, perm], num_splits=1), model(x, num_splits=1)[:, perm])
    out = model(x, num_splits=2)
    permuted = model(x[:, perm], num_splits=2)
    # Only the shifted layer's windows that straddle regions differ; the error is not rounding.
    assert (permuted - out[:, perm]).abs().max() > 1e-3
    inverse = [perm.index(old) for old in range(3)]
    carried = [[inverse[j] for j in all_other_views(3)[perm[k]]] for k in range(3)]
    torch.testing.assert_close(model(x[:, perm], 2, partners=carried), out[:, perm])
    # Default partners = every other view in increasing index; slot order matters for V >= 3.
    torch.testing.assert_close(model(x, 2, partners=[[1, 2], [0, 2], [0, 1]]), out)
    assert (model(x, 2, partners=[[2, 1], [2, 0], [1, 0]]) - out).abs().max() > 1e-3
    assert not torch.allclose(model(x, 2, partners=[[0], [1], [2]]), out)
    with pytest.raises(InputError, match="same, non-zero number"):
        model(x, 2, partners=[[1, 2], [0], [0, 1]])


def test_cnn_backbone_strides_and_stages(rng):
    quarter = CNNBackbone(layer_strides=(1, 2, 1))
    eighth = CNNBackbone(layer_strides=(1, 2, 2))
    images = torch.randn(2, 3, 32, 48, generator=rng)
    assert quarter(images).shape == (2, 128, 8, 12) and quarter.downscale_factor == 4
    final, stages = eighth.forward_stages(images)
    assert final.shape == (2, 128, 4, 6) and eighth.downscale_factor == 8
    assert [tuple(s.shape[1:]) for s in stages] == [(64, 16, 24), (96, 8, 12), (128, 4, 6)]
    # InstanceNorm without affine parameters: no norm keys at all.
    assert not any("norm" in key for key in quarter.state_dict())


def test_inverse_depth_candidates_uniform_in_disparity():
    near, far = torch.tensor([1.0, 2.0]), torch.tensor([100.0, 10.0])
    candidates = inverse_depth_candidates(near, far, 5).double()
    expected = torch.stack([torch.linspace(1 / 100, 1.0, 5), torch.linspace(1 / 10, 1 / 2, 5)]).double()
    torch.testing.assert_close(candidates, expected, rtol=0, atol=1e-7)
    with pytest.raises(InputError, match="near < far"):
        inverse_depth_candidates(far, near, 5)


def test_plane_sweep_warp_matches_analytic_translation(rng):
    """Other camera translated by +t along x (c2w), fronto-parallel plane at depth z: a reference
    pixel x lands at x - fx t / z in the other view; with integer shifts the warp is exact."""
    c, h, w = 3, 6, 10
    features = torch.randn(1, c, h, w, generator=rng, dtype=torch.float64)
    k = pixel_intrinsics(torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.8, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64), h, w)
    assert torch.allclose(k, torch.tensor([[5.0, 0, 5], [0, 4.8, 3], [0, 0, 1]], dtype=torch.float64))
    reference_c2w = torch.eye(4, dtype=torch.float64)
    other_c2w = torch.eye(4, dtype=torch.float64)
    other_c2w[0, 3] = 0.4
    pose = relative_pose(reference_c2w, other_c2w)
    depths = torch.tensor([1.0, 2.0], dtype=torch.float64).reshape(1, 2, 1, 1).expand(1, 2, h, w)
    warped = warp_with_depth_candidates(features, k[None], pose[None], depths)
    for d, shift in ((0, 2), (1, 1)):  # fx t / z = 5 * 0.4 / 1 = 2 px, / 2 = 1 px
        torch.testing.assert_close(warped[0, :, d, :, shift:], features[0, :, :, : w - shift])
        assert torch.equal(warped[0, :, d, :, :shift], torch.zeros(c, h, shift))  # zero padding
    corr = correlation(features, warped)
    torch.testing.assert_close(corr[0, 0, :, 2:], (features[0, :, :, 2:] * features[0, :, :, :-2]).sum(0) / math.sqrt(c))


def test_unet_keys_match_upstream_layouts(shared_dir):
    """Post-norm U-Net names/shapes = MVSplat's cost-volume U-Net; pre-norm = DepthSplat's."""
    mv = json.loads((shared_dir / "parity/mvsplat/state_dict_keys.json").read_text())["keys"]
    prefix = "depth_predictor.corr_refine_net.3."
    expected = [(e["name"].removeprefix(prefix), e["shape"]) for e in mv if e["name"].startswith(prefix)]
    unet = UNet(128, 128, 128, 1, (4,), (1, 1, 1), 32, pre_norm=False, num_views=2)
    assert [(k, list(v.shape)) for k, v in unet.state_dict().items()] == expected
    ds = json.loads((shared_dir / "parity/depthsplat/state_dict_keys.json").read_text())["keys"]
    prefix = "depth_predictor.regressor.0.3."
    expected = [(e["name"].removeprefix(prefix), e["shape"]) for e in ds if e["name"].startswith(prefix)]
    unet = UNet(128, 128, 128, 1, (4,), (1, 1, 1), 32, pre_norm=True, num_views=2)
    assert [(k, list(v.shape)) for k, v in unet.state_dict().items()] == expected


@pytest.mark.parametrize("pre_norm", [False, True])
def test_unet_cross_view_attention_groups_consecutive_views(rng, pre_norm):
    torch.manual_seed(1)
    unet = UNet(8, 16, 8, 1, (2,), (1, 2), num_head_channels=8, pre_norm=pre_norm, num_views=2).double().eval()
    x = torch.randn(4, 8, 8, 8, generator=rng, dtype=torch.float64)
    out = unet(x)
    # Groups (0, 1) and (2, 3) are independent: running them separately changes nothing.
    torch.testing.assert_close(torch.cat((unet(x[:2]), unet(x[2:]))), out)
    # Within a group the views interact: changing view 1 changes view 0's output.
    x2 = x.clone()
    x2[1] += 1
    assert not torch.allclose(unet(x2)[0], out[0])
    # Swapping the two views of a group swaps the outputs (permutation equivariance).
    torch.testing.assert_close(unet(x[[1, 0, 3, 2]]), out[[1, 0, 3, 2]])
    unet.set_num_views(1)
    torch.testing.assert_close(unet(x2)[0], unet(x[:1])[0])
    with pytest.raises(InputError, match="multiple of 2"):
        unet(torch.zeros(1, 8, 7, 8, dtype=torch.float64))


def test_group_norm_rule():
    assert group_norm_groups(128) == 8 and group_norm_groups(36) == 4
