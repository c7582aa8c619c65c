"""Data shims: PIL resize with the uint8 round trip and configurable filter, the upstream
intrinsics rule, horizontal flip geometry, the patch-multiple centre crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from splatcore.dataset import apply_patch_shim, rescale_and_crop_views
from splatcore.dataset import shims
from splatcore.errors import ConfigError
from splatcore.dataset.shims import flip_views, rescale_image

from pmsplat.adapter.fork import crop_shim_filter


def rescale(image: torch.Tensor, shape: tuple[int, int], name: str) -> torch.Tensor:
    """The crop shim's resize with the filter the PM-Loss fork's option selects (dataset.resize_filter)."""
    with crop_shim_filter(name):
        return rescale_image(image, shape)


def views(height: int, width: int, count: int = 2, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    intrinsics = torch.tensor([[0.8, 0, 0.5], [0, 1.4, 0.5], [0, 0, 1.0]]).repeat(count, 1, 1)
    return {
        "extrinsics": torch.eye(4).repeat(count, 1, 1),
        "intrinsics": intrinsics,
        "image": (torch.randint(0, 256, (count, 3, height, width), generator=generator) / 255).float(),
        "depth": torch.rand(count, height, width, generator=generator) + 1,
        "pointmap": torch.randn(count, height, width, 3, generator=generator),
    }


@pytest.mark.parametrize("name, pil_filter", [("lanczos", Image.Resampling.LANCZOS), ("bilinear", Image.Resampling.BILINEAR)])
def test_rescale_matches_pil_on_uint8(name, pil_filter):
    image = views(30, 50)["image"][0]
    ours = rescale(image, (17, 29), name)
    array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    reference = np.asarray(Image.fromarray(array).resize((29, 17), pil_filter)) / 255
    np.testing.assert_allclose(ours.permute(1, 2, 0).numpy(), reference, atol=1e-7)


def test_lanczos_and_bilinear_differ():
    image = views(30, 50)["image"][0]
    assert not torch.allclose(rescale(image, (17, 29), "lanczos"), rescale(image, (17, 29), "bilinear"))
    torch.testing.assert_close(rescale_image(image, (17, 29)), rescale(image, (17, 29), "lanczos"), rtol=0, atol=0)


def test_crop_shim_filter_is_restored_and_checked():
    with pytest.raises(RuntimeError):
        with crop_shim_filter("bilinear"):
            assert shims.RESIZE_FILTER == Image.Resampling.BILINEAR
            raise RuntimeError
    assert shims.RESIZE_FILTER == Image.Resampling.LANCZOS  # upstream
    with pytest.raises(ConfigError, match="resize_filter"):
        with crop_shim_filter("cubic"):
            pass


def test_crop_shim_re10k_example_and_intrinsics_rule():
    source = views(360, 640, count=1)
    result = rescale_and_crop_views(source, (256, 256))
    assert result["image"].shape == (1, 3, 256, 256)
    assert result["depth"].shape == (1, 256, 256) and result["pointmap"].shape == (1, 256, 256, 3)
    # 360x640 -> 256x455 -> centre crop: fx x 455/256, fy x 256/256, cx, cy untouched
    np.testing.assert_allclose(result["intrinsics"][0, 0, 0].item(), 0.8 * 455 / 256, rtol=1e-6)
    np.testing.assert_allclose(result["intrinsics"][0, 1, 1].item(), 1.4, rtol=1e-6)
    assert result["intrinsics"][0, 0, 2].item() == 0.5 and result["intrinsics"][0, 1, 2].item() == 0.5
    wide = rescale_and_crop_views(source, (256, 448))
    np.testing.assert_allclose(wide["intrinsics"][0, 0, 0].item(), 0.8 * 455 / 448, rtol=1e-6)


def test_crop_shim_depth_is_nearest_and_crop_is_centred():
    source = views(20, 40, count=1)
    result = rescale_and_crop_views(source, (10, 10))  # scale 0.5 -> 10x20 -> columns 5..14
    assert set(result["depth"].flatten().tolist()) <= set(source["depth"].flatten().tolist())
    # nearest-exact at scale 1/2 picks source pixel 2k+1; crop starts at column 5
    np.testing.assert_array_equal(result["depth"][0].numpy(), source["depth"][0, 1::2, 11:31:2].numpy())
    identity = rescale_and_crop_views(source, (20, 40))
    assert torch.equal(identity["image"], source["image"]) and torch.equal(identity["intrinsics"], source["intrinsics"])


def project(point: np.ndarray, c2w: np.ndarray, k: np.ndarray, height: int, width: int) -> np.ndarray:
    camera = np.linalg.inv(c2w) @ np.append(point, 1)
    uv = k @ (camera[:3] / camera[2])
    return np.array([uv[0] * width, uv[1] * height])


def test_flip_mirrors_projections_and_pointmaps():
    source = views(8, 12, count=1)
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q if np.linalg.det(q) > 0 else -q
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = q, [0.3, -0.2, 0.5]
    source["extrinsics"] = torch.tensor(c2w, dtype=torch.float32)[None]
    flipped = flip_views(source)
    point = c2w[:3, :3] @ np.array([0.2, 0.1, 2.0]) + c2w[:3, 3]  # in front of the camera
    k = source["intrinsics"][0].double().numpy()
    u, v = project(point, c2w, k, 8, 12)
    reflected = point * np.array([-1, 1, 1])
    u_flip, v_flip = project(reflected, flipped["extrinsics"][0].double().numpy(), k, 8, 12)
    np.testing.assert_allclose([u_flip, v_flip], [12 - u, v], atol=1e-5)
    assert torch.equal(flipped["image"], source["image"].flip(-1))
    assert torch.equal(flipped["depth"], source["depth"].flip(-1))
    np.testing.assert_array_equal(flipped["pointmap"][0].flip(1)[..., 0].numpy(), -source["pointmap"][0, ..., 0].numpy())
    np.testing.assert_array_equal(flipped["pointmap"][0].flip(1)[..., 1:].numpy(), source["pointmap"][0, ..., 1:].numpy())


def test_patch_shim_crops_to_multiple_and_scales_focal():
    source = {name: value[None] for name, value in views(70, 90, count=2).items()}
    result = apply_patch_shim({"context": source, "target": source}, 16)
    assert result["context"]["image"].shape == (1, 2, 3, 64, 80)
    assert result["target"]["depth"].shape == (1, 2, 64, 80)
    assert torch.equal(result["context"]["image"], source["image"][..., 3:67, 5:85])
    assert torch.equal(result["context"]["pointmap"], source["pointmap"][:, :, 3:67, 5:85])
    np.testing.assert_allclose(result["context"]["intrinsics"][0, 0, 0, 0].item(), 0.8 * 90 / 80, rtol=1e-6)
    np.testing.assert_allclose(result["context"]["intrinsics"][0, 0, 1, 1].item(), 1.4 * 70 / 64, rtol=1e-6)
    odd = {name: value[None] for name, value in views(71, 90, count=1).items()}
    with pytest.raises(ConfigError, match="even image sizes"):
        apply_patch_shim({"context": odd}, 16)
