"""Metric access for the wrapper: PSNR / SSIM / LPIPS from ``splatcore.evaluation.metrics``.

LPIPS may be unavailable (no VGG weights): :func:`image_metrics` then omits it and
:func:`lpips_unavailable_reason` says why (the caller logs it once). Inputs are (B, 3, H, W) in
[0, 1]; outputs are (B,) per image.
"""

from __future__ import annotations

import functools
import logging

import torch
from jaxtyping import Float
from torch import Tensor

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def lpips_unavailable_reason() -> str | None:
    from ..evaluation.metrics import lpips_availability

    available, reason = lpips_availability()
    if not available:
        log.warning("LPIPS is unavailable, so it is not reported: %s", reason)
    return None if available else reason


@torch.no_grad()
def image_metrics(
    gt: Float[Tensor, "batch 3 height width"], pred: Float[Tensor, "batch 3 height width"], lpips: bool = True
) -> dict[str, Float[Tensor, " batch"]]:
    """``{"psnr", "ssim", ["lpips"]}`` per image, upstream definitions (§5.3)."""
    from ..evaluation.metrics import compute_lpips, compute_psnr, compute_ssim

    scores = {"psnr": compute_psnr(gt, pred), "ssim": compute_ssim(gt, pred)}
    if lpips and lpips_unavailable_reason() is None:
        scores["lpips"] = compute_lpips(gt, pred)
    return scores


@torch.no_grad()
def psnr(gt: Float[Tensor, "batch 3 height width"], pred: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, " batch"]:
    from ..evaluation.metrics import compute_psnr

    return compute_psnr(gt, pred)
