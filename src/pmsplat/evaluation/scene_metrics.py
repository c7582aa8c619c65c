"""The geometric metrics that PM-Loss argues about, plugged into the shared evaluation loop.

Registered in the core's scene-metric registry as ``"geometry"``
(:func:`splatcore.evaluation.register_scene_metric`); importing :mod:`pmsplat.evaluation`
registers it. Per scene it adds (one value per scene, NaN where undefined):

- ``psnr_boundary``: PSNR restricted to a band around the ground-truth depth edges of the target
  views (where floating Gaussians at depth discontinuities show up first);
- ``depth_abs_rel`` / ``depth_rmse`` / ``depth_delta1``: rendered depth (alpha-normalised z-depth,
  pixels with accumulated alpha > 0.5) against the ground-truth z-depth of the target views;
- ``p2s_mean`` / ``p2s_boundary``: distance of each predicted Gaussian centre of the context views
  to the nearest ground-truth surface point (the context views' ground-truth pointmaps), in scene
  units, over all Gaussians and over those from depth-edge pixels;
- ``floating_fraction``: fraction of Gaussians farther than ``floating_threshold`` x the scene
  scale (median distance of the ground-truth points to their centroid) from any surface point
  (:func:`pmsplat.evaluation.floating_fraction`);
- where the PSNR is lost: ``psnr_interior`` (outside the depth-edge band), ``psnr_covered`` /
  ``psnr_uncovered`` (target pixels whose surface point lies inside / outside every context
  view's frustum, :func:`pmsplat.evaluation.context_coverage`) and ``uncovered_fraction``;
- the collapse diagnostic: ``pred_scale`` (median distance of the predicted Gaussian centres to
  their centroid), ``gt_scale`` (the same for the ground-truth points of the context views) and
  ``scale_ratio`` = pred_scale / gt_scale (1 = the right size; a prediction that shrinks into a
  blob has a ratio well below 1).

They need ground truth (the synthetic benchmark: ``dataset.load_depth`` and
``dataset.load_pointmap``) and rendered depth (``EvaluationSettings(depth_mode="depth")``);
without ground truth every column is NaN and ``scene.extras["geometry_missing"]`` is True. The
depth-boundary mask of the target views is left in ``scene.extras["boundary"]`` (all False without
ground truth) for the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from splatcore.evaluation import RenderedScene, register_scene_metric

from .boundary import camera_z_depth, depth_boundary_mask
from .coverage import context_coverage
from .geometry import depth_errors, floating_fraction, point_to_surface, scene_scale
from .image_metrics import masked_psnr

GEOMETRY = "geometry"
GEOMETRY_COLUMNS = (
    "psnr_boundary", "psnr_interior", "psnr_covered", "psnr_uncovered", "uncovered_fraction",
    "depth_abs_rel", "depth_rmse", "depth_delta1", "p2s_mean", "p2s_boundary", "floating_fraction",
    "pred_scale", "gt_scale", "scale_ratio",
)


@dataclass
class GeometryConfig:
    """Knobs of the geometric metrics (the upstream ones have none)."""

    boundary_band_px: int = 2
    boundary_rel_jump: float = 0.1
    floating_threshold: float = 0.05  # x scene scale
    alpha_threshold: float = 0.5  # rendered-depth pixels used for depth errors


@register_scene_metric(GEOMETRY)
def geometry_scene_metrics(scene: RenderedScene, cfg: GeometryConfig | None = None) -> dict[str, float]:
    """The columns of :data:`GEOMETRY_COLUMNS` for one scene (see the module docstring);
    ``cfg`` defaults to ``GeometryConfig()``."""
    cfg = cfg or GeometryConfig()
    target, context = scene.target, scene.context
    gt = scene.gt
    height, width = gt.shape[-2:]
    if "depth" not in target or "pointmap" not in context:
        scene.extras["boundary"] = torch.zeros(gt.shape[0], height, width, dtype=torch.bool)
        scene.extras["geometry_missing"] = True
        return dict.fromkeys(GEOMETRY_COLUMNS, math.nan)
    boundary = depth_boundary_mask(target["depth"][0], rel_jump=cfg.boundary_rel_jump, band_px=cfg.boundary_band_px)
    gt_points = context["pointmap"][0].reshape(-1, 3)
    scene.extras["boundary"] = boundary
    scene.extras["gt_points"] = gt_points
    return geometry_metrics(cfg, gt, scene.color, boundary, scene.output, target, context, scene.gaussians.means[-1], gt_points)


def geometry_metrics(cfg, gt, pred, boundary, rendered, target, context, means, gt_points) -> dict[str, float]:
    """The ground-truth-based columns of one scene: ``gt``/``pred`` (V, 3, H, W), ``boundary``
    (V, H, W), ``rendered`` the decoder output (1, V, ...) with depth and alpha, ``target`` /
    ``context`` the view dicts of the batch, ``means`` (N, 3) the predicted Gaussian centres,
    ``gt_points`` (M, 3) the ground-truth surface points."""
    alpha = rendered.alpha[0] if rendered.alpha is not None else torch.ones_like(rendered.depth[0])
    depth = rendered.depth[0] / alpha.clamp_min(1e-6)  # accumulated -> alpha-normalised z-depth
    errors = depth_errors(depth, target["depth"][0], mask=alpha > cfg.alpha_threshold)
    distances = point_to_surface(means[None], gt_points[None])
    context_depth = context["depth"][0] if "depth" in context else camera_z_depth(context["pointmap"][0], context["extrinsics"][0])
    edges = depth_boundary_mask(context_depth, rel_jump=cfg.boundary_rel_jump, band_px=cfg.boundary_band_px).reshape(-1)
    gt_scale = scene_scale(gt_points[None])
    pred_scale = float(scene_scale(means[None])[0])
    floating = floating_fraction(
        means[None], gt_points[None], cfg.floating_threshold, relative=True, distances=distances, scale=gt_scale
    )
    gt_scale, distances = float(gt_scale[0]), distances[0]
    covered = context_coverage(
        target["depth"][0], target["extrinsics"][0], target["intrinsics"][0], context["extrinsics"][0], context["intrinsics"][0]
    ).to(boundary.device)
    return {
        "psnr_boundary": _nanmean(masked_psnr(gt, pred, boundary)),
        "psnr_interior": _nanmean(masked_psnr(gt, pred, ~boundary)),
        "psnr_covered": _nanmean(masked_psnr(gt, pred, covered)),
        "psnr_uncovered": _nanmean(masked_psnr(gt, pred, ~covered)),
        "uncovered_fraction": float((~covered).double().mean()),
        "depth_abs_rel": float(errors["abs_rel"]),
        "depth_rmse": float(errors["rmse"]),
        "depth_delta1": float(errors["delta1"]),
        "p2s_mean": float(distances.mean()),
        "p2s_boundary": float(distances[edges].mean()) if edges.any() else math.nan,
        "floating_fraction": float(floating[0]),
        "pred_scale": pred_scale,
        "gt_scale": gt_scale,
        "scale_ratio": pred_scale / gt_scale,
    }


def _nanmean(values: Tensor) -> float:
    values = values[~torch.isnan(values)]
    return float(values.mean()) if values.numel() else math.nan
