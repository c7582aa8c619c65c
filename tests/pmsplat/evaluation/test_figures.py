"""Figures: the PNGs exist, decode with PIL at the documented size and show the inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError
from PIL import Image

from pmsplat.errors import InputError
from pmsplat.evaluation import plot_loss_curves, plot_point_clouds, plot_render_comparison
from pmsplat.evaluation.figures import HEADER_PX


def test_render_comparison_png(tmp_path, rng):
    target = torch.rand(3, 3, 24, 32, generator=rng)
    baseline = (target + 0.2).clip(0, 1)
    band = torch.zeros(3, 24, 32, dtype=torch.bool)
    band[:, 4:8, 4:8] = True
    path = plot_render_comparison(
        target, baseline, target.clone(), tmp_path / "fig" / "renders.png", cell_px=96, boundary=band
    )
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (5 * 96, 3 * 72 + HEADER_PX)  # 72 = 96 * 24 / 32
        pixels = np.asarray(image.convert("RGB")).astype(float)
    # The PM render equals the target, so its error column (5th) is uniformly the colormap's 0.
    cell = pixels[HEADER_PX + 8 : HEADER_PX + 45, 4 * 96 + 40 : 4 * 96 + 90]
    assert cell.std(axis=(0, 1)).max() < 1.0
    baseline_error = pixels[HEADER_PX + 8 : HEADER_PX + 45, 3 * 96 + 40 : 3 * 96 + 90]
    assert np.abs(baseline_error.mean(axis=(0, 1)) - cell.mean(axis=(0, 1))).max() > 20


def test_point_cloud_png(tmp_path, rng):
    gt = torch.randn(5000, 3, generator=rng)
    path = plot_point_clouds(gt + 0.01, gt + 0.02, None, gt, tmp_path / "points.png", cell_px=150, max_points=500)
    with Image.open(path) as image:
        assert image.size == (4 * 150, 2 * 150 + HEADER_PX)
    # Under the test suite's jaxtyping hook the annotation rejects the shape first.
    with pytest.raises((InputError, TypeCheckError)):
        plot_point_clouds(gt[None], gt, None, None, tmp_path / "bad.png")


def test_loss_curve_png(tmp_path):
    curves = {
        "baseline": (np.arange(50), np.exp(-np.arange(50) / 10) + 0.1),
        "pm-loss": (torch.arange(50), torch.exp(-torch.arange(50) / 8) + 0.08),
    }
    path = plot_loss_curves(curves, tmp_path / "loss.png", width_px=640, height_px=400)
    with Image.open(path) as image:
        assert image.size == (640, 400)
    with pytest.raises(InputError, match="same|length"):
        plot_loss_curves({"x": ([1, 2], [1.0])}, tmp_path / "bad.png")


def test_gain_scatter_png(tmp_path):
    from pmsplat.evaluation import plot_gain_scatter
    from pmsplat.evaluation.figures import GainPoint

    panels = {
        "interpolation": [GainPoint("pmloss", 25.0, 3.0, -1.0, 0.2), GainPoint("scale_invariant", 10.0, 1.0, 0.3, 0.1)],
        "extrapolation": [GainPoint("pmloss", 30.0, 2.0, -2.0, 0.5), GainPoint("broken", float("nan"), 0.0, 1.0, 0.0)],
    }
    path = plot_gain_scatter(panels, tmp_path / "gain.png", panel_px=300, height_px=280)
    with Image.open(path) as image:
        assert image.size == (2 * 300, 280)
        pixels = np.asarray(image.convert("RGB")).astype(float)
    # Something is drawn in each panel (not a blank canvas).
    assert pixels[:, :300].std() > 10 and pixels[:, 300:].std() > 10
    with pytest.raises(InputError, match="empty"):
        plot_gain_scatter({}, tmp_path / "none.png")
