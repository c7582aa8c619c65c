"""Frozen copy of the previous splatcore torch rasteriser (before the analytic-backward rewrite),
kept only as the in-run speed reference of benchmarks/bench_render.py. Not used by the library."""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int64
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from splatcore.decoder.projection import ALPHA_THRESHOLD

ALPHA_CAP = 0.99
TRANSMITTANCE_STOP = 1e-4


def _tile_pairs(
    means2d: Float[Tensor, "image gaussian 2"],
    radius: Float[Tensor, "image gaussian 2"],
    depths: Float[Tensor, "image gaussian"],
    visible: Bool[Tensor, "image gaussian"],
    tile_size: int,
    tiles_h: int,
    tiles_w: int,
) -> tuple[Int64[Tensor, " pair"], Int64[Tensor, " pair"]]:
    """All (global tile id, flat Gaussian id) overlaps, sorted by tile then depth then Gaussian.

    Global tile ids are image * tiles_h * tiles_w + row * tiles_w + column; flat Gaussian ids are
    image * N + gaussian.
    """
    num_images, num_gaussians = depths.shape
    device = depths.device
    flat_ids = torch.nonzero(visible.reshape(-1), as_tuple=False)[:, 0]
    if flat_ids.numel() == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty
    centre = means2d.detach().reshape(-1, 2)[flat_ids]
    half = radius.reshape(-1, 2)[flat_ids]
    x0 = torch.floor((centre[:, 0] - half[:, 0]) / tile_size).clamp(0, tiles_w - 1).long()
    x1 = torch.floor((centre[:, 0] + half[:, 0]) / tile_size).clamp(0, tiles_w - 1).long()
    y0 = torch.floor((centre[:, 1] - half[:, 1]) / tile_size).clamp(0, tiles_h - 1).long()
    y1 = torch.floor((centre[:, 1] + half[:, 1]) / tile_size).clamp(0, tiles_h - 1).long()
    span_x = x1 - x0 + 1
    counts = span_x * (y1 - y0 + 1)
    owner = torch.repeat_interleave(torch.arange(flat_ids.numel(), device=device), counts)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(owner.numel(), device=device) - starts[owner]
    tile_x = x0[owner] + local % span_x[owner]
    tile_y = y0[owner] + local // span_x[owner]
    image = flat_ids[owner] // num_gaussians
    tile_ids = image * (tiles_h * tiles_w) + tile_y * tiles_w + tile_x
    gaussian_ids = flat_ids[owner]

    # Depth rank of every flat Gaussian (stable: equal depths keep index order), then one sort
    # on tile * (number of ranks) + rank.
    depth_order = torch.sort(depths.detach().reshape(-1), stable=True).indices
    rank = torch.empty_like(depth_order)
    rank[depth_order] = torch.arange(depth_order.numel(), device=device)
    key = tile_ids * depth_order.numel() + rank[gaussian_ids]
    order = torch.sort(key).indices
    return tile_ids[order], gaussian_ids[order]


def _composite_block(
    transmittance: Float[Tensor, "tile pixel"],
    done: Bool[Tensor, "tile pixel"],
    pixels: Float[Tensor, "tile pixel 2"],
    means2d: Float[Tensor, "tile k 2"],
    conics: Float[Tensor, "tile k 3"],
    opacities: Float[Tensor, "tile k"],
    features: Float[Tensor, "tile k channel"],
    present: Bool[Tensor, "tile k"],
) -> tuple[
    Float[Tensor, "tile pixel channel"],
    Float[Tensor, "tile pixel"],
    Float[Tensor, "tile pixel"],
    Bool[Tensor, "tile pixel"],
]:
    """Composite one depth-sorted block of Gaussians over a group of tiles.

    Returns (sum w f, sum w, transmittance after the block, done after the block).
    """
    dx = means2d[:, None, :, 0] - pixels[:, :, None, 0]
    dy = means2d[:, None, :, 1] - pixels[:, :, None, 1]
    a = conics[:, None, :, 0]
    b = conics[:, None, :, 1]
    c = conics[:, None, :, 2]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp_max(opacities[:, None, :] * torch.exp(-sigma), ALPHA_CAP)
    counted = present[:, None, :] & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    alpha = torch.where(counted, alpha, torch.zeros_like(alpha))
    running = torch.cumprod(torch.cat((transmittance[..., None], 1.0 - alpha), dim=-1), dim=-1)
    before = running[..., :-1]
    after = running[..., 1:]
    kept = (after >= TRANSMITTANCE_STOP) & ~done[..., None]
    weights = torch.where(kept, alpha * before, torch.zeros_like(alpha))
    feature_sum = torch.einsum("tpk,tkc->tpc", weights, features)
    num_kept = kept.sum(dim=-1)
    transmittance_out = running.gather(-1, num_kept[..., None])[..., 0]
    done_out = done | (num_kept < alpha.shape[-1])
    return feature_sum, weights.sum(dim=-1), transmittance_out, done_out


def rasterize_torch(
    means2d: Float[Tensor, "image gaussian 2"],
    conics: Float[Tensor, "image gaussian 3"],
    opacities: Float[Tensor, "image gaussian"],
    features: Float[Tensor, "image gaussian channel"],
    depths: Float[Tensor, "image gaussian"],
    radius: Float[Tensor, "image gaussian 2"],
    visible: Bool[Tensor, "image gaussian"],
    image_shape: tuple[int, int],
    tile_size: int = 16,
    max_chunk_elements: int = 1 << 22,
    use_checkpoint: bool = True,
) -> tuple[
    Float[Tensor, "image height width channel"],
    Float[Tensor, "image height width"],
    Float[Tensor, "image height width"],
]:
    """Composite per-image Gaussians. Returns (sum_k w_k f_k without background (I, H, W, C),
    accumulated alpha sum_k w_k (I, H, W), final transmittance T (I, H, W)); the caller adds
    T * background. sum_k w_k = 1 - T up to rounding."""
    height, width = image_shape
    num_images, num_gaussians, channels = features.shape
    device, dtype = features.device, features.dtype
    tiles_h = -(-height // tile_size)
    tiles_w = -(-width // tile_size)
    num_tiles = num_images * tiles_h * tiles_w
    pixels_per_tile = tile_size * tile_size

    tile_ids, gaussian_ids = _tile_pairs(
        means2d, radius, depths, visible, tile_size, tiles_h, tiles_w
    )
    counts = torch.bincount(tile_ids, minlength=num_tiles)
    offsets = torch.cumsum(counts, 0) - counts
    busy = torch.nonzero(counts > 0, as_tuple=False)[:, 0]
    busy = busy[torch.sort(counts[busy], descending=True, stable=True).indices]
    busy_counts = counts[busy].tolist()

    flat_means2d = means2d.reshape(-1, 2)
    flat_conics = conics.reshape(-1, 3)
    flat_opacities = opacities.reshape(-1)
    flat_features = features.reshape(-1, channels)
    local = torch.arange(tile_size, device=device, dtype=dtype) + 0.5
    local_y, local_x = torch.meshgrid(local, local, indexing="ij")
    local_pixels = torch.stack((local_x.reshape(-1), local_y.reshape(-1)), dim=-1)  # (P, 2)

    feature_tiles = torch.zeros(num_tiles, pixels_per_tile, channels, device=device, dtype=dtype)
    alpha_tiles = torch.zeros(num_tiles, pixels_per_tile, device=device, dtype=dtype)
    transmittance_tiles = torch.ones(num_tiles, pixels_per_tile, device=device, dtype=dtype)
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (means2d, conics, opacities, features)
    )
    start = 0
    while start < len(busy_counts):
        largest = busy_counts[start]
        block_k = max(1, min(largest, max_chunk_elements // pixels_per_tile))
        group_size = max(1, max_chunk_elements // (pixels_per_tile * block_k))
        group = busy[start : start + group_size]
        start += group_size
        group_counts = counts[group]
        within_image = group % (tiles_h * tiles_w)
        origin = torch.stack(
            ((within_image % tiles_w) * tile_size, (within_image // tiles_w) * tile_size), dim=-1
        ).to(dtype)
        pixels = origin[:, None, :] + local_pixels[None]
        transmittance = torch.ones(group.numel(), pixels_per_tile, device=device, dtype=dtype)
        done = torch.zeros(group.numel(), pixels_per_tile, device=device, dtype=torch.bool)
        feature_acc = torch.zeros(group.numel(), pixels_per_tile, channels, device=device, dtype=dtype)
        alpha_acc = torch.zeros(group.numel(), pixels_per_tile, device=device, dtype=dtype)
        for first in range(0, largest, block_k):
            position = first + torch.arange(block_k, device=device)
            present = position[None, :] < group_counts[:, None]
            pair_index = (offsets[group, None] + position[None, :]).clamp_max(tile_ids.numel() - 1)
            ids = gaussian_ids[pair_index]
            inputs = (
                transmittance,
                done,
                pixels,
                flat_means2d[ids],
                flat_conics[ids],
                flat_opacities[ids],
                flat_features[ids],
                present,
            )
            if needs_grad and use_checkpoint:
                block = checkpoint(_composite_block, *inputs, use_reentrant=False)
            else:
                block = _composite_block(*inputs)
            feature_sum, alpha_sum, transmittance, done = block
            feature_acc = feature_acc + feature_sum
            alpha_acc = alpha_acc + alpha_sum
            if bool(done.all()):
                break
        feature_tiles = feature_tiles.index_copy(0, group, feature_acc)
        alpha_tiles = alpha_tiles.index_copy(0, group, alpha_acc)
        transmittance_tiles = transmittance_tiles.index_copy(0, group, transmittance)

    def untile(tiles: Tensor) -> Tensor:
        grid = tiles.reshape(num_images, tiles_h, tiles_w, tile_size, tile_size, -1)
        grid = grid.permute(0, 1, 3, 2, 4, 5).reshape(
            num_images, tiles_h * tile_size, tiles_w * tile_size, -1
        )
        return grid[:, :height, :width]

    return (
        untile(feature_tiles),
        untile(alpha_tiles[..., None])[..., 0],
        untile(transmittance_tiles[..., None])[..., 0],
    )
