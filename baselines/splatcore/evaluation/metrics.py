"""PSNR, SSIM and LPIPS exactly as MVSplat / DepthSplat / PM-Loss compute them (upstream §5.3).

All functions take ground truth and prediction of shape (B, 3, H, W) with values nominally in
[0, 1] and return one value per image, shape (B,), on the input's device:

- PSNR: both images clipped to [0, 1], MSE over (c, h, w), ``-10 log10(MSE)`` (``+inf`` for
  identical images, as upstream).
- SSIM: ``skimage.metrics.structural_similarity(gt, pred, win_size=11, gaussian_weights=True,
  channel_axis=0, data_range=1.0)`` per image, on CPU NumPy float32; the prediction is **not**
  clipped (neither is the ground truth).
- LPIPS: VGG LPIPS v0.1 with ``normalize=True`` ([0, 1] -> [-1, 1]), not clipped. Needs weight
  files (see :mod:`splatcore.evaluation.lpips`); raises MissingWeightsError when they are
  missing -- the caller decides whether to report the metric as unavailable. It is never 0 by
  default.

:func:`image_metrics` gives the three as the evaluation loop and the training/validation logs use
them (LPIPS left out, with :func:`lpips_unavailable_reason` saying why, when its weights are
missing). Scores are then averaged per scene and over scenes by
:class:`splatcore.evaluation.ScoreBook`.
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np
import torch
from jaxtyping import Float
from skimage.metrics import structural_similarity
from torch import Tensor

from ..errors import InputError
from .lpips import LPIPS, find_lpips_weights, lpips_availability

__all__ = [
    "LPIPS",
    "compute_lpips",
    "compute_psnr",
    "compute_ssim",
    "get_lpips",
    "image_metrics",
    "lpips_availability",
    "lpips_unavailable_reason",
]

log = logging.getLogger(__name__)

_LPIPS_CACHE: dict[tuple[str, str, str], LPIPS] = {}


def _check_pair(gt: Tensor, pred: Tensor, name: str) -> None:
    if gt.shape != pred.shape:
        raise InputError(
            f"{name}: ground truth {tuple(gt.shape)} and prediction {tuple(pred.shape)} must "
            "have the same shape (B, 3, H, W)."
        )
    if not (torch.isfinite(gt).all() and torch.isfinite(pred).all()):
        raise InputError(f"{name}: images contain NaN or infinite values; check the renderer output.")


@torch.no_grad()
def compute_psnr(
    gt: Float[Tensor, "batch 3 height width"], pred: Float[Tensor, "batch 3 height width"]
) -> Float[Tensor, " batch"]:
    """PSNR in dB of images in [0, 1] (both clipped to [0, 1]); MSE over (c, h, w)."""
    _check_pair(gt, pred, "compute_psnr")
    mse = (gt.clip(0, 1) - pred.clip(0, 1)).square().flatten(1).mean(dim=1)
    return -10 * mse.log10()


@torch.no_grad()
def compute_ssim(
    gt: Float[Tensor, "batch 3 height width"], pred: Float[Tensor, "batch 3 height width"]
) -> Float[Tensor, " batch"]:
    """SSIM per image via scikit-image (11x11 Gaussian window, data_range 1, not clipped).

    Images must be at least 11 pixels in each spatial dimension (scikit-image's window).
    """
    _check_pair(gt, pred, "compute_ssim")
    if min(gt.shape[-2:]) < 11:
        raise InputError(
            f"compute_ssim: images of size {tuple(gt.shape[-2:])} are smaller than the 11x11 "
            "SSIM window; evaluate at a resolution of at least 11x11."
        )
    gt_np = gt.detach().cpu().float().numpy().astype(np.float32)
    pred_np = pred.detach().cpu().float().numpy().astype(np.float32)
    values = [
        structural_similarity(
            g, p, win_size=11, gaussian_weights=True, channel_axis=0, data_range=1.0
        )
        for g, p in zip(gt_np, pred_np)
    ]
    return torch.tensor(values, dtype=pred.dtype, device=pred.device)


def get_lpips(
    device: torch.device | str,
    vgg16_path: str | os.PathLike | None = None,
    linear_path: str | os.PathLike | None = None,
) -> LPIPS:
    """A cached LPIPS module on ``device`` (one per device and weight-file pair)."""
    paths = find_lpips_weights(vgg16_path, linear_path)
    key = (str(torch.device(device)), str(paths.vgg16.resolve()), str(paths.linear.resolve()))
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE[key] = LPIPS(paths.vgg16, paths.linear).to(device)
    return _LPIPS_CACHE[key]


@torch.no_grad()
def compute_lpips(
    gt: Float[Tensor, "batch 3 height width"],
    pred: Float[Tensor, "batch 3 height width"],
    lpips: LPIPS | None = None,
) -> Float[Tensor, " batch"]:
    """VGG LPIPS per image (``normalize=True``, not clipped); lower is better.

    ``lpips`` defaults to the cached module on the input's device (weight discovery as in
    :mod:`splatcore.evaluation.lpips`). Raises MissingWeightsError when weights are missing.
    """
    _check_pair(gt, pred, "compute_lpips")
    module = lpips if lpips is not None else get_lpips(pred.device)
    return module(pred.float(), gt.float(), normalize=True).to(pred.dtype)


@functools.lru_cache(maxsize=1)
def lpips_unavailable_reason() -> str | None:
    """None when LPIPS can be computed, else why not (logged once as a warning)."""
    available, reason = lpips_availability()
    if not available:
        log.warning("LPIPS is unavailable, so it is not reported: %s", reason)
    return None if available else reason


@torch.no_grad()
def image_metrics(
    gt: Float[Tensor, "batch 3 height width"], pred: Float[Tensor, "batch 3 height width"], lpips: bool = True
) -> dict[str, Float[Tensor, " batch"]]:
    """``{"psnr", "ssim", ["lpips"]}`` per image, upstream definitions (§5.3); LPIPS only when
    ``lpips`` and its weights are available (:func:`lpips_unavailable_reason`)."""
    scores = {"psnr": compute_psnr(gt, pred), "ssim": compute_ssim(gt, pred)}
    if lpips and lpips_unavailable_reason() is None:
        scores["lpips"] = compute_lpips(gt, pred)
    return scores
