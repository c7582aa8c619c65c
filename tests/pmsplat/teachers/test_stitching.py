"""Window stitching of the teacher cache (``--frame-policy windows``): each window is brought into
the chain's frame with a scale re-normalised from the overlap's spread, so the scale does not
shrink from window to window when the predictions are poor (issue #17: x0.4-0.55 per window with
the least-squares scale), and exact similarities are still recovered exactly."""

from __future__ import annotations

import torch

from pmsplat.align import similarity_align
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.cache_build import FramePolicyCfg, run_frame_policy, window_transform

FRAMES, SIZE = 32, 8


def random_similarity(generator: torch.Generator):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    rotation = q * torch.sign(torch.linalg.det(q))
    scale = float(torch.exp(torch.empty(1, dtype=torch.float64).uniform_(-0.7, 0.7, generator=generator)))
    return scale, rotation, torch.randn(3, generator=generator, dtype=torch.float64) * 3


class NoisyWindowTeacher:
    """A stand-in multi-view model: each call returns the ground truth of its frames in its own
    random similarity frame, plus i.i.d. noise of ``noise`` x the scene's spread (fresh per call:
    two windows disagree on the frames they share, as real predictions do)."""

    patch_size = 1

    def __init__(self, truth: torch.Tensor, noise: float):
        self.truth, self.noise, self.calls = truth, noise, 0

    def __call__(self, images, context=None) -> TeacherOutput:
        index = context["index"][0]
        g = torch.Generator().manual_seed(1000 + self.calls)
        self.calls += 1
        scale, rotation, translation = random_similarity(g)
        points = self.truth[index].double()
        points = points + self.noise * torch.randn(points.shape, generator=g, dtype=torch.float64)
        points = scale * points @ rotation.T + translation
        return TeacherOutput(points[None].float(), torch.ones(1, *points.shape[:3]))


def scene_truth(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(FRAMES, SIZE, SIZE, 3, generator=g)


def scale_against_truth(points: torch.Tensor, truth: torch.Tensor) -> float:
    """The similarity scale truth -> points (least squares with the noise-free truth as source:
    unbiased whatever the noise on ``points``)."""
    _, transform = similarity_align(truth.reshape(1, -1, 3).double(), points.reshape(1, -1, 3).double())
    return float(transform.scale[0])


def window_scales(points: torch.Tensor, truth: torch.Tensor, policy: FramePolicyCfg) -> list[float]:
    stride = policy.window - policy.overlap
    starts = list(range(0, FRAMES - policy.overlap, stride))
    fresh = [slice(start + (policy.overlap if start else 0), min(start + policy.window, FRAMES)) for start in starts]
    return [scale_against_truth(points[frames], truth[frames]) for frames in fresh]


def least_squares_chain(truth: torch.Tensor, noise: float, policy: FramePolicyCfg) -> list[float]:
    """The previous stitching (Umeyama scale on the overlap), for comparison."""
    teacher = NoisyWindowTeacher(truth, noise)
    stride = policy.window - policy.overlap
    points = torch.zeros(FRAMES, SIZE, SIZE, 3, dtype=torch.float64)
    for position, start in enumerate(range(0, FRAMES - policy.overlap, stride)):
        index = torch.arange(start, min(start + policy.window, FRAMES))
        window = teacher(None, {"index": index[None]}).points[0].double()
        if position:
            _, transform = similarity_align(window[: policy.overlap].reshape(1, -1, 3), points[index[: policy.overlap]].reshape(1, -1, 3))
            window = transform.apply(window.reshape(1, -1, 3)).reshape(window.shape)
        points[index] = window
    return window_scales(points, truth, policy)


def test_scale_does_not_shrink_across_windows_with_poor_predictions():
    truth = scene_truth()
    policy = FramePolicyCfg(kind="windows", window=8, overlap=4)  # 7 windows
    noise = 1.0  # as large as the scene itself: a poor teacher
    old = least_squares_chain(truth, noise, policy)
    assert old[-1] / old[0] < 0.1  # the case is one where the least-squares chain collapses (~x0.5 per window)

    images = torch.zeros(FRAMES, 3, SIZE, SIZE)
    points, confidence = run_frame_policy(NoisyWindowTeacher(truth, noise), images, "scene", None, policy)
    assert torch.isfinite(points).all() and confidence is not None
    scales = window_scales(points, truth, policy)
    ratios = [scale / scales[0] for scale in scales]
    assert len(ratios) == 7
    assert all(0.75 < ratio < 1.33 for ratio in ratios), ratios


def test_exact_windows_stitch_exactly_into_the_first_frame():
    truth = scene_truth(seed=1)
    policy = FramePolicyCfg(kind="windows", window=8, overlap=3)
    teacher = NoisyWindowTeacher(truth, noise=0.0)
    points, _ = run_frame_policy(teacher, torch.zeros(FRAMES, 3, SIZE, SIZE), "scene", None, policy)
    scale, rotation, translation = random_similarity(torch.Generator().manual_seed(1000))  # the first call's frame
    expected = scale * truth.double() @ rotation.T + translation
    torch.testing.assert_close(points.double(), expected, atol=2e-4, rtol=1e-4)


def test_window_transform_equals_umeyama_on_exact_similarities_and_keeps_the_spread_under_noise():
    g = torch.Generator().manual_seed(4)
    source = torch.randn(200, 3, dtype=torch.float64, generator=g)
    scale, rotation, translation = random_similarity(g)
    target = scale * source @ rotation.T + translation
    weights = torch.rand(200, dtype=torch.float64, generator=g)
    transform = window_transform(source, target, weights)
    _, umeyama = similarity_align(source[None], target[None], weights[None])
    torch.testing.assert_close(transform.scale, umeyama.scale)
    torch.testing.assert_close(transform.rotation, umeyama.rotation)
    torch.testing.assert_close(transform.translation, umeyama.translation)
    torch.testing.assert_close(transform.scale[0].item(), scale)
    noisy = source + torch.randn(200, 3, dtype=torch.float64, generator=g)  # same spread statistics as target/scale
    shrunk = similarity_align(noisy[None], (source + torch.randn(200, 3, dtype=torch.float64, generator=g))[None])[1].scale
    kept = window_transform(noisy, source + torch.randn(200, 3, dtype=torch.float64, generator=g)).scale
    assert shrunk.item() < 0.7 and 0.85 < kept.item() < 1.18
