"""Extra evaluation metrics that PM-Loss argues about (boundary PSNR, depth and point-to-surface
error, floaters) and the report helpers (the one table writer, figures). The upstream PSNR / SSIM /
LPIPS, the evaluation loop and the averaging rule live in :mod:`splatcore.evaluation`; importing
this package registers the ``"geometry"`` scene metric there (:mod:`.scene_metrics`).

Public API::

    depth_boundary_mask(depth (B,H,W), *, rel_jump=0.1, band_px=2, valid=None) -> bool (B,H,W)
    depth_edges(depth (B,H,W), *, rel_jump=0.1, valid=None) -> bool (B,H,W)
    camera_z_depth(points (B,H,W,3), extrinsics c2w (B,4,4)) -> (B,H,W)
    context_coverage(depth (V,H,W), c2w (V,4,4), K (V,3,3), context c2w (C,4,4), context K (C,3,3))
        -> bool (V,H,W): target pixels inside a context view's frustum
    masked_psnr(gt, pred (B,3,H,W), mask (B,H,W), *, empty="nan") -> (B,)
    depth_errors(pred_depth, gt_depth (B,H,W), mask=None, *, reduction="pooled")
        -> {"abs_rel", "rmse", "delta1"}
    point_to_surface(pred_points (B,N,3), gt_points (B,M,3), *, gt_mask=None) -> (B,N)
    scene_scale(gt_points (B,M,3), gt_mask=None) -> (B,)
    floating_fraction(pred_points, gt_points, threshold, *, relative=False, gt_mask=None) -> (B,)
    geometry_scene_metrics(scene) -> {GEOMETRY_COLUMNS}: the "geometry" scene metric of the loop
    write_table(rows, path_stem) -> (md_path, csv_path);  read_table_csv(path) -> rows
    markdown_table(rows, columns=None) -> str;  write_csv(rows, path, columns=None)
    plot_render_comparison(target, baseline, pmloss, path)
    plot_point_clouds(pred_baseline, pred_pm, teacher, gt, path)
    plot_loss_curves(curves, path)
    plot_gain_scatter(panels, path): per-variant PSNR gain vs geometry gain (ablation figure)
"""

from .boundary import camera_z_depth, depth_boundary_mask, depth_edges
from .coverage import context_coverage
from .figures import plot_gain_scatter, plot_loss_curves, plot_point_clouds, plot_render_comparison
from .geometry import depth_errors, floating_fraction, point_to_surface, scene_scale
from .image_metrics import masked_psnr
from .scene_metrics import GEOMETRY, GEOMETRY_COLUMNS, GeometryConfig, geometry_scene_metrics
from .tables import markdown_table, read_table_csv, write_csv, write_table

__all__ = [
    "GEOMETRY",
    "GEOMETRY_COLUMNS",
    "GeometryConfig",
    "geometry_scene_metrics",
    "markdown_table",
    "write_csv",
    "camera_z_depth",
    "context_coverage",
    "depth_boundary_mask",
    "depth_edges",
    "depth_errors",
    "floating_fraction",
    "masked_psnr",
    "plot_gain_scatter",
    "plot_loss_curves",
    "plot_point_clouds",
    "plot_render_comparison",
    "point_to_surface",
    "read_table_csv",
    "scene_scale",
    "write_table",
]
