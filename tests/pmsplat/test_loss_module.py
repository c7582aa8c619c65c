"""PMLoss module: resizing for the teacher, frozen unregistered teacher, stats, README example."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from skimage.transform import resize
from torch import nn

from pmsplat import PMLoss, PMLossConfig
from pmsplat.errors import InputError
from pmsplat.loss import pm_loss
from pmsplat.teachers.base import Teacher, TeacherOutput
from pmsplat.teachers.tensor import TensorTeacher
from testkit import REPO_ROOT



class SpyTeacher(nn.Module):
    """A teacher with real parameters that records what it was called with."""

    def __init__(self, points: torch.Tensor, confidence: torch.Tensor | None = None, patch_size: int = 14) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.points, self.confidence, self.patch_size = points, confidence, patch_size
        self.calls: list[tuple[torch.Tensor, bool, dict | None]] = []

    def forward(self, images, context=None) -> TeacherOutput:
        self.calls.append((images.clone(), torch.is_grad_enabled(), context))
        return TeacherOutput(self.points * self.scale, self.confidence)


def _surface_pointmap(batch: int, views: int, height: int, width: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v, u = torch.meshgrid(torch.linspace(-1, 1, height, dtype=torch.float64), torch.linspace(-1, 1, width, dtype=torch.float64), indexing="ij")
    maps = []
    for _ in range(batch * views):
        depth = 2 + 0.3 * torch.rand(1, generator=g, dtype=torch.float64) * torch.sin(3 * u + torch.rand(1, generator=g, dtype=torch.float64))
        maps.append(torch.stack([u * depth, v * depth, depth], -1))
    return torch.stack(maps).reshape(batch, views, height, width, 3)


def test_resizing_matches_independent_bilinear_and_nearest() -> None:
    batch, views, height, width = 2, 2, 30, 45  # -> 28 x 42 for patch 14
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, views, 3, height, width, generator=g, dtype=torch.float64)
    small = _surface_pointmap(batch, views, 28, 42, seed=1)
    teacher = SpyTeacher(small)
    means = (_surface_pointmap(batch, views, height, width, seed=2) * 1.7).reshape(batch, -1, 3).requires_grad_(True)
    module = PMLoss(teacher=teacher, weight=0.5)
    loss = module(means, images, {"scene": ["a", "b"]})

    seen, grad_enabled, context = teacher.calls[0]
    assert seen.shape == (batch, views, 3, 28, 42) and not grad_enabled and context == {"scene": ["a", "b"]}
    for b in range(batch):
        for v in range(views):
            hwc = images[b, v].permute(1, 2, 0).numpy()
            expected = resize(hwc, (28, 42), order=1, mode="edge", anti_aliasing=False)
            np.testing.assert_allclose(seen[b, v].permute(1, 2, 0).numpy(), expected, atol=1e-12)

    # nearest upsampling back to 30 x 45: source index floor(i * in / out)
    rows = np.floor(np.arange(height) * 28 / height).astype(int)
    cols = np.floor(np.arange(width) * 42 / width).astype(int)
    upsampled = small[:, :, rows][:, :, :, cols].reshape(batch, -1, 3)
    expected_loss = 0.5 * pm_loss(means.detach(), upsampled).mean()
    torch.testing.assert_close(loss.detach(), expected_loss, rtol=1e-12, atol=0)
    loss.backward()
    assert means.grad is not None and means.grad.abs().sum() > 0
    assert teacher.scale.grad is None  # the teacher ran without gradient


def test_teacher_is_not_a_submodule_nor_in_state_dict() -> None:
    teacher = SpyTeacher(torch.zeros(1, 1, 14, 14, 3))
    module = PMLoss(teacher=teacher)
    assert module.teacher is teacher
    assert list(module.parameters()) == [] and list(module.state_dict()) == []
    assert "teacher" not in module._modules and "_teacher" not in module._modules
    module.teacher = SpyTeacher(torch.zeros(1, 1, 14, 14, 3))  # re-assignment stays unregistered
    assert list(module.parameters()) == [] and isinstance(module.teacher, SpyTeacher)
    assert isinstance(TensorTeacher(torch.zeros(1, 1, 2, 2, 3)), Teacher)
    clone = copy.deepcopy(module)
    assert clone.teacher is module.teacher and clone.config == module.config and clone.config is not module.config


def test_last_stats_report_scale_large_fraction_and_nonfinite_points() -> None:
    batch, views, height, width = 3, 2, 12, 16
    truth = _surface_pointmap(batch, views, height, width, seed=3)
    means = truth.reshape(batch, -1, 3).clone()
    means[2] *= 1000.0  # this example's loss is far above 100 after the alignment
    means[2] += torch.randn(means[2].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) * 200
    teacher_points = truth / 4.0
    teacher_points[0, 0, 0, :5] = float("nan")
    teacher_points[1, 1, 3, 2] = float("inf")
    module = PMLoss(TensorTeacher(teacher_points), PMLossConfig(weight=0.005))
    loss = module(means, torch.rand(batch, views, 3, height, width, dtype=torch.float64))
    stats = module.last_stats
    assert stats["nonfinite_teacher_points"] == 6.0
    assert stats["large_loss_fraction"] == pytest.approx(1 / 3)
    assert stats["scale_0"] == pytest.approx(4.0, rel=1e-9) and stats["scale_1"] == pytest.approx(4.0, rel=1e-9)
    # example 0: the 5 pixels whose teacher point is NaN still query the remaining teacher points
    flat = truth[0].reshape(-1, 3).numpy()
    excluded = np.arange(5)
    others = flat[5:]
    nearest = ((flat[excluded, None] - others[None]) ** 2).sum(-1).min(1)
    assert stats["loss_0"] == pytest.approx(nearest.sum() / len(flat), rel=1e-6) and stats["loss_0"] > 0
    assert stats["loss_2"] > 0
    assert stats["loss"] == pytest.approx(float(loss)) == pytest.approx(0.005 * stats["loss_mean"])
    assert stats["teacher_seconds"] >= 0 and all(isinstance(v, float) for v in stats.values())
    assert module.last_result is not None and module.last_result.nonfinite_teacher.tolist() == [5, 1, 0]


def test_confidence_weighting_uses_the_teacher_confidence() -> None:
    batch, views, height, width = 1, 2, 10, 12
    truth = _surface_pointmap(batch, views, height, width, seed=5)
    g = torch.Generator().manual_seed(6)
    noisy = truth + torch.randn(truth.shape, generator=g, dtype=torch.float64) * 0.05
    confidence = torch.rand(truth.shape[:4], generator=g, dtype=torch.float64) + 0.1
    means = truth.reshape(batch, -1, 3)
    images = torch.rand(batch, views, 3, height, width, dtype=torch.float64)
    module = PMLoss(TensorTeacher(noisy, confidence), confidence_weighting=True, weight=1.0)
    expected = pm_loss(means, noisy.reshape(batch, -1, 3), confidence=confidence.reshape(batch, -1)).mean()
    torch.testing.assert_close(module(means, images), expected)
    with pytest.raises(InputError, match="no confidence"):
        PMLoss(TensorTeacher(noisy), confidence_weighting=True)(means, images)


def test_readme_example_runs_as_written() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    example = next(block for block in blocks if "PMLoss" in block)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert torch.isfinite(namespace["loss"]) and namespace["means"].grad is not None


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, x, i: m(x[:, :-1], i), r"\(B, V\*H\*W, 3\)"),
        (lambda m, x, i: m(x, i[:, 0]), "'images'"),
        (lambda m, x, i: m(x, i.to("meta")), "'means' is on"),
        (lambda m, x, i: m(x[:0], i[:0]), "empty batch"),
        (lambda m, x, i: m(x, i[..., :6, :6].contiguous()), r"\(B, V\*H\*W, 3\)"),
    ],
)
def test_bad_module_input_is_rejected(call, match) -> None:
    points = _surface_pointmap(2, 2, 8, 8, seed=7)
    module = PMLoss(TensorTeacher(points))
    means = points.reshape(2, -1, 3)
    images = torch.rand(2, 2, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(InputError, match=match):
        call(module, means, images)


def test_bad_construction_and_teacher_output_are_rejected() -> None:
    points = _surface_pointmap(2, 2, 8, 8, seed=8)
    with pytest.raises(InputError, match="unknown option"):
        PMLoss(TensorTeacher(points), wieght=0.1)
    with pytest.raises(InputError, match="'teacher'"):
        PMLoss(teacher=lambda images, context=None: None)
    with pytest.raises(InputError, match="smaller than the teacher's patch size"):
        PMLoss(TensorTeacher(points, patch_size=14))(points.reshape(2, -1, 3), torch.rand(2, 2, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(InputError, match="TensorTeacher: 'images'"):
        PMLoss(TensorTeacher(points[:1]))(points.reshape(2, -1, 3), torch.rand(2, 2, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(InputError, match="TensorTeacher: 'points'"):
        TensorTeacher(points[..., :2])
    with pytest.raises(InputError, match="'confidence'"):
        TensorTeacher(points, torch.ones(2, 2, 8, 7))
    with pytest.raises(InputError, match="'patch_size'"):
        TensorTeacher(points, patch_size=0)


def test_the_training_step_builds_and_validates_no_config(monkeypatch):
    """The config is validated once, when it is built; the forward pass hands it through."""
    from pmsplat import loss as loss_module

    batch, views, height, width = 2, 2, 6, 8
    truth = _surface_pointmap(batch, views, height, width, seed=5)
    config = PMLossConfig(bidirectional=True, robust="huber")
    module = PMLoss(TensorTeacher(truth / 2.0), config)
    assert module.config is config
    built = []
    original = loss_module.PMLossConfig.__post_init__
    monkeypatch.setattr(loss_module.PMLossConfig, "__post_init__", lambda self: (built.append(self), original(self)))
    means = truth.reshape(batch, -1, 3).clone().requires_grad_(True)
    for _ in range(3):
        module(means, torch.rand(batch, views, 3, height, width, dtype=truth.dtype)).backward()
    assert built == []
    with pytest.raises(InputError, match="robust"):
        PMLossConfig(robust="cauchy")
    assert len(built) == 1
