"""The test step: every target view rendered, score files in the upstream layout
(``scores_{psnr,ssim}_all.json`` per scene, ``scores_all_avg.json``), values equal to an
independent float64 per-view -> per-scene -> over-scenes computation, PNGs where upstream puts them."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from PIL import Image

from splatcore.main import build_model, compose_config, run, typed_config
from testkit.tiny_mvsplat import tiny_overrides


def test_test_mode_writes_upstream_score_files(tiny_synthetic, tmp_path):
    overrides = tiny_overrides(
        tiny_synthetic, tmp_path, "mode=test", "dataset/view_sampler=evaluation", "test.compute_scores=true",
        "test.save_image=true", "wandb.name=tiny",
    )
    cfg = compose_config(overrides)
    result = run(cfg)
    out = tmp_path / "test" / "tiny"
    index = json.loads((tiny_synthetic / "evaluation_index_interpolation.json").read_text())
    scenes = [k for k, v in index.items() if v is not None]

    # independent reference: same initial weights (run seeds torch with `seed` before building)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).eval()
    from splatcore.dataset import DataModule

    from splatcore.evaluation import EvaluationSettings, ScoreBook, evaluate_scene

    run_cfg = typed_config(cfg)
    per_scene: dict[str, float] = {}
    n_targets: dict[str, int] = {}
    loop_book = ScoreBook()  # the shared loop, called directly with the test step's settings
    for batch in DataModule(run_cfg.dataset, run_cfg.data_loader).test_dataloader():
        batch = model.data_shim(batch)
        evaluate_scene(model.encoder, model.decoder, batch, loop_book, EvaluationSettings(chunk_size=run_cfg.test.chunk_size))
        with torch.no_grad():
            gaussians, _ = model.encode(batch)
            color = model.render(gaussians, batch["target"], None).color[0].double()
        gt = batch["target"]["image"][0].double()
        mse = ((color.clamp(0, 1) - gt.clamp(0, 1)) ** 2).mean(dim=(1, 2, 3))
        per_scene[batch["scene"][0]] = float((-10 * torch.log10(mse)).mean())
        n_targets[batch["scene"][0]] = gt.shape[0]
        assert n_targets[batch["scene"][0]] == len(index[batch["scene"][0]]["target"])

    assert sorted(per_scene) == sorted(scenes) and len(scenes) == 2
    psnr_all = json.loads((out / "scores_psnr_all.json").read_text())
    ssim_all = json.loads((out / "scores_ssim_all.json").read_text())
    assert len(psnr_all) == len(ssim_all) == 2
    by_scene = json.loads((out / "scores_by_scene.json").read_text())
    for scene, value in per_scene.items():
        assert by_scene[scene]["psnr"] == __import__("pytest").approx(value, abs=1e-4)
    # the test step is one scene of the shared evaluation loop: the same per-scene numbers, bit for bit
    assert by_scene == {row.pop("scene"): row for row in loop_book.rows()}
    averages = json.loads((out / "scores_all_avg.json").read_text())
    assert averages["psnr"] == __import__("pytest").approx(sum(per_scene.values()) / 2, abs=1e-4)
    assert 0 < averages["ssim"] < 1 and averages["encoder"][0] == 2 and averages["decoder"][0] == 2
    assert ("lpips" in averages) != ("unavailable" in averages)  # LPIPS reported or declared unavailable, never 0
    assert result.scores is not None and math.isclose(result.scores["psnr"], averages["psnr"])
    benchmark = json.loads((out / "benchmark.json").read_text())
    assert benchmark["calls"] == 2 and (out / "peak_memory.json").is_file()
    for scene in scenes:
        for target in index[scene]["target"]:
            png = out / scene / "color" / f"{target:06d}.png"
            assert np.asarray(Image.open(png)).shape == (32, 32, 3), png
