"""DETR-style sine position encoding, added per attention window (UniMatch / MVSplat / DepthSplat).

For an h x w grid and F = channels / 2 frequencies per axis, row i and column j get the normalised
coordinates y = 2 pi (i + 1) / (h + 1e-6), x = 2 pi (j + 1) / (w + 1e-6); with
dim_t[k] = 10000 ** (2 floor(k / 2) / F) the encoding of a coordinate u is
[sin(u / dim_t[0]), cos(u / dim_t[1]), sin(u / dim_t[2]), cos(u / dim_t[3]), ...] (F values), and the
channels are [encoding(y), encoding(x)]. Everything is computed in float32, as upstream does.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import ConfigError
from .windows import merge_windows, split_windows


def sine_position_encoding(
    height: int,
    width: int,
    channels: int,
    temperature: float = 10000.0,
    device: torch.device | str | None = None,
) -> Float[Tensor, "channels height width"]:
    """The (channels, height, width) encoding described in the module docstring."""
    if channels % 4:
        raise ConfigError(f"Sine position encoding needs channels divisible by 4, got {channels}.")
    frequencies = channels // 2
    scale = 2 * math.pi
    eps = 1e-6
    rows = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    cols = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y = rows / (float(height) + eps) * scale
    x = cols / (float(width) + eps) * scale
    k = torch.arange(frequencies, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / frequencies)

    def encode(u: Tensor) -> Tensor:  # (n,) -> (n, frequencies)
        phases = u[:, None] / dim_t
        return torch.stack((phases[:, 0::2].sin(), phases[:, 1::2].cos()), dim=-1).flatten(1)

    enc_y = encode(y)[:, None, :].expand(height, width, frequencies)
    enc_x = encode(x)[None, :, :].expand(height, width, frequencies)
    return torch.cat((enc_y, enc_x), dim=-1).permute(2, 0, 1).contiguous()


def add_window_position_encoding(
    features: Float[Tensor, "batch channel height width"], num_splits: int
) -> Float[Tensor, "batch channel height width"]:
    """Add the sine encoding of one window to every one of the num_splits x num_splits windows
    (with num_splits == 1: to the whole map)."""
    _, channels, height, width = features.shape
    if num_splits > 1:
        windows = split_windows(features, num_splits)
        encoding = sine_position_encoding(
            height // num_splits, width // num_splits, channels, device=features.device
        ).to(features.dtype)
        return merge_windows(windows + encoding, num_splits)
    encoding = sine_position_encoding(height, width, channels, device=features.device).to(features.dtype)
    return features + encoding
