"""The small model-wrapper helpers: Gaussian slicing and view tiling."""

from __future__ import annotations


import torch

from splatcore.model.model_wrapper import slice_gaussians, tile_views
from splatcore.types import Gaussians

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
