"""The multi-view transformer's cross-attention with several partner views (V >= 3) against a
brute-force float64 reference written directly from the prose of
../shared/reference/upstream-facts.md (MVSplat, multi-view transformer):

    Inside a window the keys are laid out token-major, partner-minor: key position j = t*m + p is
    in-window token t (row-major) of partner slot p, m = number of partners. Scores are scaled by
    1/sqrt(C). The shifted-window mask [windows, T, T] is added tiled m times along the key axis as
    whole blocks, so key position j gets mask column (j mod T).

The reference below uses explicit Python loops over windows, query tokens and key positions, and
its own Swin region labels (not ``shifted_window_mask``). It also builds the textbook variant
(key (t, p) masked as token t) to show that the two differ, so the comparison is not vacuous."""

from __future__ import annotations

import math

import pytest
import torch

from splatcore.nn import MultiViewTransformer, shifted_window_mask, window_attention


def _band(index: int, size: int, window: int, shift: int) -> int:
    """Swin region band of a position of the rolled map along one axis."""
    if index < size - window:
        return 0
    return 1 if index < size - shift else 2


def reference_window_attention(q, k, v, splits: int, shifted: bool, quirk: bool = True):
    """q (h, w, c); k, v (m, h, w, c); float64. Loops only."""
    h, w, c = q.shape
    m = k.shape[0]
    win_h, win_w = h // splits, w // splits
    shift_h, shift_w = (win_h // 2, win_w // 2) if shifted else (0, 0)
    if shifted:
        q = torch.roll(q, (-shift_h, -shift_w), (0, 1))
        k = torch.roll(k, (-shift_h, -shift_w), (1, 2))
        v = torch.roll(v, (-shift_h, -shift_w), (1, 2))
    out = torch.empty_like(q)
    for wr in range(splits):
        for wc in range(splits):
            coords = [(wr * win_h + i, wc * win_w + j) for i in range(win_h) for j in range(win_w)]
            tokens = len(coords)
            labels = [3 * _band(i, h, win_h, shift_h) + _band(j, w, win_w, shift_w) for i, j in coords]

            def mask(a: int, b: int) -> float:
                return 0.0 if not shifted or labels[a] == labels[b] else -100.0

            for a, (qi, qj) in enumerate(coords):
                scores, values = [], []
                for j in range(tokens * m):
                    t, p = divmod(j, m)  # token-major, partner-minor
                    ki, kj = coords[t]
                    score = float(q[qi, qj] @ k[p, ki, kj]) / math.sqrt(c)
                    score += mask(a, j % tokens) if quirk else mask(a, t)
                    scores.append(score)
                    values.append(v[p, ki, kj])
                weights = torch.softmax(torch.tensor(scores, dtype=torch.float64), dim=0)
                out[qi, qj] = sum(wgt * val for wgt, val in zip(weights, values))
    if shifted:
        out = torch.roll(out, (shift_h, shift_w), (0, 1))
    return out


@pytest.mark.parametrize(("partners", "height", "width"), [(2, 8, 12), (3, 8, 8), (1, 8, 12)])
def test_cross_attention_mask_rule_matches_brute_force(rng, partners, height, width):
    c = 4
    q = torch.randn(1, height, width, c, generator=rng, dtype=torch.float64)
    k = torch.randn(1, partners, height, width, c, generator=rng, dtype=torch.float64)
    v = torch.randn(1, partners, height, width, c, generator=rng, dtype=torch.float64)
    for shifted in (False, True):
        out = window_attention(q, k, v, num_splits=2, with_shift=shifted)
        expected = reference_window_attention(q[0], k[0], v[0], 2, shifted)
        torch.testing.assert_close(out[0], expected, rtol=1e-10, atol=1e-10)
    textbook = reference_window_attention(q[0], k[0], v[0], 2, True, quirk=False)
    difference = float((out[0] - textbook).abs().max())
    if partners == 1:
        assert difference < 1e-10  # one partner: upstream's mask is the textbook Swin mask
    else:
        assert difference > 1e-2  # several partners: upstream's rule is not the textbook mask


def test_quirky_mask_differs_where_upstream_facts_says():
    """Fraction of mask entries that differ from the textbook mask, for m = 2 on a 16x16 map
    (8x8 windows, T = 64): none in the top-left window, half in the two edge windows and 37.5 %
    in the corner window (upstream-facts: "about half" / "~37 %")."""
    mask = shifted_window_mask(16, 16, 2)  # (4, T, T)
    tokens = mask.shape[-1]
    m = 2
    keys = torch.arange(tokens * m)
    quirky = mask.repeat(1, 1, m)  # column j -> mask[..., j mod T]
    textbook = mask[:, :, keys // m]  # key j = (t, p) -> mask[..., t]
    fractions = (quirky != textbook).double().mean(dim=(1, 2))
    assert fractions.tolist() == [0.0, 0.5, 0.5, 0.375]


def test_transformer_uses_partner_block_inputs_in_increasing_view_order(rng):
    """One block at V = 3, assembled by hand: self-attention on each view, then cross-attention
    whose keys/values are the partners' block *inputs* (other views in increasing index), the
    merge + LayerNorm, the FFN on concat(source, message), with the brute-force mask rule."""
    torch.manual_seed(3)
    model = MultiViewTransformer(num_layers=2, d_model=8, ffn_expansion=2).double().eval().requires_grad_(False)
    x = torch.randn(1, 3, 8, 4, 8, generator=rng, dtype=torch.float64)
    out = model(x, num_splits=2)
    views = x[0].permute(0, 2, 3, 1)  # (v, h, w, c)
    for index, block in enumerate(model.layers):
        shifted = index % 2 == 1
        new_views = []
        for view in range(3):
            source = views[view]
            attn = block.self_attn
            message = reference_window_attention(
                attn.q_proj(source), attn.k_proj(source)[None], attn.v_proj(source)[None], 2, shifted
            )
            source = source + attn.norm1(attn.merge(message))
            cross = block.cross_attn_ffn
            others = torch.stack([views[j] for j in range(3) if j != view])
            message = reference_window_attention(cross.q_proj(source), cross.k_proj(others), cross.v_proj(others), 2, shifted)
            message = cross.norm1(cross.merge(message))
            message = cross.norm2(cross.mlp(torch.cat((source, message), dim=-1)))
            new_views.append(source + message)
        views = torch.stack(new_views)
    torch.testing.assert_close(out[0], views.permute(0, 3, 1, 2), rtol=1e-9, atol=1e-9)
