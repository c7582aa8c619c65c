"""Evaluation metrics of the upstream test step: PSNR, SSIM, LPIPS and the score bookkeeping.

Public API::

    compute_psnr(gt, pred) -> (B,)      compute_ssim(gt, pred) -> (B,)
    compute_lpips(gt, pred, lpips=None) -> (B,)   # raises MissingWeightsError
    lpips_availability() -> (bool, reason)        LPIPS(vgg16_path=None, linear_path=None)
    ScoreBook(time_skip_steps=0): .add(scene, {metric: (V,)}), .averages(), .write(dir)
"""

from .lpips import LPIPS, LPIPSWeightPaths, find_lpips_weights, lpips_availability
from .metrics import compute_lpips, compute_psnr, compute_ssim, get_lpips
from .scores import ScoreBook
from .vgg16 import VGG16Features

__all__ = [
    "LPIPS",
    "LPIPSWeightPaths",
    "ScoreBook",
    "VGG16Features",
    "compute_lpips",
    "compute_psnr",
    "compute_ssim",
    "find_lpips_weights",
    "get_lpips",
    "lpips_availability",
]
