"""Multi-view Swin window transformer (UniMatch's feature transformer generalised to V views).

Each of ``num_layers`` blocks holds
  * ``self_attn``: single-head window self-attention, ``norm1(merge(attn))`` added to the input;
  * ``cross_attn_ffn``: single-head window cross-attention from a view to its attention partners
    (keys/values of all partners' windows concatenated), ``message = norm1(merge(attn))``, then the
    FFN on concat(source, message) (2C -> 2C * ffn_expansion -> C, GELU) and ``norm2``; the result
    is added to the source.
q/k/v/merge/MLP linears have no bias. Attention is softmax(q k^T / sqrt(C)) v inside
num_splits x num_splits windows; on odd layers the windows are shifted by half a window
(``torch.roll``) with the -100 Swin mask. The keys of a block's cross-attention are the partner
views' features at the block input (before that block's self-attention), as in UniMatch.

Partners: by default every view attends to all other views in increasing view index (MVSplat);
``partners`` can give, per view, the ordered list of views to attend to (DepthSplat's nearest-view
selection). All views must have the same number of partners m; partner *slot* p is the position in
that list. Cross-attention always takes this multi-view path, also for m = 1.

Upstream quirk reproduced on purpose (see ../shared/reference/upstream-facts.md, MVSplat
multi-view transformer): inside a window the m partners' keys are laid out **token-major,
partner-minor** (key position j = t * m + p for in-window token t, row-major, of partner slot p),
and on shifted layers the [windows, T, T] Swin mask is added **tiled m times along the key axis as
whole blocks**, so key position j receives mask column j mod T. Key (token t, partner p) is thus
masked as if it were token (t * m + p) mod T, not token t. For m = 1 (two views, self-attention)
this is the textbook Swin mask; for m >= 2 it is not, and it makes the transformer *not*
view-permutation-equivariant (which partner lands in which slot changes the mask). Upstream MVSplat
and DepthSplat checkpoints were trained with it, so it is kept, not "fixed".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..errors import InputError
from .windows import merge_windows_last, shifted_window_mask, split_windows_last


def window_attention(
    query: Float[Tensor, "batch height width channel"],
    key: Float[Tensor, "batch partner height width channel"],
    value: Float[Tensor, "batch partner height width channel"],
    num_splits: int,
    with_shift: bool,
) -> Float[Tensor, "batch height width channel"]:
    """Single-head attention inside windows; each query window attends to the same window of all
    ``partner`` maps (keys concatenated token-major, partner-minor). With ``with_shift`` the maps
    are rolled by half a window first (and back afterwards) and the Swin mask, tiled ``partner``
    times along the key axis as whole blocks, is added to the scores (upstream's rule, see the
    module docstring: for more than one partner it is not the textbook per-token mask)."""
    b, h, w, c = query.shape
    partners = key.shape[1]
    scale = c**0.5
    if num_splits > 1 and with_shift:
        shift = (-(h // num_splits // 2), -(w // num_splits // 2))
        query = torch.roll(query, shifts=shift, dims=(1, 2))
        key = torch.roll(key, shifts=shift, dims=(2, 3))
        value = torch.roll(value, shifts=shift, dims=(2, 3))
    if num_splits > 1:
        q = split_windows_last(query, num_splits)  # (b, n, t, c)
        # (b, p, n, t, c) -> (b, n, t, p, c) -> (b, n, t*p, c): key position j = t * p_count + p.
        k = split_windows_last(key, num_splits).permute(0, 2, 3, 1, 4).flatten(2, 3)
        v = split_windows_last(value, num_splits).permute(0, 2, 3, 1, 4).flatten(2, 3)
    else:
        q = query.reshape(b, 1, h * w, c)
        k = key.permute(0, 2, 3, 1, 4).reshape(b, 1, h * w * partners, c)
        v = value.permute(0, 2, 3, 1, 4).reshape(b, 1, h * w * partners, c)
    scores = q @ k.transpose(-1, -2) / scale  # (b, n, t, t*p)
    if num_splits > 1 and with_shift:
        mask = shifted_window_mask(h, w, num_splits, device=query.device).to(scores.dtype)
        # Upstream quirk (kept on purpose): the [n, T, T] mask is tiled as whole blocks along the
        # token-major key axis, so key position j = t * p_count + p gets mask column j mod T; it
        # equals the per-token Swin mask only for a single partner. Do not "fix".
        scores = scores + mask.repeat(1, 1, partners)
    out = torch.softmax(scores, dim=-1) @ v
    if num_splits > 1:
        out = merge_windows_last(out, num_splits, h, w)
        if with_shift:
            out = torch.roll(out, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    else:
        out = out.reshape(b, h, w, c)
    return out


class TransformerLayer(nn.Module):
    """One attention layer (optionally with the FFN); see the module docstring."""

    def __init__(self, d_model: int = 128, ffn_expansion: int = 4, with_ffn: bool = False):
        super().__init__()
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.merge = nn.Linear(d_model, d_model, bias=False)
        self.norm1 = nn.LayerNorm(d_model)
        self.with_ffn = with_ffn
        if with_ffn:
            hidden = 2 * d_model * ffn_expansion
            self.mlp = nn.Sequential(
                nn.Linear(2 * d_model, hidden, bias=False), nn.GELU(), nn.Linear(hidden, d_model, bias=False)
            )
            self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self,
        source: Float[Tensor, "batch height width channel"],
        target: Float[Tensor, "batch partner height width channel"],
        num_splits: int,
        with_shift: bool,
    ) -> Float[Tensor, "batch height width channel"]:
        message = window_attention(
            self.q_proj(source), self.k_proj(target), self.v_proj(target), num_splits, with_shift
        )
        message = self.norm1(self.merge(message))
        if self.with_ffn:
            message = self.norm2(self.mlp(torch.cat((source, message), dim=-1)))
        return source + message


class TransformerBlock(nn.Module):
    """Window self-attention followed by cross-attention + FFN."""

    def __init__(self, d_model: int = 128, ffn_expansion: int = 4):
        super().__init__()
        self.self_attn = TransformerLayer(d_model, ffn_expansion, with_ffn=False)
        self.cross_attn_ffn = TransformerLayer(d_model, ffn_expansion, with_ffn=True)

    def forward(
        self,
        source: Float[Tensor, "batch height width channel"],
        target: Float[Tensor, "batch partner height width channel"],
        num_splits: int,
        with_shift: bool,
    ) -> Float[Tensor, "batch height width channel"]:
        source = self.self_attn(source, source[:, None], num_splits, with_shift)
        return self.cross_attn_ffn(source, target, num_splits, with_shift)


def all_other_views(num_views: int) -> list[list[int]]:
    """Default partners: every view attends to every other view, in increasing order."""
    return [[j for j in range(num_views) if j != i] for i in range(num_views)]


class MultiViewTransformer(nn.Module):
    """Stack of ``num_layers`` ``TransformerBlock``s over V views (parameter names ``layers.<i>``).

    Args:
        num_layers: number of blocks (6 in MVSplat and DepthSplat).
        d_model: feature channels (single attention head of this width).
        ffn_expansion: FFN hidden width = 2 * d_model * ffn_expansion.
    """

    def __init__(self, num_layers: int = 6, d_model: int = 128, ffn_expansion: int = 4):
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList([TransformerBlock(d_model, ffn_expansion) for _ in range(num_layers)])

    def forward(
        self,
        features: Float[Tensor, "batch view channel height width"],
        num_splits: int,
        partners: Sequence[Sequence[int]] | None = None,
    ) -> Float[Tensor, "batch view channel height width"]:
        """Transform the features of all views jointly.

        Args:
            features: per-view feature maps (position encoding already added).
            num_splits: windows per axis (1 = global attention).
            partners: per view, the ordered indices of the views it cross-attends to (default: all
                others in increasing index, as upstream MVSplat). With two or more partners the
                order is not cosmetic: the list position is the partner slot of the upstream mask
                rule (module docstring), so pass partners in the order upstream uses.
        """
        b, v, c, h, w = features.shape
        if v < 2 and partners is None:
            raise InputError("The multi-view transformer needs at least 2 views.")
        partner_index = self._partner_index(partners if partners is not None else all_other_views(v), v)
        x = features.permute(0, 1, 3, 4, 2).reshape(b * v, h, w, c)  # channel-last, (b v) order
        for index, layer in enumerate(self.layers):
            per_view = x.reshape(b, v, h, w, c)
            target = per_view[:, partner_index.to(x.device)]  # (b, v, p, h, w, c)
            target = target.reshape(b * v, partner_index.shape[1], h, w, c)
            x = layer(x, target, num_splits, with_shift=num_splits > 1 and index % 2 == 1)
        return x.reshape(b, v, h, w, c).permute(0, 1, 4, 2, 3).contiguous()

    @staticmethod
    def _partner_index(partners: Sequence[Sequence[int]], num_views: int) -> Tensor:
        if len(partners) != num_views:
            raise InputError(f"partners has {len(partners)} entries for {num_views} views; give one list per view.")
        counts = {len(p) for p in partners}
        if len(counts) != 1 or 0 in counts:
            raise InputError(
                f"Every view needs the same, non-zero number of attention partners, got {[list(p) for p in partners]}."
            )
        for p in partners:
            if any(not 0 <= j < num_views for j in p):
                raise InputError(f"Partner indices must lie in [0, {num_views}), got {list(p)}.")
        return torch.tensor([list(p) for p in partners], dtype=torch.long)
