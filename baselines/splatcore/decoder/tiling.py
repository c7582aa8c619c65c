"""Tile binning for the pure-PyTorch rasteriser: which Gaussians may touch which square tile.

Images are split into ``tile_size`` x ``tile_size`` tiles; tile ``(row, col)`` of image ``i`` has the
global id ``i * tiles_h * tiles_w + row * tiles_w + col`` and covers the pixels
``x in [col * s, (col + 1) * s)``, ``y in [row * s, (row + 1) * s)`` (pixel centres at j + 0.5).
A Gaussian is binned into every tile that its footprint box (``projection.Projected.radius``,
exact for the 1/255 alpha threshold) overlaps and whose pixel centres its footprint ellipse
{sigma <= ln(255 o)} can reach: the minimum of sigma over the rectangle spanned by the tile's
pixel centres (zero if the mean lies inside, else the least of the four edge minima of the convex
quadratic, in closed form) must not exceed ln(255 o), with a small margin against rounding. At
every pixel of a dropped tile alpha < 1/255, so dropping only saves work. Flat Gaussian ids are
``image * N + gaussian``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int64
from torch import Tensor

from .projection import ALPHA_THRESHOLD


@dataclass
class TileBins:
    """Tile/Gaussian overlaps, sorted by tile, then view-space depth, then Gaussian index.

    gaussian_ids: (pair,) flat Gaussian id of each overlap, grouped by tile.
    counts: (tile,) number of overlaps of each global tile.
    offsets: (tile,) index of the first overlap of each tile in ``gaussian_ids``.
    """

    gaussian_ids: Int64[Tensor, " pair"]
    counts: Int64[Tensor, " tile"]
    offsets: Int64[Tensor, " tile"]


CULL_MARGIN = 1e-3


def _reaches_tile(
    mean: Float[Tensor, "pair 2"],
    conic: Float[Tensor, "pair 3"],
    opacity: Float[Tensor, " pair"],
    x_range: tuple[Float[Tensor, " pair"], Float[Tensor, " pair"]],
    y_range: tuple[Float[Tensor, " pair"], Float[Tensor, " pair"]],
) -> Bool[Tensor, " pair"]:
    """Whether min sigma over [x0, x1] x [y0, y1] (pixel-centre rectangle) <= ln(255 o), with
    margin; ``conic`` (a, b, c) must be positive definite (it is for visible Gaussians)."""
    a, b, c = conic.unbind(-1)
    mx, my = mean.unbind(-1)
    (x0, x1), (y0, y1) = x_range, y_range

    def sigma(dx: Tensor, dy: Tensor) -> Tensor:
        return 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy

    best = torch.full_like(a, float("inf"))
    for edge_x in (x0, x1):  # sigma along x = edge: minimal at y = my + b dx / c, clamped
        dx = mx - edge_x
        y = torch.maximum(torch.minimum(my + b * dx / c, y1), y0)
        best = torch.minimum(best, sigma(dx, my - y))
    for edge_y in (y0, y1):
        dy = my - edge_y
        x = torch.maximum(torch.minimum(mx + b * dy / a, x1), x0)
        best = torch.minimum(best, sigma(mx - x, dy))
    inside = (mx >= x0) & (mx <= x1) & (my >= y0) & (my <= y1)
    limit = torch.log(opacity.clamp_min(1e-30) / ALPHA_THRESHOLD)
    return inside | (best <= limit * (1.0 + CULL_MARGIN) + CULL_MARGIN)


def bin_gaussians(
    means2d: Float[Tensor, "image gaussian 2"],
    radius: Float[Tensor, "image gaussian 2"],
    depths: Float[Tensor, "image gaussian"],
    visible: Bool[Tensor, "image gaussian"],
    tile_size: int,
    tiles_h: int,
    tiles_w: int,
    conics: Float[Tensor, "image gaussian 3"] | None = None,
    opacities: Float[Tensor, "image gaussian"] | None = None,
    image_shape: tuple[int, int] | None = None,
) -> TileBins:
    """Bin the visible Gaussians of every image into tiles (module docstring); no gradient.
    Without ``conics``, ``opacities`` and ``image_shape`` only the footprint box is used."""
    num_images, num_gaussians = depths.shape
    num_tiles = num_images * tiles_h * tiles_w
    device = depths.device
    flat_ids = torch.nonzero(visible.reshape(-1), as_tuple=False)[:, 0]
    if flat_ids.numel() == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        zeros = torch.zeros(num_tiles, dtype=torch.int64, device=device)
        return TileBins(gaussian_ids=empty, counts=zeros, offsets=zeros)
    centre = means2d.detach().reshape(-1, 2)[flat_ids]
    half = radius.detach().reshape(-1, 2)[flat_ids]
    x0 = torch.floor((centre[:, 0] - half[:, 0]) / tile_size).clamp(0, tiles_w - 1).long()
    x1 = torch.floor((centre[:, 0] + half[:, 0]) / tile_size).clamp(0, tiles_w - 1).long()
    y0 = torch.floor((centre[:, 1] - half[:, 1]) / tile_size).clamp(0, tiles_h - 1).long()
    y1 = torch.floor((centre[:, 1] + half[:, 1]) / tile_size).clamp(0, tiles_h - 1).long()
    span_x = x1 - x0 + 1
    per_gaussian = span_x * (y1 - y0 + 1)
    owner = torch.repeat_interleave(torch.arange(flat_ids.numel(), device=device), per_gaussian)
    starts = torch.cumsum(per_gaussian, 0) - per_gaussian
    local = torch.arange(owner.numel(), device=device) - starts[owner]
    owner_span = span_x[owner]
    tile_x = x0[owner] + local % owner_span
    tile_y = y0[owner] + local // owner_span
    gaussian_ids = flat_ids[owner]
    if conics is not None and opacities is not None and image_shape is not None:
        height, width = image_shape
        x0 = (tile_x * tile_size).to(centre.dtype) + 0.5
        y0 = (tile_y * tile_size).to(centre.dtype) + 0.5
        x1 = torch.clamp_max(x0 + (tile_size - 1), width - 0.5)
        y1 = torch.clamp_max(y0 + (tile_size - 1), height - 0.5)
        with torch.no_grad():
            reach = _reaches_tile(
                centre[owner],
                conics.detach().reshape(-1, 3)[gaussian_ids],
                opacities.detach().reshape(-1)[gaussian_ids],
                (x0, x1),
                (y0, y1),
            )
        gaussian_ids, tile_x, tile_y = gaussian_ids[reach], tile_x[reach], tile_y[reach]
    tile_ids = (gaussian_ids // num_gaussians) * (tiles_h * tiles_w) + tile_y * tiles_w + tile_x

    # Depth rank of every flat Gaussian (stable: equal depths keep index order), then one sort
    # on tile * (number of ranks) + rank.
    depth_order = torch.sort(depths.detach().reshape(-1), stable=True).indices
    rank = torch.empty_like(depth_order)
    rank[depth_order] = torch.arange(depth_order.numel(), device=device)
    key = tile_ids * depth_order.numel() + rank[gaussian_ids]
    if num_tiles * depth_order.numel() < 2**31:
        key = key.to(torch.int32)  # sorts several times faster than int64 on CPU
    order = torch.sort(key).indices
    counts = torch.bincount(tile_ids, minlength=num_tiles)
    return TileBins(
        gaussian_ids=gaussian_ids[order], counts=counts, offsets=torch.cumsum(counts, 0) - counts
    )
