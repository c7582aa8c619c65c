"""``pmsplat teacher precompute / verify / list`` end to end, the cache built through the registry,
and the cache teacher behind PMLoss (PM-Loss's resize to the teacher's patch multiple and back)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from splatcore.dataset import ChunkedDataset, ViewSamplerAllCfg, load_chunk

from pmsplat.cli import main
from pmsplat.loss import PMLoss
from pmsplat.synthetic import SynthConfig, generate, synthetic_dataset_cfg
from pmsplat.synthetic.evaluation_index import EvaluationIndexLayout
from pmsplat.teachers import cache_store as store
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.cache import CacheTeacher, CacheTeacherCfg
from pmsplat.teachers.cache_build import CacheBuildCfg, precompute
from pmsplat.teachers.registry import build_teacher

LAYOUT = EvaluationIndexLayout(interpolation_gap=(4, 8), interpolation_targets=2, extrapolation_gap=6,
                               extrapolation_window=4, extrapolation_targets_per_side=2)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_cli")
    generate(SynthConfig(out=root, train_scenes=2, test_scenes=2, frames=16, height=16, width=16, seed=2,
                         supersample=1, scenes_per_chunk=1, index_layout=LAYOUT))
    return root


def test_precompute_verify_and_list(dataset_root, tmp_path, capsys):
    out = tmp_path / "cache"
    for shard in ("0/2", "1/2"):
        assert main(["teacher", "precompute", "--dataset", str(dataset_root), "--out", str(out), "--stage", "test",
                     "--set", "seed=5", "noise_std=0.001", "--shard", shard]) == 0
    assert "1 scene(s) computed" in capsys.readouterr().out
    assert main(["teacher", "verify", str(out), "--dataset", str(dataset_root)]) == 0
    assert "OK: 2/2 scenes complete" in capsys.readouterr().out
    # a re-run resumes: nothing left to compute
    assert main(["teacher", "precompute", "--dataset", str(dataset_root), "--out", str(out), "--stage", "test",
                 "--set", "seed=5", "noise_std=0.001"]) == 0
    printed = capsys.readouterr().out
    assert "0 scene(s) computed (0 of them to repair a corrupt or missing file), 2 already done (checksums verified)" in printed
    # other options into the same folder: refused with the difference
    assert main(["teacher", "precompute", "--dataset", str(dataset_root), "--out", str(out), "--stage", "test"]) == 1
    assert "options.seed: cache has 5, expected 0" in capsys.readouterr().err
    # a deleted scene file: verify fails and names it
    scene = sorted(store.read_json(out / store.SCENE_LIST, "list"))[0]
    store.scene_paths(out, scene)[0].unlink()
    assert main(["teacher", "verify", str(out), "--quick"]) == 1
    assert f"missing 1 scene(s): ['{scene}']" in capsys.readouterr().out
    assert main(["teacher", "precompute", "--dataset", str(dataset_root), "--out", str(out), "--shard", "2/2"]) == 1
    assert "shard must be i/n with 0 <= i < n, got 2/2" in capsys.readouterr().err
    assert main(["teacher", "list"]) == 0
    assert "vggt" in capsys.readouterr().out
    # the registry builds the cache teacher from a config dict, checking the teacher identity
    teacher = build_teacher({"name": "cache", "path": str(out), "teacher": {"name": "synthetic", "seed": 5, "noise_std": 0.001}})
    assert isinstance(teacher, CacheTeacher)


class PatchTeacher:
    """Deterministic image -> points teacher with patch size 6 (colour + pixel coordinates)."""

    patch_size = 6

    def __call__(self, images, context=None):
        _, _, _, height, width = images.shape
        v, u = torch.meshgrid(torch.arange(height, dtype=images.dtype), torch.arange(width, dtype=images.dtype), indexing="ij")
        points = images.permute(0, 1, 3, 4, 2) + torch.stack([u, v, torch.ones_like(u)], -1) / 10
        return TeacherOutput(points=points, confidence=1 + images.mean(2))


def test_cache_behind_pmloss_equals_the_live_teacher(dataset_root, tmp_path):
    """PMLoss resizes 16x16 images to 12x12 for a patch-6 teacher and the pointmap back with
    nearest; with the cache in place of the live teacher the pointmaps and the loss agree to
    float16 precision."""
    out = tmp_path / "patch_cache"
    dataset_cfg = synthetic_dataset_cfg(dataset_root)
    precompute(CacheBuildCfg(out=out, dataset=dataset_cfg, teacher={"name": "synthetic"}), teacher=PatchTeacher())
    cfg = dataclasses.replace(dataset_cfg, view_sampler=ViewSamplerAllCfg(), augment=False)
    dataset = ChunkedDataset(cfg, "train")
    path = dataset.chunks[0]
    example = load_chunk(path)[0]
    views = dataset.load_example(example, path)["context"]
    indices = [3, 12]
    images = views["image"][indices][None]
    context = {"scene": [example["key"]], "index": torch.tensor([indices])}
    live, cached = PMLoss(PatchTeacher()), PMLoss(build_teacher({"name": "cache", "path": str(out)}))
    live_points, live_confidence = live.teacher_points(images, context)
    cached_points, cached_confidence = cached.teacher_points(images, context)
    assert cached_points.shape == (1, 2, 16, 16, 3)
    torch.testing.assert_close(cached_points, live_points, rtol=2**-10, atol=1e-6)
    torch.testing.assert_close(cached_confidence, live_confidence, rtol=2**-10, atol=1e-6)
    means = (live_points + 0.01 * torch.randn(live_points.shape, generator=torch.Generator().manual_seed(0))).reshape(1, -1, 3)
    torch.testing.assert_close(cached(means, images, context), live(means, images, context), rtol=1e-2, atol=1e-9)


@pytest.mark.gpu
def test_cache_teacher_serves_on_the_images_device(dataset_root, tmp_path):
    out = tmp_path / "gpu_cache"
    precompute(CacheBuildCfg(out=out, dataset=synthetic_dataset_cfg(dataset_root), teacher={"name": "synthetic"}))
    cfg = dataclasses.replace(synthetic_dataset_cfg(dataset_root), view_sampler=ViewSamplerAllCfg(), augment=False)
    dataset = ChunkedDataset(cfg, "train")
    example = load_chunk(dataset.chunks[0])[0]
    views = dataset.load_example(example, dataset.chunks[0])["context"]
    images = views["image"][[0, 4]][None]
    context = {"scene": [example["key"]], "index": torch.tensor([[0, 4]])}
    teacher = CacheTeacher(CacheTeacherCfg(path=out))
    on_cpu = teacher(images, context)
    on_gpu = teacher(images.cuda(), {**context, "index": context["index"].cuda()})
    assert on_gpu.points.is_cuda and on_gpu.confidence.is_cuda
    assert torch.equal(on_gpu.points.cpu(), on_cpu.points)


def test_precompute_takes_its_shard_from_torchrun_or_srun(dataset_root, tmp_path, capsys, monkeypatch):
    from pmsplat.commands.teacher import launcher_shard

    assert launcher_shard({"RANK": "3", "WORLD_SIZE": "8"}) == "3/8"
    assert launcher_shard({"SLURM_PROCID": "1", "SLURM_NTASKS": "4"}) == "1/4"
    assert launcher_shard({}) == "0/1"
    out = tmp_path / "cache"
    for rank in ("0", "1"):  # two ranks of a torchrun launch, one after the other
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(["teacher", "precompute", "--dataset", str(dataset_root), "--out", str(out), "--stage", "test"]) == 0
        assert f"Shard {rank}/2: 1 scene(s) computed" in capsys.readouterr().out
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert main(["teacher", "verify", str(out), "--dataset", str(dataset_root)]) == 0
    assert "OK: 2/2 scenes complete" in capsys.readouterr().out
