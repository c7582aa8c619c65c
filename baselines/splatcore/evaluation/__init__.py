"""The evaluation room of the shared core: the upstream metrics (PSNR, SSIM, LPIPS), the one
evaluation loop and the one averaging rule (per view -> per scene -> over scenes).

Public API::

    compute_psnr(gt, pred) -> (B,)      compute_ssim(gt, pred) -> (B,)
    compute_lpips(gt, pred, lpips=None) -> (B,)   # raises MissingWeightsError
    image_metrics(gt, pred) -> {"psnr", "ssim", ["lpips"]: (B,)}   lpips_unavailable_reason()
    lpips_availability() -> (bool, reason)        LPIPS(vgg16_path=None, linear_path=None)
    ScoreBook(time_skip_steps=0): .add(scene, {metric: (V,) or float}), .averages(), .rows(), .write(dir)
    evaluate_scene(encoder, decoder, batch, book, EvaluationSettings(...)) -> RenderedScene
    evaluate_scenes(encoder, decoder, batches, settings, book=..., data_shim=..., device=...) -> ScoreBook
    @register_scene_metric(name): extra per-scene metrics (pmsplat registers its geometry ones)
"""

from .lpips import LPIPS, LPIPSWeightPaths, find_lpips_weights, lpips_availability
from .loop import (
    EvaluationSettings,
    RenderedScene,
    evaluate_scene,
    evaluate_scenes,
    register_scene_metric,
    registered_scene_metrics,
    scene_metric,
)
from .metrics import compute_lpips, compute_psnr, compute_ssim, get_lpips, image_metrics, lpips_unavailable_reason
from .scores import ScoreBook
from .vgg16 import VGG16Features

__all__ = [
    "EvaluationSettings",
    "RenderedScene",
    "evaluate_scene",
    "evaluate_scenes",
    "image_metrics",
    "lpips_unavailable_reason",
    "register_scene_metric",
    "registered_scene_metrics",
    "scene_metric",
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
