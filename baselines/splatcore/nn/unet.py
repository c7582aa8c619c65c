"""LDM-style U-Net with cross-view attention (MVSplat's cost-volume / depth-refinement U-Nets and
DepthSplat's U-Nets). Parameter names follow the upstream checkpoints.

Layout for ``channel_mult = (m_0, ..., m_{L-1})`` and ``num_res_blocks = R``::

    input_blocks.0        : conv3x3 in_channels -> model_channels
    per level l           : R x [ResBlock(-> m_l * model_channels) (+ AttentionBlock if 2**l in
                            attention_resolutions)], then Downsample (``op``, conv3x3 stride 2)
                            except after the last level
    middle_block          : ResBlock, (no-parameter identity), ResBlock
    output_blocks         : levels in reverse, R + 1 x [ResBlock on concat(h, skip)
                            (+ AttentionBlock)], an Upsample (nearest x2 + ``conv``) after each
                            level except the first
    out                   : conv3x3 + GroupNorm + SiLU (post-norm) or GroupNorm + SiLU + conv3x3
                            (pre-norm), -> out_channels

ResBlock (no time embedding): ``skip_connection(x) + out_layers(in_layers(x))`` where
  post-norm (MVSplat): in_layers = [conv3x3, GN, SiLU], out_layers = [conv3x3, GN, SiLU, Dropout];
  pre-norm (DepthSplat): in_layers = [GN, SiLU, conv3x3], out_layers = [GN, SiLU, Dropout, conv3x3];
  skip_connection = identity, or a 1x1 conv when the channel count changes.

AttentionBlock: multi-head self-attention (``num_head_channels`` per head; heads split from the
fused ``qkv`` projection head-major, softmax in float32, q and k each scaled by ch**-1/4). With
``cross_view_attention`` the tokens of ``num_views`` consecutive batch entries are concatenated so
every view attends to all views of its group. Post-norm: ``x + norm(proj_out(attn(qkv(x))))``;
pre-norm: ``x + proj_out(attn(qkv(norm(x))))``; the GroupNorm statistics are always per view
(post-norm variant and per-view statistics verified against the MVSplat parity tensors; the
pre-norm variant's norm placement follows the same per-view rule).

GroupNorm: 8 groups, 4 when the channels are not a multiple of 8, computed in float32; the U-Net
casts its input to float32. ``num_views`` can be changed with ``set_num_views``.

Batch layout: entries are grouped as consecutive runs of ``num_views`` (``(b v)`` order). MVSplat
feeds its U-Nets in ``(v b)`` order (an upstream quirk that mixes batch elements when B > 1); the
caller decides the layout, this module only groups consecutive entries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ..errors import ConfigError, InputError
from .norms import group_norm


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """Residual block without time embedding; see the module docstring."""

    def __init__(self, channels: int, out_channels: int, pre_norm: bool, dropout: float = 0.0):
        super().__init__()
        if pre_norm:
            self.in_layers = nn.Sequential(group_norm(channels), nn.SiLU(), _conv3x3(channels, out_channels))
            self.out_layers = nn.Sequential(
                group_norm(out_channels), nn.SiLU(), nn.Dropout(dropout), _conv3x3(out_channels, out_channels)
            )
        else:
            self.in_layers = nn.Sequential(_conv3x3(channels, out_channels), group_norm(out_channels), nn.SiLU())
            self.out_layers = nn.Sequential(
                _conv3x3(out_channels, out_channels), group_norm(out_channels), nn.SiLU(), nn.Dropout(dropout)
            )
        self.skip_connection = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Float[Tensor, "batch c_in h w"]) -> Float[Tensor, "batch c_out h w"]:
        return self.skip_connection(x) + self.out_layers(self.in_layers(x))


def multi_head_attention(
    qkv: Float[Tensor, "batch three_channels tokens"], num_heads: int
) -> Float[Tensor, "batch channels tokens"]:
    """Attention over the fused projections, heads split head-major: channel layout of ``qkv`` is
    [head][q, k, v][head_channels]. Softmax in float32; q and k are each scaled by ch**-1/4."""
    b, width, length = qkv.shape
    head_channels = width // (3 * num_heads)
    q, k, v = qkv.reshape(b * num_heads, 3 * head_channels, length).split(head_channels, dim=1)
    scale = 1 / math.sqrt(math.sqrt(head_channels))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weight = torch.softmax(weight.to(torch.promote_types(weight.dtype, torch.float32)), dim=-1).type(weight.dtype)
    out = torch.einsum("bts,bcs->bct", weight, v)
    return out.reshape(b, num_heads * head_channels, length)


class AttentionBlock(nn.Module):
    """Spatial (optionally cross-view) self-attention; see the module docstring."""

    def __init__(
        self,
        channels: int,
        num_head_channels: int,
        pre_norm: bool,
        num_views: int = 1,
        cross_view_attention: bool = True,
    ):
        super().__init__()
        if channels % num_head_channels:
            raise ConfigError(
                f"AttentionBlock channels ({channels}) must be a multiple of num_head_channels ({num_head_channels}); "
                "choose a U-Net width that is a multiple of it."
            )
        self.num_heads = channels // num_head_channels
        self.pre_norm = pre_norm
        self.num_views = num_views
        self.cross_view_attention = cross_view_attention
        # Registration order = upstream state-dict order (post-norm: qkv, proj_out, norm;
        # pre-norm: qkv, norm, proj_out).
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        if pre_norm:
            self.norm = group_norm(channels)
            self.proj_out = nn.Conv1d(channels, channels, 1)
        else:
            self.proj_out = nn.Conv1d(channels, channels, 1)
            self.norm = group_norm(channels)

    def forward(self, x: Float[Tensor, "batch channel h w"]) -> Float[Tensor, "batch channel h w"]:
        n, c, h, w = x.shape
        groups = self.num_views if self.cross_view_attention else 1
        if n % groups:
            raise InputError(
                f"Cross-view attention groups {groups} views, but the batch has {n} entries; "
                "call set_num_views with the real number of views."
            )
        tokens = x.reshape(n, c, h * w)
        attention_in = self.norm(tokens) if self.pre_norm else tokens
        # Concatenate the tokens of each group of views: (n, c, l) -> (n / g, c, g * l).
        joint = attention_in.reshape(n // groups, groups, c, h * w).permute(0, 2, 1, 3).reshape(n // groups, c, -1)
        message = self.proj_out(multi_head_attention(self.qkv(joint), self.num_heads))
        message = message.reshape(n // groups, c, groups, h * w).permute(0, 2, 1, 3).reshape(n, c, h * w)
        # GroupNorm statistics are per view (per batch entry), never over the joined tokens.
        out = tokens + message if self.pre_norm else tokens + self.norm(message)
        return out.reshape(n, c, h, w)


class Downsample(nn.Module):
    """Stride-2 3x3 conv (parameter name ``op``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = _conv3x3(channels, channels, stride=2)

    def forward(self, x: Float[Tensor, "batch channel h w"]) -> Float[Tensor, "batch channel h2 w2"]:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 conv (parameter name ``conv``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = _conv3x3(channels, channels)

    def forward(self, x: Float[Tensor, "batch channel h w"]) -> Float[Tensor, "batch channel h2 w2"]:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    """LDM-style U-Net over (views x batch) feature maps.

    Args:
        in_channels, model_channels, out_channels: widths of the input, the base level and output.
        num_res_blocks: ResBlocks per level on the way down (one more on the way up).
        attention_resolutions: downsampling factors (1, 2, 4, ...) at which AttentionBlocks follow
            the ResBlocks.
        channel_mult: width multiplier per level; len(channel_mult) - 1 downsamplings, so inputs
            must be divisible by 2 ** (len(channel_mult) - 1).
        num_head_channels: channels per attention head.
        pre_norm: False = MVSplat post-norm blocks, True = DepthSplat pre-norm blocks.
        num_views: views per group for the cross-view attention (see ``set_num_views``).
        cross_view_attention: attend across the views of a group (True in both baselines).
        dropout: dropout probability inside the ResBlocks (0 upstream).
    """

    def __init__(
        self,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int = 1,
        attention_resolutions: Sequence[int] = (),
        channel_mult: Sequence[int] = (1,),
        num_head_channels: int = 32,
        pre_norm: bool = False,
        num_views: int = 2,
        cross_view_attention: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        if num_views < 1:
            raise ConfigError(f"num_views must be >= 1, got {num_views}.")
        self.num_levels = len(channel_mult)
        self.pre_norm = pre_norm

        def attention(channels: int) -> AttentionBlock:
            return AttentionBlock(channels, num_head_channels, pre_norm, num_views, cross_view_attention)

        self.input_blocks = nn.ModuleList([nn.Sequential(_conv3x3(in_channels, model_channels))])
        skip_channels = [model_channels]
        channels = model_channels
        downsample = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [ResBlock(channels, mult * model_channels, pre_norm, dropout)]
                channels = mult * model_channels
                if downsample in attention_resolutions:
                    layers.append(attention(channels))
                self.input_blocks.append(nn.Sequential(*layers))
                skip_channels.append(channels)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(nn.Sequential(Downsample(channels)))
                skip_channels.append(channels)
                downsample *= 2
        self.middle_block = nn.Sequential(
            ResBlock(channels, channels, pre_norm, dropout), nn.Identity(), ResBlock(channels, channels, pre_norm, dropout)
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for index in range(num_res_blocks + 1):
                skip = skip_channels.pop()
                layers = [ResBlock(channels + skip, mult * model_channels, pre_norm, dropout)]
                channels = mult * model_channels
                if downsample in attention_resolutions:
                    layers.append(attention(channels))
                if level and index == num_res_blocks:
                    layers.append(Upsample(channels))
                    downsample //= 2
                self.output_blocks.append(nn.Sequential(*layers))
        if pre_norm:
            self.out = nn.Sequential(group_norm(channels), nn.SiLU(), _conv3x3(channels, out_channels))
        else:
            self.out = nn.Sequential(_conv3x3(channels, out_channels), group_norm(out_channels), nn.SiLU())

    def set_num_views(self, num_views: int) -> None:
        """Change the number of views grouped by the cross-view attention blocks."""
        if num_views < 1:
            raise ConfigError(f"num_views must be >= 1, got {num_views}.")
        for module in self.modules():
            if isinstance(module, AttentionBlock):
                module.num_views = num_views

    def forward(self, x: Float[Tensor, "batch c_in height width"]) -> Float[Tensor, "batch c_out height width"]:
        factor = 2 ** (self.num_levels - 1)
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise InputError(
                f"This U-Net downsamples {self.num_levels - 1} times, so its input size must be a "
                f"multiple of {factor}; got {tuple(x.shape[-2:])}."
            )
        # Upstream casts the input to float32; a float64 module (tests) keeps float64.
        h = x.to(torch.promote_types(torch.float32, self.input_blocks[0][0].weight.dtype))
        skips = []
        for block in self.input_blocks:
            h = block(h)
            skips.append(h)
        h = self.middle_block(h)
        for block in self.output_blocks:
            h = block(torch.cat((h, skips.pop()), dim=1))
        return self.out(h.type(x.dtype))
