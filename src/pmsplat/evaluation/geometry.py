"""Geometric accuracy against ground truth: depth errors, point-to-surface distances, floaters.

Conventions: depths are positive distances in the camera frame (the synthetic benchmark stores
z-depth); points are world-space (B, N, 3) in scene units. Nothing here is differentiable on
purpose: these are evaluation metrics, computed in float64.
"""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from pmsplat.errors import InputError

DELTA1_THRESHOLD = 1.25


@torch.no_grad()
def depth_errors(
    pred_depth: Float[Tensor, "batch height width"],
    gt_depth: Float[Tensor, "batch height width"],
    mask: Bool[Tensor, "batch height width"] | None = None,
    *,
    reduction: Literal["pooled", "per_image"] = "pooled",
) -> dict[str, Float[Tensor, "*batch"]]:
    """Standard depth errors over valid pixels: ``abs_rel``, ``rmse``, ``delta1``.

    A pixel is valid where ``gt_depth`` is finite and > 0 and ``mask`` (if given) is True.
    ``abs_rel = mean |p - g| / g``, ``rmse = sqrt(mean (p - g)^2)``,
    ``delta1 = mean[max(p / g, g / p) < 1.25]`` (a non-positive prediction counts as a miss).
    ``reduction="pooled"`` (default) averages over all valid pixels of the batch and returns
    0-d tensors; ``"per_image"`` returns (B,) tensors. A reduction without any valid pixel is
    NaN (the only source of NaN). ``pred_depth`` must be finite where valid.
    """
    if pred_depth.shape != gt_depth.shape:
        raise InputError(f"depth_errors: 'pred_depth' {tuple(pred_depth.shape)} and 'gt_depth' {tuple(gt_depth.shape)} differ.")
    if reduction not in ("pooled", "per_image"):
        raise InputError(f"depth_errors: 'reduction' must be 'pooled' or 'per_image', got {reduction!r}.")
    valid = torch.isfinite(gt_depth) & (gt_depth > 0)
    if mask is not None:
        if mask.shape != gt_depth.shape or mask.dtype != torch.bool:
            raise InputError(f"depth_errors: 'mask' must be bool of shape {tuple(gt_depth.shape)}, got {mask.dtype} {tuple(mask.shape)}.")
        valid = valid & mask
    pred = pred_depth.double()
    gt = torch.where(valid, gt_depth.double(), torch.ones_like(gt_depth, dtype=torch.float64))
    if not bool(torch.isfinite(pred[valid]).all()):
        raise InputError("depth_errors: 'pred_depth' holds NaN or infinite values at valid pixels.")
    pred = torch.where(valid, pred, gt)
    weights = valid.double()
    positive = pred > 0
    ratio = torch.where(positive, torch.maximum(pred / gt, gt / pred.clamp_min(1e-300)), torch.full_like(pred, torch.inf))
    per_pixel = {
        "abs_rel": (pred - gt).abs() / gt,
        "sq": (pred - gt).square(),
        "delta1": (ratio < DELTA1_THRESHOLD).double(),
    }
    dims = (0, 1, 2) if reduction == "pooled" else (1, 2)
    count = weights.sum(dim=dims)
    means = {name: (value * weights).sum(dim=dims) / count for name, value in per_pixel.items()}
    nan = torch.full_like(count, torch.nan)
    has = count > 0
    return {
        "abs_rel": torch.where(has, means["abs_rel"], nan),
        "rmse": torch.where(has, means["sq"].sqrt(), nan),
        "delta1": torch.where(has, means["delta1"], nan),
    }


def _check_points(name: str, points: Tensor) -> None:
    if points.ndim != 3 or points.shape[-1] != 3:
        raise InputError(f"{name} must have shape (B, N, 3), got {tuple(points.shape)}.")
    if not bool(torch.isfinite(points).all()):
        raise InputError(f"{name} holds NaN or infinite points; drop them (or pass gt_mask for ground truth).")


@torch.no_grad()
def point_to_surface(
    pred_points: Float[Tensor, "batch point 3"],
    gt_points: Float[Tensor, "batch gt_point 3"],
    *,
    gt_mask: Bool[Tensor, "batch gt_point"] | None = None,
) -> Float[Tensor, "batch point"]:
    """Euclidean distance (scene units, float64) from each predicted point to its nearest
    ground-truth surface point (exact nearest neighbour; ``gt_mask`` excludes invalid GT points).

    The ground-truth surface is represented by its samples (e.g. the GT pointmaps of the views),
    so the value is a point-to-sample distance, an upper bound of the true point-to-surface one
    that tightens with the sampling density.
    """
    _check_points("point_to_surface: 'pred_points'", pred_points)
    if gt_points.ndim != 3 or gt_points.shape[-1] != 3 or gt_points.shape[0] != pred_points.shape[0]:
        raise InputError(
            f"point_to_surface: 'gt_points' must have shape (B={pred_points.shape[0]}, M, 3), got {tuple(gt_points.shape)}."
        )
    if gt_points.shape[1] == 0:
        raise InputError("point_to_surface: 'gt_points' is empty; need at least one ground-truth point per batch element.")
    queries = pred_points.detach().double()
    references = gt_points.detach().double()
    from pmsplat.knn import nearest_neighbors

    if gt_mask is None:
        _check_points("point_to_surface: 'gt_points'", gt_points)
    _, squared = nearest_neighbors(queries, references, reference_mask=gt_mask)
    return squared.sqrt()


@torch.no_grad()
def scene_scale(
    gt_points: Float[Tensor, "batch point 3"], gt_mask: Bool[Tensor, "batch point"] | None = None
) -> Float[Tensor, " batch"]:
    """Scene scale per batch element: the median distance of the (valid) ground-truth points to
    their centroid (robust to a few far points), float64."""
    scales = []
    for b in range(gt_points.shape[0]):
        points = gt_points[b].double() if gt_mask is None else gt_points[b][gt_mask[b]].double()
        if points.shape[0] == 0:
            raise InputError(f"scene_scale: no valid ground-truth point in batch element {b}.")
        scales.append((points - points.mean(dim=0)).norm(dim=-1).median())
    return torch.stack(scales)


@torch.no_grad()
def floating_fraction(
    pred_points: Float[Tensor, "batch point 3"],
    gt_points: Float[Tensor, "batch gt_point 3"],
    threshold: float,
    *,
    relative: bool = False,
    gt_mask: Bool[Tensor, "batch gt_point"] | None = None,
    distances: Float[Tensor, "batch point"] | None = None,
    scale: Float[Tensor, " batch"] | None = None,
) -> Float[Tensor, " batch"]:
    """Fraction of predicted points (Gaussian centres) farther than a threshold from every
    ground-truth surface point, per batch element, in [0, 1].

    ``relative=False`` (default): ``threshold`` is in scene units. ``relative=True``: the
    threshold is ``threshold * scene_scale(gt_points)`` (median distance of the GT points to
    their centroid), so e.g. 0.05 means 5 % of the scene's typical radius.
    ``distances`` (:func:`point_to_surface` of the same points) and ``scale``
    (:func:`scene_scale` of the same ground truth) may be passed when the caller has them
    already; they are then not recomputed.
    """
    if not threshold > 0:
        raise InputError(f"floating_fraction: 'threshold' must be > 0, got {threshold}.")
    if distances is None:
        distances = point_to_surface(pred_points, gt_points, gt_mask=gt_mask)
    limit = torch.full((pred_points.shape[0],), float(threshold), dtype=torch.float64, device=distances.device)
    if relative:
        scale = scene_scale(gt_points, gt_mask) if scale is None else scale
        limit = limit * scale.to(distances.device)
    return (distances > limit[:, None]).double().mean(dim=1)
