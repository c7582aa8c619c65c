"""Report figures (matplotlib, Agg, no global pyplot state), written as PNGs of a fixed size.

Sizes are deterministic so reports lay out predictably (and tests can check them):

- :func:`plot_render_comparison`: ``(5 * cell_px) x (views * row_px + HEADER_PX)`` pixels
  (width x height) with ``row_px = round(cell_px * H / W)``;
- :func:`plot_point_clouds`: ``(4 * cell_px) x (2 * cell_px + HEADER_PX)``;
- :func:`plot_loss_curves`: ``width_px x height_px``.

Images are (V, 3, H, W) in [0, 1] (clipped for display); point clouds are (N, 3) world-space
points (OpenCV camera axes: x right, y down, z forward, so the "top" view plots x against z and
the "front" view x against -y).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from pmsplat.errors import InputError

HEADER_PX = 28
DPI = 100


def _figure(width_px: int, height_px: int) -> Figure:
    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=DPI, format="png")
    return out


def _cell(figure: Figure, column: int, row: int, cell_w: int, cell_h: int, width: int, height: int):
    left = column * cell_w / width
    bottom = 1 - (HEADER_PX + (row + 1) * cell_h) / height
    axes = figure.add_axes((left, bottom, cell_w / width, cell_h / height))
    axes.set_axis_off()
    return axes


def render_comparison_size(views: int, height: int, width: int, cell_px: int = 256) -> tuple[int, int]:
    """(width_px, height_px) of the PNG :func:`plot_render_comparison` writes."""
    return 5 * cell_px, views * max(1, round(cell_px * height / width)) + HEADER_PX


def plot_render_comparison(
    target: Float[Tensor, "view 3 height width"],
    baseline: Float[Tensor, "view 3 height width"],
    pmloss: Float[Tensor, "view 3 height width"],
    path: str | Path,
    *,
    labels: Sequence[str] = ("target", "baseline", "+ PM-Loss"),
    cell_px: int = 256,
    error_max: float | None = None,
    boundary: Bool[Tensor, "view height width"] | None = None,
) -> Path:
    """One row per view: target | baseline render | PM-Loss render | |baseline - target| |
    |PM - target|. Errors are the mean absolute error over colour channels (images clipped to
    [0, 1]) shown with one shared colour scale (``error_max``, default: the larger 99th
    percentile of the two maps), so brighter means worse in both. ``boundary`` (optional, e.g.
    the depth-boundary band) is outlined in cyan on the target column."""
    if not (target.shape == baseline.shape == pmloss.shape):
        raise InputError(
            f"plot_render_comparison: 'target' {tuple(target.shape)}, 'baseline' {tuple(baseline.shape)} and "
            f"'pmloss' {tuple(pmloss.shape)} must have the same shape (V, 3, H, W)."
        )
    views, _, height, width = target.shape
    images = [x.detach().float().clip(0, 1).cpu() for x in (target, baseline, pmloss)]
    errors = [(images[1] - images[0]).abs().mean(1), (images[2] - images[0]).abs().mean(1)]
    if error_max is None:
        error_max = max(float(torch.quantile(e.flatten(), 0.99)) for e in errors)
        error_max = max(error_max, 1e-6)
    width_px, height_px = render_comparison_size(views, height, width, cell_px)
    row_px = (height_px - HEADER_PX) // views
    figure = _figure(width_px, height_px)
    titles = [labels[0], labels[1], labels[2], f"{labels[1]} error", f"{labels[2]} error"]
    fontsize = max(6.0, min(10.0, cell_px / 14))
    for column, title in enumerate(titles):
        figure.text((column + 0.5) / 5, 1 - HEADER_PX / 2 / height_px, title, ha="center", va="center", fontsize=fontsize)
    for view in range(views):
        for column in range(3):
            axes = _cell(figure, column, view, cell_px, row_px, width_px, height_px)
            axes.imshow(images[column][view].permute(1, 2, 0).numpy(), interpolation="nearest", aspect="auto")
            if column == 0 and boundary is not None and bool(boundary[view].any()):
                axes.contour(boundary[view].float().cpu().numpy(), levels=[0.5], colors="cyan", linewidths=0.6)
        for column, error in enumerate(errors, start=3):
            axes = _cell(figure, column, view, cell_px, row_px, width_px, height_px)
            axes.imshow(error[view].numpy(), cmap="inferno", vmin=0, vmax=error_max, interpolation="nearest", aspect="auto")
            axes.text(
                0.02, 0.04, f"MAE {float(error[view].mean()):.4f}", transform=axes.transAxes,
                color="white", fontsize=8, va="bottom",
            )
    return _save(figure, path)


def _subsample(points: Tensor | None, max_points: int, generator: torch.Generator) -> np.ndarray | None:
    if points is None:
        return None
    if points.ndim != 2 or points.shape[-1] != 3:
        raise InputError(f"plot_point_clouds: point clouds must have shape (N, 3), got {tuple(points.shape)}.")
    points = points.detach().double().cpu()
    points = points[torch.isfinite(points).all(-1)]
    if points.shape[0] > max_points:
        points = points[torch.randperm(points.shape[0], generator=generator)[:max_points]]
    return points.numpy()


def point_clouds_size(cell_px: int = 320) -> tuple[int, int]:
    """(width_px, height_px) of the PNG :func:`plot_point_clouds` writes."""
    return 4 * cell_px, 2 * cell_px + HEADER_PX


def plot_point_clouds(
    pred_baseline: Float[Tensor, "baseline_point 3"],
    pred_pm: Float[Tensor, "pm_point 3"],
    teacher: Float[Tensor, "teacher_point 3"] | None,
    gt: Float[Tensor, "gt_point 3"] | None,
    path: str | Path,
    *,
    labels: Sequence[str] = ("baseline", "+ PM-Loss", "teacher (aligned)", "ground truth"),
    max_points: int = 4000,
    seed: int = 0,
    cell_px: int = 320,
) -> Path:
    """Four columns (baseline prediction, PM-Loss prediction, teacher, ground truth) x two rows
    (top view: x vs z; front view: x vs -y) of seeded random subsamples of at most ``max_points``
    points. The ground truth is drawn in light grey behind the other columns, and all panels
    share axis limits (the 1st-99th percentile box of all clouds, 10 % margin), so floaters
    show up as points away from the grey surface. ``teacher`` / ``gt`` may be None (panel
    says "not available"); non-finite points are dropped."""
    generator = torch.Generator().manual_seed(seed)
    clouds = [_subsample(c, max_points, generator) for c in (pred_baseline, pred_pm, teacher, gt)]
    present = [c for c in clouds if c is not None and len(c)]
    if not present:
        raise InputError("plot_point_clouds: every point cloud is empty.")
    stacked = np.concatenate(present)
    low, high = np.percentile(stacked, 1, axis=0), np.percentile(stacked, 99, axis=0)
    margin = 0.1 * np.maximum(high - low, 1e-6)
    low, high = low - margin, high + margin
    width_px, height_px = point_clouds_size(cell_px)
    figure = _figure(width_px, height_px)
    colors = ("tab:red", "tab:blue", "tab:green", "black")
    views = (("top (x, z)", 0, 2, 1.0), ("front (x, -y)", 0, 1, -1.0))
    for column, (cloud, label) in enumerate(zip(clouds, labels)):
        figure.text((column + 0.5) / 4, 1 - HEADER_PX / 2 / height_px, label, ha="center", va="center", fontsize=10)
        for row, (name, ax0, ax1, sign) in enumerate(views):
            axes = _cell(figure, column, row, cell_px, cell_px, width_px, height_px)
            axes.set_axis_on()
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_xlim(low[ax0], high[ax0])
            y_limits = (low[ax1] * sign, high[ax1] * sign)
            axes.set_ylim(min(y_limits), max(y_limits))
            if column < 3 and clouds[3] is not None:
                axes.scatter(clouds[3][:, ax0], sign * clouds[3][:, ax1], s=0.5, c="0.8", linewidths=0)
            if cloud is None:
                axes.text(0.5, 0.5, "not available", ha="center", va="center", transform=axes.transAxes)
            else:
                axes.scatter(cloud[:, ax0], sign * cloud[:, ax1], s=0.8, c=colors[column], linewidths=0)
            if column == 0:
                axes.text(0.02, 0.96, name, transform=axes.transAxes, fontsize=8, va="top")
    return _save(figure, path)


def plot_loss_curves(
    curves: Mapping[str, tuple[object, object]],
    path: str | Path,
    *,
    title: str = "training loss",
    log_y: bool | None = None,
    width_px: int = 800,
    height_px: int = 500,
) -> Path:
    """One line per entry ``name -> (steps, values)`` (each a 1-D sequence, NumPy array or tensor
    of numbers, same length). ``log_y`` defaults to True when every
    finite value is > 0. Non-finite values are skipped (and counted in the legend)."""
    if not curves:
        raise InputError("plot_loss_curves: 'curves' is empty; pass {name: (steps, values)}.")
    figure = _figure(width_px, height_px)
    axes = figure.add_axes((0.1, 0.12, 0.86, 0.78))
    all_positive = True
    for name, (steps, values) in curves.items():
        steps_np = np.asarray(torch.as_tensor(steps).double().cpu())
        values_np = np.asarray(torch.as_tensor(values).double().cpu())
        if steps_np.ndim != 1 or steps_np.shape != values_np.shape or steps_np.size == 0:
            raise InputError(
                f"plot_loss_curves: curve '{name}' needs 1-D steps and values of one non-zero length, "
                f"got {steps_np.shape} and {values_np.shape}."
            )
        finite = np.isfinite(values_np)
        skipped = int((~finite).sum())
        all_positive &= bool((values_np[finite] > 0).all())
        label = name if not skipped else f"{name} ({skipped} non-finite skipped)"
        axes.plot(steps_np[finite], values_np[finite], label=label, linewidth=1.2)
    if log_y if log_y is not None else all_positive:
        axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    return _save(figure, path)


@dataclass
class GainPoint:
    """One variant in :func:`plot_gain_scatter`: mean and std (over seeds) of the two gains."""

    label: str
    x: float
    x_std: float
    y: float
    y_std: float


def plot_gain_scatter(
    panels: Mapping[str, Sequence[GainPoint]],
    path: str | Path,
    *,
    xlabel: str = "geometry gain",
    ylabel: str = "PSNR gain (dB)",
    title: str = "",
    panel_px: int = 520,
    height_px: int = 520,
) -> Path:
    """One scatter panel per entry ``panel title -> points`` (side by side), each point a labelled
    variant with error bars (std over seeds); dashed lines at x = 0 and y = 0 split the plane
    into "better on both" (upper right) and the trade-offs. Non-finite points are skipped and
    listed in the panel. PNG of ``(len(panels) * panel_px) x height_px`` pixels."""
    if not panels:
        raise InputError("plot_gain_scatter: 'panels' is empty; pass {title: [GainPoint, ...]}.")
    figure = _figure(len(panels) * panel_px, height_px)
    width = len(panels)
    for column, (name, points) in enumerate(panels.items()):
        axes = figure.add_axes(((column + 0.16) / width, 0.12, 0.78 / width, 0.76))
        skipped = []
        for index, point in enumerate(points):
            values = (point.x, point.y)
            if not all(np.isfinite(values)):
                skipped.append(point.label)
                continue
            errors = [0.0 if not np.isfinite(e) else e for e in (point.x_std, point.y_std)]
            color = f"C{index % 10}"
            axes.errorbar(point.x, point.y, xerr=errors[0], yerr=errors[1], fmt="o", color=color, capsize=3, markersize=5)
            axes.annotate(point.label, (point.x, point.y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
        axes.axhline(0.0, color="0.5", linestyle="--", linewidth=0.8)
        axes.axvline(0.0, color="0.5", linestyle="--", linewidth=0.8)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.set_title(name if not skipped else f"{name} (no value: {', '.join(skipped)})", fontsize=9)
        axes.grid(True, alpha=0.3)
    if title:
        figure.suptitle(title, fontsize=10)
    return _save(figure, path)


__all__ = [
    "HEADER_PX",
    "GainPoint",
    "plot_gain_scatter",
    "plot_loss_curves",
    "plot_point_clouds",
    "plot_render_comparison",
    "point_clouds_size",
    "render_comparison_size",
]

