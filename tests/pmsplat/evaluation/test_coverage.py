"""context_coverage against a per-pixel float64 loop (independent projection code), and the new
evaluation columns (where PSNR is lost, the collapse diagnostic) on a hand-made scene."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from pmsplat.errors import InputError
from pmsplat.evaluation import context_coverage


def _camera(rng: np.random.Generator, centre: np.ndarray, spread: float = 0.4) -> np.ndarray:
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_rotvec(rng.normal(scale=spread, size=3)).as_matrix()
    c2w[:3, 3] = centre
    return c2w


def _intrinsics(fx: float, fy: float, cx: float = 0.5, cy: float = 0.5) -> np.ndarray:
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])


def _loop_reference(depth, c2w, K, context_c2w, context_K) -> np.ndarray:
    views, height, width = depth.shape
    out = np.zeros(depth.shape, bool)
    for v in range(views):
        for row in range(height):
            for col in range(width):
                z = depth[v, row, col]
                if not (np.isfinite(z) and z > 0):
                    continue
                # unproject: x = (u - cx) / fx * z, y = (v - cy) / fy * z in normalised coordinates
                u, w = (col + 0.5) / width, (row + 0.5) / height
                local = np.array([(u - K[v, 0, 2]) / K[v, 0, 0] * z, (w - K[v, 1, 2]) / K[v, 1, 1] * z, z])
                world = c2w[v, :3, :3] @ local + c2w[v, :3, 3]
                for c in range(len(context_c2w)):
                    r, t = context_c2w[c, :3, :3], context_c2w[c, :3, 3]
                    p = r.T @ (world - t)
                    if p[2] <= 0:
                        continue
                    pu = context_K[c, 0, 0] * p[0] / p[2] + context_K[c, 0, 2]
                    pv = context_K[c, 1, 1] * p[1] / p[2] + context_K[c, 1, 2]
                    if 0 <= pu <= 1 and 0 <= pv <= 1:
                        out[v, row, col] = True
                        break
    return out


def test_coverage_matches_a_per_pixel_loop() -> None:
    rng = np.random.default_rng(0)
    views, height, width = 3, 9, 11
    depth = rng.uniform(0.5, 6.0, size=(views, height, width))
    depth[0, 0, 0] = -1.0  # behind the camera: never covered
    depth[1, 2, 3] = np.nan
    c2w = np.stack([_camera(rng, rng.normal(size=3)) for _ in range(views)])
    K = np.stack([_intrinsics(rng.uniform(0.6, 1.2), rng.uniform(0.6, 1.2), rng.uniform(0.4, 0.6)) for _ in range(views)])
    context_c2w = np.stack([_camera(rng, rng.normal(size=3)) for _ in range(2)])
    context_K = np.stack([_intrinsics(0.9, 0.9), _intrinsics(1.1, 0.8, 0.45, 0.55)])
    expected = _loop_reference(depth, c2w, K, context_c2w, context_K)
    got = context_coverage(*(torch.tensor(a) for a in (depth, c2w, K, context_c2w, context_K)))
    assert got.dtype == torch.bool and got.shape == (views, height, width)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert 0 < expected.mean() < 1  # both kinds of pixel occur, so the comparison means something


def test_target_equal_to_a_context_view_is_fully_covered_and_a_turned_away_one_is_not() -> None:
    rng = np.random.default_rng(1)
    c2w = _camera(rng, np.zeros(3))
    K = _intrinsics(1.0, 1.0)
    depth = torch.tensor(rng.uniform(1, 3, size=(1, 6, 8)))
    same = context_coverage(depth, torch.tensor(c2w)[None], torch.tensor(K)[None], torch.tensor(c2w)[None], torch.tensor(K)[None])
    assert bool(same.all())
    behind = c2w.copy()
    behind[:3, :3] = c2w[:3, :3] @ Rotation.from_euler("y", math.pi).as_matrix()  # looks the other way
    away = context_coverage(depth, torch.tensor(behind)[None], torch.tensor(K)[None], torch.tensor(c2w)[None], torch.tensor(K)[None])
    assert not bool(away.any())


def test_bad_shapes_are_rejected() -> None:
    depth = torch.ones(2, 4, 4)
    eye = torch.eye(4).expand(2, 4, 4)
    K = torch.eye(3).expand(2, 3, 3)
    with pytest.raises(InputError, match="target extrinsics"):
        context_coverage(depth, eye[:1], K, eye, K)
    with pytest.raises(InputError, match="context extrinsics"):
        context_coverage(depth, eye, K, eye[:0], K[:0])


def test_geometry_columns_of_a_shrunk_prediction() -> None:
    """geometry_metrics on a hand-made scene: a prediction = the ground truth shrunk by 0.5
    about its centroid has scale_ratio 0.5; psnr_interior / covered / uncovered are the masked
    PSNRs of the same images."""
    from types import SimpleNamespace

    from pmsplat.evaluation import masked_psnr
    from pmsplat.evaluation.scene_metrics import GeometryConfig, geometry_metrics

    rng = np.random.default_rng(2)
    height = width = 8
    K = torch.tensor(_intrinsics(1.0, 1.0))[None]
    context_c2w = torch.tensor(_camera(rng, np.zeros(3), spread=0.0))[None]
    target_c2w = torch.tensor(_camera(rng, np.array([0.0, 0.0, 0.0]), spread=0.0))
    target_c2w[:3, :3] = torch.tensor(Rotation.from_euler("y", 0.6).as_matrix())  # half outside the context view
    depth = torch.full((1, 1, height, width), 2.0, dtype=torch.float64)
    gt_points = torch.tensor(rng.normal(size=(64, 3))) + torch.tensor([0.0, 0.0, 3.0])
    means = 0.5 * (gt_points - gt_points.mean(0)) + gt_points.mean(0)
    gt = torch.rand(1, 3, height, width, dtype=torch.float64)
    pred = (gt + 0.1 * torch.rand(1, 3, height, width, dtype=torch.float64)).clamp(0, 1)
    boundary = torch.zeros(1, height, width, dtype=torch.bool)
    boundary[:, :2] = True
    rendered = SimpleNamespace(alpha=torch.ones(1, 1, height, width), depth=depth.clone())
    target = {"depth": depth, "extrinsics": target_c2w[None, None], "intrinsics": K[None]}
    context = {"depth": torch.full((1, 1, 8, 8), 3.0, dtype=torch.float64), "extrinsics": context_c2w[None], "intrinsics": K[None]}
    row = geometry_metrics(GeometryConfig(), gt, pred, boundary, rendered, target, context, means, gt_points)
    assert row["scale_ratio"] == pytest.approx(0.5, rel=1e-9)
    from pmsplat.evaluation import floating_fraction  # the one home of the floater rule

    expected = floating_fraction(means[None], gt_points[None], GeometryConfig().floating_threshold, relative=True)
    assert row["floating_fraction"] == float(expected[0])
    covered = context_coverage(depth[0], target_c2w[None], K, context_c2w, K)
    assert 0 < float(covered.double().mean()) < 1
    assert row["uncovered_fraction"] == pytest.approx(float((~covered).double().mean()))
    assert row["psnr_interior"] == pytest.approx(float(masked_psnr(gt, pred, ~boundary)[0]))
    assert row["psnr_covered"] == pytest.approx(float(masked_psnr(gt, pred, covered)[0]))
    assert row["psnr_uncovered"] == pytest.approx(float(masked_psnr(gt, pred, ~covered)[0]))
