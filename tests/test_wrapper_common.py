"""Shared pieces of the model-wrapper tests (a tiny synthetic set, tiny MVSplat overrides) plus
tests of the small wrapper helpers (Gaussian slicing, view tiling)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from splatcore.model.model_wrapper import slice_gaussians, tile_views
from splatcore.types import Gaussians

SIZE = 32


def make_tiny_synthetic(root: Path) -> Path:
    """One train + two test scenes, 37 frames of 32x32 (seconds to render)."""
    from pmsplat.synthetic import SynthConfig, generate

    if not (root / "synthetic.json").is_file():
        generate(SynthConfig(out=root, train_scenes=1, test_scenes=2, frames=37, height=SIZE, width=SIZE, supersample=1))
    return root


def tiny_overrides(root: Path, output_dir: Path, *extra: str) -> list[str]:
    """The MVSplat CPU preset shrunk further (32x32, 8 depth candidates, 32 channels); ``extra``
    overrides replace base entries with the same key."""
    keys = {item.split("=", 1)[0] for item in extra}
    base = [
        "+experiment=mvsplat_synthetic_cpu",
        f"dataset.roots=[{root}]",
        f"dataset.image_shape=[{SIZE},{SIZE}]",
        f"dataset.ori_image_shape=[{SIZE},{SIZE}]",
        "model.encoder.d_feature=32",
        "model.encoder.num_depth_candidates=8",
        "model.encoder.costvolume_unet_feat_dim=16",
        "model.encoder.costvolume_unet_channel_mult=[1,1]",
        "model.encoder.depth_unet_feat_dim=16",
        f"output_dir={output_dir}",
        "trainer.enable_progress_bar=false",
    ]
    return [item for item in base if item.split("=", 1)[0] not in keys] + list(extra)


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    return make_tiny_synthetic(tmp_path_factory.mktemp("tiny_synthetic"))


def test_slice_gaussians_keeps_the_last_batch_entries():
    g = Gaussians(
        means=torch.arange(3.0).reshape(3, 1, 1).expand(3, 2, 3).contiguous(),
        covariances=torch.eye(3).expand(3, 2, 3, 3).contiguous(),
        harmonics=torch.zeros(3, 2, 3, 1),
        opacities=torch.arange(6.0).reshape(3, 2),
    )
    last = slice_gaussians(g, 2, None)
    assert last.means.shape == (1, 2, 3) and torch.equal(last.opacities, g.opacities[2:])


def test_tile_views_repeats_copy_major():
    views = {"extrinsics": torch.arange(2.0).reshape(2, 1, 1, 1).expand(2, 1, 4, 4), "near": torch.tensor([[1.0], [2.0]])}
    tiled = tile_views(views, 3)
    assert tiled["near"].flatten().tolist() == [1.0, 2.0] * 3
    assert tiled["extrinsics"].shape == (6, 1, 4, 4)
