"""Image metrics restricted to a pixel mask (e.g. the depth-boundary band)."""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from pmsplat.errors import InputError


@torch.no_grad()
def masked_psnr(
    gt: Float[Tensor, "batch 3 height width"],
    pred: Float[Tensor, "batch 3 height width"],
    mask: Bool[Tensor, "batch height width"],
    *,
    empty: Literal["nan", "raise"] = "nan",
) -> Float[Tensor, " batch"]:
    """PSNR over the pixels where ``mask`` is True, per image, with upstream's PSNR rule.

    Both images are clipped to [0, 1] (as :func:`splatcore.evaluation.compute_psnr`); the MSE is
    the mean over the masked pixels and the 3 channels; PSNR = ``-10 log10(MSE)`` (``+inf`` when
    the masked pixels agree exactly). With ``mask`` all True this equals the full-image PSNR.

    Empty-mask rule: an image whose mask selects no pixel has no defined value. With
    ``empty="nan"`` (default) its entry is NaN -- the only way this function returns NaN -- and
    callers aggregate with a NaN-aware mean and report how many images had a band; with
    ``empty="raise"`` an InputError names the batch elements.
    """
    if gt.shape != pred.shape:
        raise InputError(f"masked_psnr: 'gt' {tuple(gt.shape)} and 'pred' {tuple(pred.shape)} differ in shape.")
    if mask.dtype != torch.bool:
        raise InputError(f"masked_psnr: 'mask' must be a bool tensor, got {mask.dtype}.")
    if not (bool(torch.isfinite(gt).all()) and bool(torch.isfinite(pred).all())):
        raise InputError("masked_psnr: images contain NaN or infinite values.")
    squared = (gt.clip(0, 1) - pred.clip(0, 1)).square().sum(dim=1)  # (B, H, W), summed over c
    weights = mask.to(squared.dtype)
    count = weights.flatten(1).sum(dim=1)
    if empty == "raise" and bool((count == 0).any()):
        raise InputError(
            f"masked_psnr: 'mask' selects no pixel in batch element(s) {(count == 0).nonzero().flatten().tolist()}; "
            "use empty='nan' to get NaN for them."
        )
    if empty not in ("nan", "raise"):
        raise InputError(f"masked_psnr: 'empty' must be 'nan' or 'raise', got {empty!r}.")
    mse = (squared * weights).flatten(1).sum(dim=1) / (3 * count)
    psnr = -10 * mse.log10()
    return torch.where(count > 0, psnr, torch.full_like(psnr, float("nan")))
