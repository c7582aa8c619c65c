"""Exact, differentiable tile-based alpha compositing in pure PyTorch.

Per pixel p (centre at (j + 0.5, i + 0.5)) and per visible Gaussian k sorted front to back by
view-space depth (ties: lower Gaussian index first):

    sigma_k = 0.5 (a dx^2 + c dy^2) + b dx dy,  (dx, dy) = mean2d_k - p
    alpha_k = min(0.99, o_k exp(-sigma_k)),     skipped (alpha_k := 0) if sigma_k < 0 or
                                                alpha_k < 1/255
    T_0 = 1,  T_k = T_{k-1} (1 - alpha_k)
    the first Gaussian whose T_k would fall below 1e-4 is *not* composited and compositing stops
    (the upstream rule ``if (T * (1 - alpha) < 0.0001) { done = true; continue; }``)
    w_k = alpha_k T_{k-1} for the composited Gaussians, 0 afterwards
    features = sum_k w_k f_k,  alpha = sum_k w_k,  T_final = T after the last composited one.

Forward (no autograd graph): pixels are grouped in square tiles (``tiling``); each tile only sees
the Gaussians whose exact footprint box overlaps it. Tiles with similar numbers of Gaussians are
processed together as dense (tile, pixel, Gaussian) blocks of at most ``max_chunk_elements``
entries, front to back with a running transmittance (one cumulative product per block, since
"composited" is exactly the prefix with T_k >= 1e-4); a finished pixel continues with T = 0 and a
tile whose pixels are all finished leaves its group. When gradients are needed the forward pass
keeps only the composited (pixel, Gaussian) pairs, their T_{k-1} and o exp(-sigma); the backward pass
(``composite_backward``) is analytic, as in the CUDA rasterisers, and never revisits the dense
blocks. Memory: O(block) in the forward; 24 bytes (float32) per composited pair saved for the
backward, which needs about ten times that while it runs. The early stop bounds the pairs at
about ln(1e4) / -ln(1 - 1/255) ~ 2350 per pixel; scenes like a trained model's have a few dozen.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from torch.autograd.function import once_differentiable

from .composite_backward import ALPHA_CAP, CompositedPairs, composite_backward
from .projection import ALPHA_THRESHOLD
from .tiling import TileBins, bin_gaussians

TRANSMITTANCE_STOP = 1e-4
# Gaussians per dense block along the depth axis: small enough that groups whose pixels all stop
# early skip most of their Gaussians, large enough to keep the Python loop short.
DEPTH_BLOCK = 64
# A group of tiles is padded to its largest Gaussian count; start a new group below this ratio.
GROUP_COUNT_RATIO = 0.8

__all__ = ["ALPHA_CAP", "TRANSMITTANCE_STOP", "rasterize_torch"]


def pair_alpha(
    dx: Float[Tensor, "*#pair"],
    dy: Float[Tensor, "*#pair"],
    a: Float[Tensor, "*#pair"],
    b: Float[Tensor, "*#pair"],
    c: Float[Tensor, "*#pair"],
    opacity: Float[Tensor, "*#pair"],
) -> tuple[Float[Tensor, "..."], Float[Tensor, "..."]]:
    """(-sigma, o exp(-sigma)) with sigma = 0.5 (a dx^2 + c dy^2) + b dx dy, broadcasting; the
    negated coefficients are formed on the (small) per-Gaussian operands, not per pair."""
    power = (-0.5 * a * dx - b * dy) * dx + (-0.5 * c) * dy * dy
    return power, opacity * torch.exp(power)


def _forward_pass(
    means2d: Float[Tensor, "flat 2"],
    conics: Float[Tensor, "flat 3"],
    opacities: Float[Tensor, " flat"],
    features: Float[Tensor, "flat channel"],
    bins: TileBins,
    num_images: int,
    image_shape: tuple[int, int],
    tile_size: int,
    max_chunk_elements: int,
    keep_pairs: bool,
) -> tuple[
    Float[Tensor, "pixel channel"], Float[Tensor, " pixel"], Float[Tensor, " pixel"], CompositedPairs | None
]:
    """Dense tile-group compositing; outputs are flat over image * H * W (module docstring)."""
    height, width = image_shape
    channels = features.shape[-1]
    device, dtype = features.device, features.dtype
    tiles_h = -(-height // tile_size)
    tiles_w = -(-width // tile_size)
    pixels_per_tile = tile_size * tile_size
    num_pixels = num_images * height * width

    out_features = torch.zeros(num_pixels, channels, device=device, dtype=dtype)
    out_alpha = torch.zeros(num_pixels, device=device, dtype=dtype)
    out_transmittance = torch.ones(num_pixels, device=device, dtype=dtype)
    pair_pixels: list[Tensor] = []
    pair_gaussians: list[Tensor] = []
    pair_before: list[Tensor] = []
    pair_raw: list[Tensor] = []
    multi_block = False

    counts, offsets, gaussian_ids = bins.counts, bins.offsets, bins.gaussian_ids
    last_pair = max(gaussian_ids.numel() - 1, 0)
    busy = torch.nonzero(counts > 0, as_tuple=False)[:, 0]
    busy = busy[torch.sort(counts[busy], descending=True, stable=True).indices]
    busy_counts = counts[busy].tolist()
    negated = [-n for n in busy_counts]  # ascending, for bisect

    # Column-major Gaussian table (contiguous rows gather fast): mean x, mean y, conic a, b, c,
    # opacity, features.
    table = torch.cat((means2d, conics, opacities[:, None], features), dim=-1).T.contiguous()
    local = torch.arange(tile_size, device=device)
    local_y, local_x = (t.reshape(-1) for t in torch.meshgrid(local, local, indexing="ij"))
    start = 0
    while start < len(busy_counts):
        largest = busy_counts[start]
        block_k = max(1, min(largest, DEPTH_BLOCK, max_chunk_elements // pixels_per_tile))
        group_size = max(1, max_chunk_elements // (pixels_per_tile * block_k))
        similar_end = bisect_left(negated, -largest * GROUP_COUNT_RATIO)
        stop = max(start + 1, min(start + group_size, similar_end))
        group = busy[start:stop]
        start = stop
        num_group = group.numel()

        tile_counts = counts[group]
        tile_offsets = offsets[group]
        within = group % (tiles_h * tiles_w)
        x = (within % tiles_w)[:, None] * tile_size + local_x[None]  # (tile, pixel)
        y = (within // tiles_w)[:, None] * tile_size + local_y[None]
        inside = (x < width) & (y < height)
        pixel_ids = (group // (tiles_h * tiles_w))[:, None] * (height * width) + y * width + x
        centre_x = (x.to(dtype) + 0.5)[:, :, None]
        centre_y = (y.to(dtype) + 0.5)[:, :, None]

        # A pixel that is done (stopped, or outside the image) runs on with T = 0, so that every
        # later weight vanishes without masks; its true final T is kept in ``final``.
        transmittance = inside.to(dtype)
        final = torch.zeros_like(transmittance)
        feature_acc = torch.zeros(num_group, pixels_per_tile, channels, device=device, dtype=dtype)
        alpha_acc = torch.zeros(num_group, pixels_per_tile, device=device, dtype=dtype)
        blocks_with_pairs = 0

        def flush(which: Tensor | None) -> None:
            """Write the tiles ``which`` (indices into the current group; None = all)."""
            state = (inside, pixel_ids, feature_acc, alpha_acc, final, transmittance)
            if which is not None:
                state = tuple(t.index_select(0, which) for t in state)
            write, target, features_, alpha_, final_, transmittance_ = state
            write = torch.nonzero(write.reshape(-1), as_tuple=False)[:, 0]
            target = target.reshape(-1).index_select(0, write)
            out_features[target] = features_.reshape(-1, channels).index_select(0, write)
            out_alpha[target] = alpha_.reshape(-1).index_select(0, write)
            # Pixels still running (T > 0) end with their current T, stopped ones with ``final``.
            out_transmittance[target] = (final_ + transmittance_).reshape(-1).index_select(0, write)

        for first in range(0, largest, block_k):
            size = min(block_k, largest - first)
            live = tile_counts.numel()
            position = first + torch.arange(size, device=device)
            present = position[None, :] < tile_counts[:, None]  # (tile, k)
            pair_index = (tile_offsets[:, None] + position[None, :]).clamp_max(last_pair)
            ids = gaussian_ids.index_select(0, pair_index.reshape(-1))
            rows = table.index_select(1, ids).reshape(-1, live, 1, size)
            # Padding entries get opacity 0, hence alpha 0 < 1/255: never counted.
            power, raw = pair_alpha(
                rows[0] - centre_x, rows[1] - centre_y, rows[2], rows[3], rows[4], rows[5] * present[:, None, :]
            )  # (tile, pixel, k)
            alpha = torch.clamp_max(raw, ALPHA_CAP)
            counted = (alpha >= ALPHA_THRESHOLD) & (power <= 0)  # skipped if sigma < 0
            alpha = alpha * counted.to(dtype)
            running = torch.cumprod(torch.cat((transmittance[..., None], 1.0 - alpha), dim=-1), dim=-1)
            kept = running[..., 1:] >= TRANSMITTANCE_STOP  # False everywhere for done pixels (T = 0)
            weights = alpha * kept.to(dtype) * running[..., :-1]
            feature_acc = feature_acc + torch.bmm(weights, rows[6:, :, 0, :].permute(1, 2, 0))
            alpha_acc = alpha_acc + weights.sum(dim=-1)
            num_kept = kept.sum(dim=-1, dtype=torch.int32).long()
            after = running.gather(-1, num_kept[..., None])[..., 0]
            stopped = num_kept < size  # includes pixels done before (after = 0 for them)
            final = final + after * stopped
            transmittance = after * ~stopped
            if keep_pairs:
                flat = torch.nonzero((kept & counted).reshape(-1), as_tuple=False)[:, 0]
                if flat.numel() > 0:
                    blocks_with_pairs += 1
                    tile_pixel = flat // size
                    depth_k = flat - tile_pixel * size
                    pair_pixels.append(pixel_ids.reshape(-1).index_select(0, tile_pixel))
                    pair_gaussians.append(ids.index_select(0, (tile_pixel // pixels_per_tile) * size + depth_k))
                    pair_before.append(running.reshape(-1).index_select(0, tile_pixel * (size + 1) + depth_k))
                    pair_raw.append(raw.reshape(-1).index_select(0, flat))
            finished = ~(transmittance > 0).any(dim=1)
            if bool(finished.all()):
                break
            if bool(finished.any()):
                # Drop finished tiles from the rest of the group's blocks.
                flush(torch.nonzero(finished, as_tuple=False)[:, 0])
                alive = torch.nonzero(~finished, as_tuple=False)[:, 0]
                tile_counts, tile_offsets = tile_counts[alive], tile_offsets[alive]
                inside, pixel_ids = inside[alive], pixel_ids[alive]
                centre_x, centre_y = centre_x[alive], centre_y[alive]
                transmittance, final = transmittance[alive], final[alive]
                feature_acc, alpha_acc = feature_acc[alive], alpha_acc[alive]
        flush(None)
        multi_block = multi_block or blocks_with_pairs > 1

    pairs = None
    if keep_pairs:
        if pair_pixels:
            pixel_cat, gaussian_cat = torch.cat(pair_pixels), torch.cat(pair_gaussians)
            before_cat, raw_cat = torch.cat(pair_before), torch.cat(pair_raw)
        else:
            pixel_cat = gaussian_cat = torch.zeros(0, dtype=torch.int64, device=device)
            before_cat = raw_cat = torch.zeros(0, device=device, dtype=dtype)
        pairs = CompositedPairs(pixel_cat, gaussian_cat, before_cat, raw_cat, multi_block)
    return out_features, out_alpha, out_transmittance, pairs


class _Composite(torch.autograd.Function):
    """(means2d, conics, opacities, features) -> (features, alpha, T) per flat pixel."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        means2d: Tensor,
        conics: Tensor,
        opacities: Tensor,
        features: Tensor,
        bins: TileBins,
        geometry: tuple[int, tuple[int, int], int, int],
    ) -> tuple[Tensor, Tensor, Tensor]:
        num_images, image_shape, tile_size, max_chunk_elements = geometry
        out_features, out_alpha, out_transmittance, pairs = _forward_pass(
            means2d, conics, opacities, features, bins, num_images, image_shape, tile_size,
            max_chunk_elements, keep_pairs=any(ctx.needs_input_grad[:4]),
        )
        if pairs is not None:
            ctx.pairs = pairs
            ctx.image_shape = image_shape
            ctx.save_for_backward(means2d, conics, opacities, features, out_transmittance)
        return out_features, out_alpha, out_transmittance

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, grad_features: Tensor | None, grad_alpha: Tensor | None, grad_transmittance: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        means2d, conics, opacities, features, transmittance = ctx.saved_tensors
        height, width = ctx.image_shape
        num_pixels = transmittance.shape[0]
        if grad_features is None:
            grad_features = features.new_zeros(num_pixels, features.shape[-1])
        if grad_alpha is None:
            grad_alpha = transmittance.new_zeros(num_pixels)
        if grad_transmittance is None:
            grad_transmittance = transmittance.new_zeros(num_pixels)
        grads = composite_backward(
            ctx.pairs, means2d, conics, opacities, features, transmittance,
            grad_features, grad_alpha, grad_transmittance, width, height,
        )
        return (*grads, None, None)


def rasterize_torch(
    means2d: Float[Tensor, "image gaussian 2"],
    conics: Float[Tensor, "image gaussian 3"],
    opacities: Float[Tensor, "image gaussian"],
    features: Float[Tensor, "image gaussian channel"],
    depths: Float[Tensor, "image gaussian"],
    radius: Float[Tensor, "image gaussian 2"],
    visible: Bool[Tensor, "image gaussian"],
    image_shape: tuple[int, int],
    tile_size: int = 4,
    max_chunk_elements: int = 1 << 22,
    use_checkpoint: bool = True,
) -> tuple[
    Float[Tensor, "image height width channel"],
    Float[Tensor, "image height width"],
    Float[Tensor, "image height width"],
]:
    """Composite per-image Gaussians. Returns (sum_k w_k f_k without background (I, H, W, C),
    accumulated alpha sum_k w_k (I, H, W), final transmittance T (I, H, W)); the caller adds
    T * background. sum_k w_k = 1 - T up to rounding.

    ``tile_size`` (pixels per tile side) and ``max_chunk_elements`` (largest dense
    tile x pixel x Gaussian block) only trade speed for memory; results do not depend on them.
    ``use_checkpoint`` is accepted for compatibility and has no effect: the analytic backward
    never stores the dense blocks."""
    del use_checkpoint
    height, width = image_shape
    num_images, num_gaussians, channels = features.shape
    tiles_h = -(-height // tile_size)
    tiles_w = -(-width // tile_size)
    bins = bin_gaussians(
        means2d, radius, depths, visible, tile_size, tiles_h, tiles_w, conics, opacities, (height, width)
    )
    flat_features, flat_alpha, flat_transmittance = _Composite.apply(
        means2d.reshape(-1, 2),
        conics.reshape(-1, 3),
        opacities.reshape(-1),
        features.reshape(-1, channels),
        bins,
        (num_images, (height, width), tile_size, max_chunk_elements),
    )
    return (
        flat_features.reshape(num_images, height, width, channels),
        flat_alpha.reshape(num_images, height, width),
        flat_transmittance.reshape(num_images, height, width),
    )
