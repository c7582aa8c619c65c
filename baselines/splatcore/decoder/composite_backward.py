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
T_{k-1} saved by the forward pass; alpha is recomputed. The suffix sums S_k use a float64
cumulative sum over the pairs sorted by pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int64
from torch import Tensor

ALPHA_CAP = 0.99


@dataclass
class CompositedPairs:
    """The composited (pixel, Gaussian) pairs of a forward pass, sorted by pixel and, within a
    pixel, front to back.

    pixel_ids: (pair,) flat pixel id image * H * W + y * W + x.
    gaussian_ids: (pair,) flat Gaussian id image * N + gaussian.
    transmittance_before: (pair,) T_{k-1} of the pair.
    """

    pixel_ids: Int64[Tensor, " pair"]
    gaussian_ids: Int64[Tensor, " pair"]
    transmittance_before: Float[Tensor, " pair"]


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
    d_means = torch.zeros_like(means2d)
    d_conics = torch.zeros_like(conics)
    d_opacities = torch.zeros_like(opacities)
    d_features = torch.zeros_like(features)
    pix, gid, before = pairs.pixel_ids, pairs.gaussian_ids, pairs.transmittance_before
    if pix.numel() == 0:
        return d_means, d_conics, d_opacities, d_features

    dtype = means2d.dtype
    mean = means2d[gid]
    conic = conics[gid]
    in_image = pix % (height * width)
    dx = mean[:, 0] - ((in_image % width).to(dtype) + 0.5)
    dy = mean[:, 1] - ((in_image // width).to(dtype) + 0.5)
    a, b, c = conic[:, 0], conic[:, 1], conic[:, 2]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    gauss = torch.exp(-sigma)
    raw = opacities[gid] * gauss
    uncapped = raw <= ALPHA_CAP
    alpha = torch.clamp_max(raw, ALPHA_CAP)

    grad_pixel = grad_features[pix]  # (pair, channel)
    g = (grad_pixel * features[gid]).sum(-1) + grad_alpha[pix]
    weight = alpha * before

    # Suffix sums within each pixel's run: S_k = (sum over the run up to its end) - (up to k).
    running = torch.cumsum((weight * g).double(), 0)
    _, run_lengths = torch.unique_consecutive(pix, return_counts=True)
    run_ends = torch.repeat_interleave(torch.cumsum(run_lengths, 0) - 1, run_lengths)
    later = (running[run_ends] - running).to(dtype)
    suffix = later + (final_transmittance * grad_transmittance)[pix]
    d_alpha = before * g - suffix / (1.0 - alpha)

    zero = torch.zeros_like(d_alpha)
    d_opacity_pair = torch.where(uncapped, d_alpha * gauss, zero)
    d_sigma = torch.where(uncapped, -d_alpha * raw, zero)
    d_opacities.index_add_(0, gid, d_opacity_pair)
    d_means.index_add_(
        0, gid, d_sigma[:, None] * torch.stack((a * dx + b * dy, b * dx + c * dy), dim=-1)
    )
    d_conics.index_add_(
        0, gid, d_sigma[:, None] * torch.stack((0.5 * dx * dx, dx * dy, 0.5 * dy * dy), dim=-1)
    )
    d_features.index_add_(0, gid, weight[:, None] * grad_pixel)
    return d_means, d_conics, d_opacities, d_features
