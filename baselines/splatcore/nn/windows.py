"""Window partitioning for the Swin-style attention of the multi-view transformer.

A map of size H x W is cut into num_splits x num_splits windows of (H / s) x (W / s); windows are
ordered batch-major, then window row, then window column.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import InputError


def _check_divisible(height: int, width: int, num_splits: int) -> None:
    if height % num_splits or width % num_splits:
        raise InputError(
            f"A {height}x{width} feature map cannot be cut into {num_splits}x{num_splits} windows; "
            f"use an image size whose feature map is divisible by {num_splits}."
        )


def split_windows(
    x: Float[Tensor, "batch channel height width"], num_splits: int
) -> Float[Tensor, "batch_windows channel win_h win_w"]:
    """Channel-first split: (B, C, H, W) -> (B * s * s, C, H / s, W / s)."""
    b, c, h, w = x.shape
    _check_divisible(h, w, num_splits)
    s = num_splits
    x = x.reshape(b, c, s, h // s, s, w // s).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * s * s, c, h // s, w // s)


def merge_windows(
    x: Float[Tensor, "batch_windows channel win_h win_w"], num_splits: int
) -> Float[Tensor, "batch channel height width"]:
    """Inverse of ``split_windows``."""
    bw, c, hs, ws = x.shape
    s = num_splits
    b = bw // (s * s)
    x = x.reshape(b, s, s, c, hs, ws).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, s * hs, s * ws)


def split_windows_last(
    x: Float[Tensor, "*batch height width channel"], num_splits: int
) -> Float[Tensor, "*batch windows win_tokens channel"]:
    """Channel-last split into token lists: (..., H, W, C) -> (..., s * s, (H / s) * (W / s), C)."""
    *lead, h, w, c = x.shape
    _check_divisible(h, w, num_splits)
    s = num_splits
    x = x.reshape(*lead, s, h // s, s, w // s, c)
    n = len(lead)
    x = x.permute(*range(n), n, n + 2, n + 1, n + 3, n + 4)
    return x.reshape(*lead, s * s, (h // s) * (w // s), c)


def merge_windows_last(
    x: Float[Tensor, "*batch windows win_tokens channel"], num_splits: int, height: int, width: int
) -> Float[Tensor, "*batch height width channel"]:
    """Inverse of ``split_windows_last``."""
    *lead, _, _, c = x.shape
    s = num_splits
    n = len(lead)
    x = x.reshape(*lead, s, s, height // s, width // s, c)
    x = x.permute(*range(n), n, n + 2, n + 1, n + 3, n + 4)
    return x.reshape(*lead, height, width, c)


def shifted_window_mask(
    height: int, width: int, num_splits: int, device: torch.device | str | None = None
) -> Float[Tensor, "windows win_tokens win_tokens"]:
    """Swin attention mask for windows shifted by half a window: 0 between tokens that came from
    the same region of the un-shifted map, -100 otherwise."""
    _check_divisible(height, width, num_splits)
    win_h, win_w = height // num_splits, width // num_splits
    shift_h, shift_w = win_h // 2, win_w // 2
    labels = torch.zeros(height, width, device=device)
    row_bounds = (0, height - win_h, height - shift_h, height)
    col_bounds = (0, width - win_w, width - shift_w, width)
    label = 0
    for r in range(3):
        for c in range(3):
            labels[row_bounds[r] : row_bounds[r + 1], col_bounds[c] : col_bounds[c + 1]] = label
            label += 1
    windows = split_windows_last(labels[..., None], num_splits)[..., 0]  # (s*s, tokens)
    different = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(different.shape, device=device).masked_fill(different, -100.0)
