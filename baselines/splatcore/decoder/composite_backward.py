"""Analytic backward pass of the front-to-back alpha compositing (pure PyTorch).

Per pixel, let k = 1..n run over the *composited* Gaussians in front-to-back order (those with
alpha_k >= 1/255, sigma_k >= 0, before the early stop), T_{k-1} the transmittance in front of k,
w_k = alpha_k T_{k-1}, and the outputs F = sum_k w_k f_k, A = sum_k w_k, T = T_n. With incoming
gradients gF (channel,), gA, gT of the pixel and g_k = gF . f_k + gA:

    dL/df_k     = w_k gF
    dL/dalpha_k = T_{k-1} g_k - S_k / (1 - alpha_k),   S_k = sum_{j > k} w_j g_j + T_n gT

(every later weight and T_n carry the factor (1 - alpha_k)). Through
alpha = min(0.99, o exp(-sigma)) (zero gradient where the cap is active, as ``torch.clamp_max``)
and sigma = 0.5 (a dx^2 + c dy^2) + b dx dy, (dx, dy) = mean2d - pixel centre, this gives the
gradients of the means, conics, opacities and features; they are summed per Gaussian.

Only the composited (pixel, Gaussian) pairs are needed, in front-to-back order per pixel, with
T_{k-1} and o exp(-sigma) saved by the forward pass. The forward pass stores the pairs block
by block (front to back), each block as one run per pixel in depth order; the suffix sums S_k are
float64 cumulative sums within runs plus, for pixels with runs in several blocks, the totals of
their later runs (a stable sort of the runs, not of the pairs, by pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int64
from torch import Tensor

ALPHA_CAP = 0.99


@dataclass
class CompositedPairs:
    """The composited (pixel, Gaussian) pairs of a forward pass, in blocks: within a block each
    pixel has one contiguous run of pairs in front-to-back order, and a pixel's runs in several
    blocks come in front-to-back block order.

    pixel_ids: (pair,) flat pixel id image * H * W + y * W + x.
    gaussian_ids: (pair,) flat Gaussian id image * N + gaussian.
    transmittance_before: (pair,) T_{k-1} of the pair.
    raw_alpha: (pair,) o exp(-sigma) of the pair, before the 0.99 cap.
    multi_block: whether some pixel may have runs in more than one block.
    """

    pixel_ids: Int64[Tensor, " pair"]
    gaussian_ids: Int64[Tensor, " pair"]
    transmittance_before: Float[Tensor, " pair"]
    raw_alpha: Float[Tensor, " pair"]
    multi_block: bool


def composite_backward(
    pairs: CompositedPairs,
    means2d: Float[Tensor, "flat 2"],
    conics: Float[Tensor, "flat 3"],
    opacities: Float[Tensor, " flat"],
    features: Float[Tensor, "flat channel"],
    final_transmittance: Float[Tensor, " pixel"],
    grad_features: Float[Tensor, "pixel channel"],
    grad_alpha: Float[Tensor, " pixel"],
    grad_transmittance: Float[Tensor, " pixel"],
    width: int,
    height: int,
) -> tuple[
    Float[Tensor, "flat 2"], Float[Tensor, "flat 3"], Float[Tensor, " flat"], Float[Tensor, "flat channel"]
]:
    """Gradients w.r.t. (means2d, conics, opacities, features), all flat over image x Gaussian;
    pixels are flat image * H * W + y * W + x with centres at (x + 0.5, y + 0.5)."""
    flat_count, channels = features.shape
    pix, gid, before = pairs.pixel_ids, pairs.gaussian_ids, pairs.transmittance_before
    if pix.numel() == 0:
        return (torch.zeros_like(means2d), torch.zeros_like(conics), torch.zeros_like(opacities),
                torch.zeros_like(features))

    dtype = means2d.dtype
    # Column-major tables (elementwise work on contiguous columns is several times faster than
    # on strided ones): Gaussian rows mean x, y, opacity, features; pixel rows
    # grad features, grad alpha, T_final * grad T, pixel centre x, y.
    gaussian_rows = torch.cat((means2d, opacities[:, None], features), dim=-1).T.contiguous()
    num_pixels = final_transmittance.shape[0]
    centres = torch.arange(max(width, height), device=gid.device, dtype=dtype) + 0.5
    pixel_rows = torch.cat(
        (
            grad_features,
            grad_alpha[:, None],
            (final_transmittance * grad_transmittance)[:, None],
            centres[:width].repeat(num_pixels // width)[:, None],  # pixel centre x
            centres[:height].repeat_interleave(width).repeat(num_pixels // (height * width))[:, None],
        ),
        dim=-1,
    ).T.contiguous()
    g_cols = [row.index_select(0, gid) for row in gaussian_rows]
    p_cols = [row.index_select(0, pix) for row in pixel_rows]
    dx = g_cols[0] - p_cols[channels + 2]
    dy = g_cols[1] - p_cols[channels + 3]
    opacity, raw = g_cols[2], pairs.raw_alpha
    uncapped = raw <= ALPHA_CAP
    alpha = torch.clamp_max(raw, ALPHA_CAP)

    g = p_cols[channels]
    for channel in range(channels):
        g = g + p_cols[channel] * g_cols[3 + channel]
    weight = alpha * before

    later = _later_sums(pairs, weight * g).to(dtype)
    d_alpha = before * g - (later + p_cols[channels + 1]) / (1.0 - alpha)

    d_raw = d_alpha * uncapped.to(dtype)  # w.r.t. o exp(-sigma): clamp_max passes no gradient
    d_sigma = -d_raw * raw
    d_sigma_dx = d_sigma * dx
    d_sigma_dy = d_sigma * dy
    # Per-pair factors whose per-Gaussian sums give every gradient (a, b, c are per Gaussian).
    d_pairs = (
        d_sigma_dx,
        d_sigma_dy,
        d_sigma_dx * dx,
        d_sigma_dx * dy,
        d_sigma_dy * dy,
        d_raw * raw / opacity,  # d alpha / d o = exp(-sigma)
        *(weight * p_cols[channel] for channel in range(channels)),
    )
    sums = torch.zeros(6 + channels, flat_count, device=d_sigma.device, dtype=dtype)
    for index, d_pair in enumerate(d_pairs):
        sums[index].index_add_(0, gid, d_pair)
    a, b, c = conics.unbind(-1)
    d_means = torch.stack((a * sums[0] + b * sums[1], b * sums[0] + c * sums[1]), dim=-1)
    d_conics = torch.stack((0.5 * sums[2], sums[3], 0.5 * sums[4]), dim=-1)
    return d_means, d_conics, sums[5], sums[6:].T


def _later_sums(pairs: CompositedPairs, values: Float[Tensor, " pair"]) -> Float[Tensor, " pair"]:
    """Per pair, the float64 sum of ``values`` over the later pairs of the same pixel."""
    pix = pairs.pixel_ids
    count = pix.numel()
    running = torch.cumsum(values.double(), 0)
    new_run = torch.ones(count, dtype=torch.bool, device=pix.device)
    new_run[1:] = pix[1:] != pix[:-1]
    run_starts = torch.nonzero(new_run, as_tuple=False)[:, 0]
    run_ids = torch.cumsum(new_run, 0) - 1
    run_ends = torch.cat((run_starts[1:], run_starts.new_tensor([count]))) - 1
    run_end_total = running.index_select(0, run_ends)
    later = run_end_total.index_select(0, run_ids) - running
    if pairs.multi_block:
        # Totals of the runs, then for each run the sum over the same pixel's later runs.
        before_run = running.index_select(0, run_starts) - values.double().index_select(0, run_starts)
        run_totals = run_end_total - before_run
        order = torch.sort(pix.index_select(0, run_starts), stable=True)
        sorted_totals = torch.cumsum(run_totals.index_select(0, order.indices), 0)
        _, lengths = torch.unique_consecutive(order.values, return_counts=True)
        ends = torch.repeat_interleave(torch.cumsum(lengths, 0) - 1, lengths)
        later_runs = torch.empty_like(run_totals)
        later_runs[order.indices] = sorted_totals.index_select(0, ends) - sorted_totals
        later = later + later_runs.index_select(0, run_ids)
    return later
