"""The one evaluation loop of the core (splatcore.evaluation.loop): upstream metrics per view, scene
metrics plugged in through the registry, chunked rendering, the one averaging rule, and the core
never importing its users."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from splatcore.evaluation import (
    EvaluationSettings,
    ScoreBook,
    compute_psnr,
    evaluate_scene,
    evaluate_scenes,
    register_scene_metric,
    registered_scene_metrics,
    scene_metric,
)
from splatcore.errors import InputError
from splatcore.types import DecoderOutput, Gaussians

H = W = 16


class FakeEncoder(torch.nn.Module):
    """Returns one Gaussian per context pixel (centres from the pixel colours; the fake decoder
    ignores them)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, bool]] = []

    def forward(self, context, global_step, deterministic=False, scene_names=None):
        self.calls.append((global_step, deterministic))
        means = context["image"].permute(0, 1, 3, 4, 2).reshape(1, -1, 3)
        g = means.shape[1]
        gaussians = Gaussians(
            means=means, covariances=torch.eye(3).expand(1, g, 3, 3), harmonics=torch.zeros(1, g, 3, 1),
            opacities=torch.ones(1, g),
        )
        return {"gaussians": gaussians, "depths": None}


class FakeDecoder(torch.nn.Module):
    """Renders view v as a constant grey whose level depends on the view's near plane."""

    def __init__(self) -> None:
        super().__init__()
        self.view_counts: list[int] = []

    def forward(self, gaussians, extrinsics, intrinsics, near, far, shape, depth_mode=None):
        b, v = near.shape
        self.view_counts.append(v)
        color = (near / 10.0)[..., None, None, None].expand(b, v, 3, *shape).clone()
        depth = near[..., None, None].expand(b, v, *shape).clone() if depth_mode is not None else None
        return DecoderOutput(color=color, depth=depth, alpha=None if depth is None else torch.ones_like(depth))


def _batch(scene: str, views: int = 3, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    near = torch.arange(1, views + 1, dtype=torch.float32)[None]
    target = {
        "image": torch.rand(1, views, 3, H, W, generator=generator),
        "extrinsics": torch.eye(4).expand(1, views, 4, 4),
        "intrinsics": torch.eye(3).expand(1, views, 3, 3),
        "near": near,
        "far": near + 10,
        "index": torch.arange(views)[None],
    }
    context = {"image": torch.rand(1, 2, 3, H, W, generator=generator)}
    return {"context": context, "target": target, "scene": [scene]}


@register_scene_metric("test_mean_render")
def _mean_render(scene, options):
    scale = 1.0 if options is None else options
    return {"mean_render": scale * scene.color.mean(dim=(1, 2, 3)), "undefined_first": math.nan if scene.scene == "a" else 1.0}


def test_scene_metric_registry_and_unknown_names():
    assert "test_mean_render" in registered_scene_metrics()
    assert scene_metric("test_mean_render") is _mean_render
    with pytest.raises(InputError, match="test_mean_render"):  # the message lists what is registered
        scene_metric("nope")
    with pytest.raises(InputError, match="already registered"):
        register_scene_metric("test_mean_render")(lambda scene, options: {})


def test_one_scene_upstream_and_plugged_in_metrics():
    encoder, decoder, book = FakeEncoder(), FakeDecoder(), ScoreBook()
    batch = _batch("a")
    settings = EvaluationSettings(global_step=7, deterministic=True, depth_mode="depth", scene_metrics=("test_mean_render",),
                                  scene_metric_options={"test_mean_render": 2.0})
    scene = evaluate_scene(encoder, decoder, batch, book, settings)
    assert encoder.calls == [(7, True)] and scene.output.depth is not None
    gt, color = batch["target"]["image"][0], scene.color
    expected_psnr = float(compute_psnr(gt, color).mean())  # per-view values, mean in their dtype (float32)
    assert book.per_scene("psnr") == [expected_psnr]
    assert scene.scores["mean_render"] == pytest.approx(2.0 * float(color.mean()))
    assert {"psnr", "ssim", "mean_render", "undefined_first"} <= set(book.metrics)


def test_chunked_rendering_gives_the_same_scene():
    whole, chunked = ScoreBook(), ScoreBook()
    decoder = FakeDecoder()
    one = evaluate_scene(FakeEncoder(), decoder, _batch("a", views=5), whole, EvaluationSettings())
    assert decoder.view_counts == [5]
    decoder = FakeDecoder()
    two = evaluate_scene(FakeEncoder(), decoder, _batch("a", views=5), chunked, EvaluationSettings(chunk_size=2))
    assert decoder.view_counts == [2, 2, 1]
    assert torch.equal(one.color, two.color) and whole.rows() == chunked.rows()


def test_loop_over_scenes_averages_by_the_one_rule():
    seen = []
    book = evaluate_scenes(
        FakeEncoder(), FakeDecoder(), [_batch("a", views=2, seed=1), _batch("b", views=4, seed=2), _batch("c", seed=3)],
        EvaluationSettings(scene_metrics=("test_mean_render",)), on_scene=lambda s: seen.append(s.scene), max_scenes=2,
    )
    assert seen == ["a", "b"] == book.scenes
    averages = book.averages()
    assert averages["psnr"] == sum(book.per_scene("psnr")) / 2  # mean over scenes of the per-scene means
    assert averages["undefined_first"] == 1.0  # a scene where a per-scene value is NaN is skipped


def test_batch_of_two_scenes_is_refused():
    batch = _batch("a")
    batch["target"]["image"] = batch["target"]["image"].expand(2, -1, -1, -1, -1)
    with pytest.raises(InputError, match="batch_size=1"):
        evaluate_scene(FakeEncoder(), FakeDecoder(), batch, ScoreBook())


def test_scorebook_rows_and_unavailable_columns():
    book = ScoreBook()
    book.mark_unavailable("lpips", "no weights")
    book.add("a", {"psnr": torch.tensor([10.0, 20.0]), "ssim": torch.tensor([0.5]), "p2s": math.nan})
    book.add("b", {"psnr": torch.tensor([30.0]), "ssim": torch.tensor([0.7]), "p2s": 2.0})
    assert book.columns == ["psnr", "ssim", "lpips", "p2s"]  # upstream metrics first, unavailable included
    rows = book.rows()
    assert rows[0]["scene"] == "a" and rows[0]["psnr"] == 15.0 and math.isnan(rows[0]["lpips"]) and math.isnan(rows[0]["p2s"])
    assert list(book.averages()) == ["psnr", "ssim", "p2s"] and book.averages()["p2s"] == 2.0
    with_nan = book.averages(unavailable_as_nan=True)
    assert list(with_nan) == ["psnr", "ssim", "lpips", "p2s"] and math.isnan(with_nan["lpips"])
    with pytest.raises(InputError, match="NaN"):  # per-view values may not be NaN
        book.add("c", {"psnr": torch.tensor([math.nan]), "ssim": torch.tensor([0.7]), "p2s": 1.0})


def test_the_core_evaluation_does_not_import_pmsplat():
    """The loop knows its plug-ins only through the registry (the model wrapper's own imports go
    through the loss registry, whose patch line is the import-layer contract's business)."""
    code = (
        "import sys, splatcore.evaluation; "
        "bad = sorted(m for m in sys.modules if m == 'pmsplat' or m.startswith('pmsplat.')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
