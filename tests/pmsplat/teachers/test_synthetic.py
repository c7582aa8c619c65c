"""The synthetic teacher: an exact similarity transform of the ground truth when every
degradation is off; deterministic per (scene, frames); imperfect but informative by default;
blurred across depth edges with lower confidence there; clear errors without ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pmsplat.errors import InputError
from pmsplat.synthetic.raycast import render
from pmsplat.synthetic.scene import random_scene
from pmsplat.teachers.base import Teacher
from pmsplat.teachers.synthetic import SyntheticTeacher, SyntheticTeacherCfg


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (s, R, t) with target ~ s R source + t (float64 reference)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    u, d, vt = np.linalg.svd(xt.T @ xs / len(source))
    sign = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / (xs**2).sum(1).mean()
    return scale, rotation, mu_t - scale * rotation @ mu_s


@pytest.fixture(scope="module")
def ground_truth() -> torch.Tensor:
    """(1, 2, 64, 64, 3) world pointmaps of two views of a procedural scene (with depth edges)."""
    scene = random_scene(np.random.default_rng(4))
    k = np.array([[0.8, 0, 0.5], [0, 0.8, 0.5], [0, 0, 1]])
    maps = []
    for x in (0.0, 0.3):
        c2w = np.eye(4)
        c2w[:3, 3] = [x, 0.0, 1.0]
        maps.append(render(scene, c2w, k, 64, 64, supersample=1).pointmap)
    return torch.tensor(np.stack(maps)[None], dtype=torch.float32)


def call(teacher, truth, scene="scene_a", index=(3, 9)):
    images = torch.rand(truth.shape[0], truth.shape[1], 3, truth.shape[2], truth.shape[3])
    context = {"pointmap": truth, "scene": [scene] * truth.shape[0], "index": torch.tensor([list(index)] * truth.shape[0])}
    return teacher(images, context)


CLEAN = SyntheticTeacherCfg(edge_blur_px=0.0, distortion=0.0, view_misalignment_deg=0.0, view_misalignment_shift=0.0, noise_std=0.0)


def residual(output, truth, reduce=np.max) -> tuple[float, float]:
    """(reduced point error after the best similarity fit / mean spread, fitted scale)."""
    source = truth[0].reshape(-1, 3).double().numpy()
    target = output.points[0].reshape(-1, 3).double().numpy()
    scale, rotation, translation = umeyama(source, target)
    error = np.linalg.norm(target - (scale * source @ rotation.T + translation), axis=1)
    return float(reduce(error) / np.linalg.norm(target - target.mean(0), axis=1).mean()), scale


def test_clean_teacher_is_a_similarity_of_ground_truth(ground_truth):
    teacher = SyntheticTeacher(CLEAN)
    assert isinstance(teacher, Teacher) and teacher.patch_size == 1
    output = call(teacher, ground_truth)
    assert output.points.shape == ground_truth.shape and output.confidence.shape == ground_truth.shape[:-1]
    relative_error, scale = residual(output, ground_truth)
    assert relative_error < 1e-5
    assert 0.5 <= scale <= 2.0
    assert not torch.allclose(output.points, ground_truth, atol=1e-2)  # really a different frame
    identity = SyntheticTeacher(SyntheticTeacherCfg(**{**CLEAN.__dict__, "frame": False}))
    assert torch.allclose(call(identity, ground_truth).points, ground_truth, atol=1e-5)


def test_deterministic_per_scene_and_frames(ground_truth):
    teacher = SyntheticTeacher()
    first, again = call(teacher, ground_truth), call(teacher, ground_truth)
    assert torch.equal(first.points, again.points)
    assert not torch.allclose(first.points, call(teacher, ground_truth, scene="scene_b").points)
    assert not torch.allclose(first.points, call(teacher, ground_truth, index=(3, 10)).points)


def test_default_is_informative_but_imperfect(ground_truth):
    median_error, _ = residual(call(SyntheticTeacher(), ground_truth), ground_truth, np.median)
    assert 1e-3 < median_error < 0.05
    source = ground_truth[0].reshape(-1, 3).double().numpy()
    target = call(SyntheticTeacher(), ground_truth).points[0].reshape(-1, 3).double().numpy()
    scale, rotation, translation = umeyama(source, target)
    rms = np.sqrt(((target - (scale * source @ rotation.T + translation)) ** 2).sum(1).mean())
    spread = np.sqrt(((target - target.mean(0)) ** 2).sum(1).mean())
    assert rms < 0.1 * spread  # informative: aligned RMS error well below the scene size


def test_noise_knob_scales_the_error(ground_truth):
    errors = []
    for noise in (0.0, 0.01, 0.05):
        cfg = SyntheticTeacherCfg(**{**CLEAN.__dict__, "noise_std": noise, "frame": False})
        errors.append(float((call(SyntheticTeacher(cfg), ground_truth).points - ground_truth).norm(dim=-1).mean()))
    assert errors[0] < 1e-6 < errors[1] < errors[2]
    assert 3 < errors[2] / errors[1] < 7


def test_blur_smooths_depth_edges_and_confidence_drops_there(ground_truth):
    cfg = SyntheticTeacherCfg(**{**CLEAN.__dict__, "edge_blur_px": 1.0, "frame": False})
    output = call(SyntheticTeacher(cfg), ground_truth)
    truth = ground_truth[0]
    jump = (truth[:, :, 1:] - truth[:, :, :-1]).norm(dim=-1)
    view, row, column = np.unravel_index(int(jump.argmax()), jump.shape)
    left, right = truth[view, row, column], truth[view, row, column + 1]
    blurred = output.points[0, view, row, column]
    # the blurred point lies strictly between the two sides of the largest depth edge
    assert (blurred - left).norm() > 0.05 * (right - left).norm() and (blurred - right).norm() > 0.05 * (right - left).norm()
    assert torch.isfinite(output.points).all()
    confidence = output.confidence[0]
    assert confidence[view, row, column] < confidence.median() and (confidence >= 1).all()


def test_errors_without_ground_truth(ground_truth):
    teacher = SyntheticTeacher()
    images = torch.rand(1, 2, 3, 64, 64)
    with pytest.raises(InputError, match="ground-truth pointmap"):
        teacher(images, None)
    with pytest.raises(InputError, match="ground-truth pointmap"):
        teacher(images, {"scene": ["a"], "index": torch.zeros(1, 2, dtype=torch.int64)})
    with pytest.raises(InputError, match="must have shape"):
        teacher(torch.rand(1, 2, 3, 16, 16), {"pointmap": ground_truth, "scene": ["a"], "index": torch.zeros(1, 2, dtype=torch.int64)})
    bad = ground_truth.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="non-finite"):
        teacher(images, {"pointmap": bad, "scene": ["a"], "index": torch.zeros(1, 2, dtype=torch.int64)})
    with pytest.raises(InputError, match="'scene'"):
        teacher(images, {"pointmap": ground_truth})
    with pytest.raises(InputError, match=">= 0"):
        SyntheticTeacherCfg(noise_std=-1.0)
