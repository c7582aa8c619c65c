"""The evaluation loop of ``pmsplat evaluate`` and ``pmsplat reproduce``.

It scores a model the upstream way (every target view of every scene of an evaluation index;
PSNR / SSIM / LPIPS per view, averaged per scene, then over scenes — upstream-facts §5.3, §10)
and adds what PM-Loss argues about and the upstream protocol does not measure:

- ``psnr_boundary``: PSNR restricted to a band around the ground-truth depth edges of the target
  views (where floating Gaussians at depth discontinuities show up first);
- ``depth_abs_rel`` / ``depth_rmse`` / ``depth_delta1``: rendered depth (alpha-normalised z-depth,
  pixels with accumulated alpha > 0.5) against the ground-truth z-depth of the target views;
- ``p2s_mean`` / ``p2s_boundary``: distance of each predicted Gaussian centre of the context views
  to the nearest ground-truth surface point (the context views' ground-truth pointmaps), in scene
  units, over all Gaussians and over those from depth-edge pixels;
- ``floating_fraction``: fraction of Gaussians farther than ``floating_threshold`` x the scene
  scale (median distance of the ground-truth points to their centroid) from any surface point;
- where the PSNR is lost: ``psnr_interior`` (outside the depth-edge band), ``psnr_covered`` /
  ``psnr_uncovered`` (target pixels whose surface point lies inside / outside every context
  view's frustum, :func:`pmsplat.evaluation.context_coverage`) and ``uncovered_fraction``;
- the collapse diagnostic: ``pred_scale`` (median distance of the predicted Gaussian centres to
  their centroid), ``gt_scale`` (the same for the ground-truth points of the context views) and
  ``scale_ratio`` = pred_scale / gt_scale (1 = the right size; a prediction that shrinks into a
  blob has a ratio well below 1).

The geometric metrics need ground truth (the synthetic benchmark: ``dataset.load_depth`` and
``dataset.load_pointmap``); without it those columns are NaN and the report says why.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from pmsplat.evaluation import (
    camera_z_depth,
    context_coverage,
    depth_boundary_mask,
    depth_errors,
    masked_psnr,
    point_to_surface,
    scene_scale,
)


@dataclass
class EvaluationConfig:
    """Knobs of the extra metrics (the upstream ones have none)."""

    boundary_band_px: int = 2
    boundary_rel_jump: float = 0.1
    floating_threshold: float = 0.05  # x scene scale
    alpha_threshold: float = 0.5  # rendered-depth pixels used for depth errors
    samples_to_keep: int = 2  # scenes kept (renders, points) for the figures
    max_scenes: int | None = None


@dataclass
class SceneSample:
    """What the figures need of one scene (CPU tensors)."""

    scene: str
    target: Float[Tensor, "view 3 height width"]
    render: Float[Tensor, "view 3 height width"]
    boundary: Tensor  # (view, height, width) bool
    means: Float[Tensor, "point 3"]  # predicted Gaussian centres of the context views
    gt_points: Float[Tensor, "point 3"] | None
    context: dict  # the context views (image, index, pointmap, ...) and "scene", for teacher figures
    boundary_score: float = 0.0


@dataclass
class EvaluationResult:
    rows: list[dict]  # one per scene: scene + every metric (float, NaN when unavailable)
    samples: list[SceneSample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why a column is missing, skipped scenes...
    seconds: float = 0.0

    def averages(self) -> dict[str, float]:
        """Mean over scenes of every numeric column (NaN-aware: NaN only if all are NaN)."""
        keys = [k for k in (self.rows[0] if self.rows else {}) if k != "scene"]
        result = {}
        for key in keys:
            values = [row[key] for row in self.rows if not math.isnan(row[key])]
            result[key] = sum(values) / len(values) if values else math.nan
        result["scenes"] = float(len(self.rows))
        return result


def _upstream_metrics() -> tuple[Callable, Callable, Callable | None, str | None]:
    from splatcore.evaluation.metrics import compute_lpips, compute_psnr, compute_ssim, lpips_availability

    available, reason = lpips_availability()
    return compute_psnr, compute_ssim, (compute_lpips if available else None), (None if available else reason)


@torch.no_grad()
def evaluate(
    encoder: torch.nn.Module,
    decoder: torch.nn.Module,
    batches: Iterable[dict],
    *,
    data_shim: Callable[[dict], dict] | None = None,
    device: torch.device | str = "cpu",
    cfg: EvaluationConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvaluationResult:
    """Score ``encoder`` + ``decoder`` on ``batches`` (batch size 1, the ``evaluation`` sampler).

    ``data_shim`` is the encoder's patch shim (applied to every batch, as the model wrapper does).
    ``progress`` is called with the number of scenes done after each scene.
    """
    cfg = cfg or EvaluationConfig()
    compute_psnr, compute_ssim, compute_lpips, lpips_reason = _upstream_metrics()
    notes = [f"LPIPS unavailable: {lpips_reason}"] if lpips_reason else []
    encoder.eval()
    rows: list[dict] = []
    samples: list[SceneSample] = []
    missing_geometry = False
    start = time.perf_counter()
    for batch in batches:
        batch = _to_device(batch, device)
        if data_shim is not None:
            batch = data_shim(batch)
        context, target = batch["context"], batch["target"]
        if context["image"].shape[0] != 1:
            raise ValueError("evaluate() expects batches of one scene (data_loader.test.batch_size=1).")
        output = encoder(context, 0, deterministic=True, scene_names=batch["scene"])
        gaussians = output["gaussians"] if isinstance(output, dict) else output
        height, width = target["image"].shape[-2:]
        rendered = decoder(
            gaussians, target["extrinsics"], target["intrinsics"], target["near"], target["far"],
            (height, width), depth_mode="depth",
        )
        gt = target["image"][0]
        pred = rendered.color[0]
        row: dict = {"scene": str(batch["scene"][0])}
        row["psnr"] = float(compute_psnr(gt, pred).mean())
        row["ssim"] = float(compute_ssim(gt, pred).mean())
        row["lpips"] = float(compute_lpips(gt, pred).mean()) if compute_lpips else math.nan

        boundary = torch.zeros(gt.shape[0], height, width, dtype=torch.bool)
        gt_points = None
        if "depth" in target and "pointmap" in context:
            boundary = depth_boundary_mask(target["depth"][0], rel_jump=cfg.boundary_rel_jump, band_px=cfg.boundary_band_px)
            gt_points = context["pointmap"][0].reshape(-1, 3)
            row.update(_geometry_metrics(cfg, gt, pred, boundary, rendered, target, context, gaussians.means[-1], gt_points))
        else:
            missing_geometry = True
            row.update(dict.fromkeys(GEOMETRY_COLUMNS, math.nan))
        rows.append(row)
        samples.append(
            SceneSample(
                scene=row["scene"], target=gt.cpu(), render=pred.clamp(0, 1).cpu(), boundary=boundary.cpu(),
                means=gaussians.means[-1].cpu(), gt_points=None if gt_points is None else gt_points.cpu(),
                context=dict(_to_device(context, "cpu"), scene=list(batch["scene"])),
                boundary_score=float(boundary.float().mean()),
            )
        )
        samples = sorted(samples, key=lambda s: s.boundary_score, reverse=True)[: cfg.samples_to_keep]
        if progress is not None:
            progress(len(rows))
        if cfg.max_scenes is not None and len(rows) >= cfg.max_scenes:
            break
    if missing_geometry:
        notes.append(
            "geometric metrics (boundary PSNR, depth, point-to-surface, floaters) need ground-truth depth and "
            "pointmaps (dataset.load_depth=true dataset.load_pointmap=true; the synthetic benchmark has them)."
        )
    return EvaluationResult(rows=rows, samples=samples, notes=notes, seconds=time.perf_counter() - start)


GEOMETRY_COLUMNS = (
    "psnr_boundary", "psnr_interior", "psnr_covered", "psnr_uncovered", "uncovered_fraction",
    "depth_abs_rel", "depth_rmse", "depth_delta1", "p2s_mean", "p2s_boundary", "floating_fraction",
    "pred_scale", "gt_scale", "scale_ratio",
)


def _geometry_metrics(cfg, gt, pred, boundary, rendered, target, context, means, gt_points) -> dict[str, float]:
    """The ground-truth-based columns of one scene (see the module docstring)."""
    alpha = rendered.alpha[0] if rendered.alpha is not None else torch.ones_like(rendered.depth[0])
    depth = rendered.depth[0] / alpha.clamp_min(1e-6)  # accumulated -> alpha-normalised z-depth
    errors = depth_errors(depth, target["depth"][0], mask=alpha > cfg.alpha_threshold)
    distances = point_to_surface(means[None], gt_points[None])[0]
    context_depth = context["depth"][0] if "depth" in context else camera_z_depth(context["pointmap"][0], context["extrinsics"][0])
    edges = depth_boundary_mask(context_depth, rel_jump=cfg.boundary_rel_jump, band_px=cfg.boundary_band_px).reshape(-1)
    gt_scale = float(scene_scale(gt_points[None])[0])
    pred_scale = float(scene_scale(means[None])[0])
    floating = distances > cfg.floating_threshold * gt_scale
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
        "floating_fraction": float(floating.double().mean()),
        "pred_scale": pred_scale,
        "gt_scale": gt_scale,
        "scale_ratio": pred_scale / gt_scale,
    }


def _nanmean(values: Tensor) -> float:
    values = values[~torch.isnan(values)]
    return float(values.mean()) if values.numel() else math.nan


def _to_device(batch, device):
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch


def evaluate_checkpoint(
    overrides: list[str],
    checkpoint: Path | str | None,
    *,
    max_scenes: int | None = None,
    label: str = "",
    cfg: EvaluationConfig | None = None,
) -> EvaluationResult:
    """Compose the config (``overrides`` must select the evaluation sampler, see
    :func:`evaluation_overrides`), build the model, load ``checkpoint`` strictly (None: the
    config's own ``checkpointing.*`` weights) and run :func:`evaluate` with a progress bar."""
    from rich.progress import Progress
    from splatcore.dataset import DataModule
    from splatcore.main import build_model, compose_config, load_pretrained, typed_config
    from splatcore.model.checkpoints import load_weights

    composed = compose_config(overrides)
    run_cfg = typed_config(composed)
    model = build_model(composed, run_cfg)
    if checkpoint is not None:
        load_weights(model, checkpoint, strict=True, what=f"checkpoint {checkpoint}")
    else:
        load_pretrained(model, run_cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    loader = DataModule(run_cfg.dataset, run_cfg.data_loader).test_dataloader()
    cfg = dataclasses.replace(cfg or EvaluationConfig(), max_scenes=max_scenes)
    total = min(len(loader.dataset), max_scenes) if max_scenes else len(loader.dataset)
    with Progress(transient=True) as progress:
        task = progress.add_task(f"evaluating {label}".strip(), total=total)
        return evaluate(
            model.encoder, model.decoder, loader, data_shim=model.encoder.get_data_shim(), device=device,
            cfg=cfg, progress=lambda n: progress.update(task, completed=n),
        )
