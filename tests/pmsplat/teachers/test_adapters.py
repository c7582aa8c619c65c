"""Adapters of the real pointmap teachers VGGT and Depth Anything 3 (DUSt3R: tests/pmsplat/teachers/test_dust3r.py).

None of the packages is installed here (vggt is only on GitHub; depth-anything-3 pins numpy<2 and
imports torchvision, which the CPU setup removes), so these tests check the adapter logic against small stand-in
modules injected into ``sys.modules`` that honour each package's DOCUMENTED output contract (names,
shapes, frames, units), with geometry built from known cameras so the expected pointmaps are known
exactly. The loading code (local file / hub id / missing package) is the real one.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pmsplat.errors import InputError, MissingDependencyError, MissingWeightsError
from pmsplat.teachers.geometry import unproject_depth

H, W = 28, 42


def random_camera(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """An OpenCV world-to-camera [R|t] (3, 4) and a pixel K (3, 3)."""
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    rotation = q * torch.sign(torch.linalg.det(q))
    translation = torch.randn(3, generator=generator, dtype=torch.float64)
    k = torch.tensor([[40.0, 0, W / 2 - 0.3], [0, 38.0, H / 2 + 0.2], [0, 0, 1]], dtype=torch.float64)
    return torch.cat([rotation, translation[:, None]], dim=1), k


def test_unproject_depth_matches_projection_loop():
    """unproject_depth inverts the pinhole projection pixel by pixel (float64 loop reference)."""
    g = torch.Generator().manual_seed(0)
    w2c, k = random_camera(g)
    depth = 1 + torch.rand(H, W, generator=g, dtype=torch.float64) * 3
    points = unproject_depth(depth, w2c, k)
    for row, col in [(0, 0), (5, 17), (H - 1, W - 1), (13, 3)]:
        camera = w2c[:, :3] @ points[row, col] + w2c[:, 3]
        assert camera[2].item() == pytest.approx(depth[row, col].item(), rel=1e-12)
        pixel = k @ (camera / camera[2])
        assert pixel[0].item() == pytest.approx(col, abs=1e-9)
        assert pixel[1].item() == pytest.approx(row, abs=1e-9)


def scene_views(batch: int, views: int, seed: int = 0):
    """Known depth, cameras and the world points they define, (B, V, ...) float32."""
    g = torch.Generator().manual_seed(seed)
    cams = [[random_camera(g) for _ in range(views)] for _ in range(batch)]
    w2c = torch.stack([torch.stack([c[0] for c in row]) for row in cams]).float()
    k = torch.stack([torch.stack([c[1] for c in row]) for row in cams]).float()
    depth = (1 + torch.rand(batch, views, H, W, generator=g) * 3).float()
    return depth, w2c, k, unproject_depth(depth.double(), w2c.double(), k.double()).float()


class FakeVGGT(nn.Module):
    """Honours VGGT's documented forward contract: images (B, S, 3, H, W) in [0, 1] → dict with
    world_points (B,S,H,W,3), world_points_conf (B,S,H,W), depth (B,S,H,W,1), depth_conf, pose_enc."""

    scene = None

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))
        self.calls = []

    pretrained_calls: list = []

    @classmethod
    def from_pretrained(cls, name):
        cls.pretrained_calls.append(name)
        if Path(name).is_dir():  # the Hugging Face mixin's local-folder route
            from safetensors.torch import load_file

            model = cls()
            model.load_state_dict(load_file(str(Path(name) / "model.safetensors")))
            return model
        raise OSError(f"no network: cannot fetch {name}")

    def forward(self, images):
        self.calls.append((images.shape, torch.is_grad_enabled()))
        depth, w2c, k, world = FakeVGGT.scene
        batch, views = images.shape[:2]
        return {
            "world_points": world[:batch, :views] + 0.01,  # the point head differs slightly from depth+cams
            "world_points_conf": torch.full((batch, views, H, W), 2.0),
            "depth": depth[:batch, :views, ..., None],
            "depth_conf": torch.full((batch, views, H, W), 3.0),
            "pose_enc": torch.zeros(batch, views, 9),
        }


@pytest.fixture
def fake_vggt(monkeypatch):
    FakeVGGT.scene = scene_views(2, 3)
    package = types.ModuleType("vggt")
    models = types.ModuleType("vggt.models")
    vggt_module = types.ModuleType("vggt.models.vggt")
    vggt_module.VGGT = FakeVGGT
    utils = types.ModuleType("vggt.utils")
    pose_enc = types.ModuleType("vggt.utils.pose_enc")

    def pose_encoding_to_extri_intri(encoding, image_size_hw):
        assert tuple(image_size_hw) == (H, W)
        _, w2c, k, _ = FakeVGGT.scene
        return w2c[: encoding.shape[0], : encoding.shape[1]], k[: encoding.shape[0], : encoding.shape[1]]

    pose_enc.pose_encoding_to_extri_intri = pose_encoding_to_extri_intri
    for name, module in {
        "vggt": package, "vggt.models": models, "vggt.models.vggt": vggt_module,
        "vggt.utils": utils, "vggt.utils.pose_enc": pose_enc,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    return FakeVGGT


def test_vggt_point_head_frozen_and_shapes(fake_vggt, tmp_path):
    from pmsplat.teachers.vggt import VGGTTeacher, VGGTTeacherCfg

    weights = tmp_path / "vggt.pt"
    torch.save({"weight": torch.tensor([1.0, 2.0, 3.0])}, weights)
    teacher = VGGTTeacher(VGGTTeacherCfg(weights=str(weights), device="cpu"))
    assert torch.equal(teacher.model.weight, torch.tensor([1.0, 2.0, 3.0]))  # the local file was loaded
    assert not teacher.model.training
    assert not any(p.requires_grad for p in teacher.model.parameters())
    assert teacher.dtype == torch.float32  # CPU → fp32
    images = torch.rand(2, 3, 3, H, W, requires_grad=True)
    out = teacher(images)
    assert out.points.shape == (2, 3, H, W, 3) and out.confidence.shape == (2, 3, H, W)
    torch.testing.assert_close(out.points, fake_vggt.scene[3] + 0.01)
    assert torch.all(out.confidence == 2.0)
    assert teacher.model.calls[-1] == (torch.Size([2, 3, 3, H, W]), False)  # run without autograd


def test_vggt_points_from_depth_and_cameras(fake_vggt):
    from pmsplat.teachers.vggt import VGGTTeacher, VGGTTeacherCfg

    teacher = VGGTTeacher(VGGTTeacherCfg(points_from="depth_and_cameras", device="cpu"), model=FakeVGGT())
    out = teacher(torch.rand(2, 3, 3, H, W))
    torch.testing.assert_close(out.points, fake_vggt.scene[3], atol=1e-4, rtol=1e-4)
    assert torch.all(out.confidence == 3.0)


def test_vggt_rejects_non_patch_multiple(fake_vggt):
    from pmsplat.teachers.vggt import VGGTTeacher, VGGTTeacherCfg

    teacher = VGGTTeacher(VGGTTeacherCfg(device="cpu"), model=FakeVGGT())
    with pytest.raises(ValueError, match="multiples of 14"):
        teacher(torch.rand(1, 2, 3, 30, 42))


def test_vggt_missing_weights_and_hub_failure_are_clear(fake_vggt, tmp_path):
    from pmsplat.teachers.vggt import VGGTTeacher, VGGTTeacherCfg

    with pytest.raises(MissingWeightsError, match="not found at"):
        VGGTTeacher(VGGTTeacherCfg(weights=str(tmp_path / "missing.pt"), device="cpu"))
    with pytest.raises(MissingWeightsError, match="local path"):
        VGGTTeacher(VGGTTeacherCfg(weights="facebook/VGGT-1B", device="cpu"))


@pytest.mark.parametrize("relative", [False, True])
def test_vggt_folders_load_absolute_and_relative_and_safetensors_files(fake_vggt, tmp_path, monkeypatch, relative):
    from safetensors.torch import save_file

    from pmsplat.teachers.vggt import VGGTTeacher, VGGTTeacherCfg

    folder = tmp_path / "hf" / "VGGT-1B"
    folder.mkdir(parents=True)
    save_file({"weight": torch.tensor([4.0, 5.0, 6.0])}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")
    FakeVGGT.pretrained_calls = []
    if relative:
        monkeypatch.chdir(tmp_path)
    teacher = VGGTTeacher(VGGTTeacherCfg(weights="hf/VGGT-1B" if relative else str(folder), device="cpu"))
    assert torch.equal(teacher.model.weight, torch.tensor([4.0, 5.0, 6.0]))
    assert FakeVGGT.pretrained_calls == [str(folder.resolve())]
    teacher = VGGTTeacher(VGGTTeacherCfg(weights=str(folder / "model.safetensors"), device="cpu"))
    assert torch.equal(teacher.model.weight, torch.tensor([4.0, 5.0, 6.0]))
    assert "first view's camera frame" in teacher.output_frame(5)


def test_vggt_missing_package_names_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "vggt", None)
    monkeypatch.setitem(sys.modules, "vggt.models", None)
    monkeypatch.setitem(sys.modules, "vggt.models.vggt", None)
    from pmsplat.teachers.vggt import VGGTTeacher

    with pytest.raises(MissingDependencyError, match=r"pip install .*vggt"):
        VGGTTeacher()


def test_da3_unprojects_and_resizes_to_input(monkeypatch):
    """DA3's documented ``inference`` output at its own processing resolution (here half size) →
    world points unprojected there, then nearest-resized to the input size."""
    depth, w2c, k, world = scene_views(1, 2, seed=5)
    half_depth = depth[0, :, ::2, ::2]
    half_k = k[0].clone()
    half_k[:, :2] /= 2  # K for the half-resolution grid with integer pixel centres at even pixels
    half_k[:, 0, 2] = k[0, :, 0, 2] / 2
    half_k[:, 1, 2] = k[0, :, 1, 2] / 2

    class FakeDA3(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(1))

        def inference(self, frames, **kwargs):
            assert len(frames) == 2 and frames[0].dtype == np.uint8 and frames[0].shape == (H, W, 3)
            return types.SimpleNamespace(
                depth=half_depth.numpy(), conf=np.ones((2, H // 2, W // 2), np.float32),
                extrinsics=w2c[0].numpy(), intrinsics=half_k.numpy(),
            )

    from pmsplat.teachers.da3 import DA3Teacher, DA3TeacherCfg

    teacher = DA3Teacher(DA3TeacherCfg(device="cpu"), model=FakeDA3())
    out = teacher(torch.rand(1, 2, 3, H, W))
    assert out.points.shape == (1, 2, H, W, 3)
    expected_half = unproject_depth(half_depth.double(), w2c[0].double(), half_k.double()).float()
    torch.testing.assert_close(out.points[0, :, ::2, ::2], expected_half, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.points[0, :, 1::2, 1::2], expected_half, atol=1e-4, rtol=1e-4)  # nearest


def test_da3_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "depth_anything_3", None)
    monkeypatch.setitem(sys.modules, "depth_anything_3.api", None)
    from pmsplat.teachers.da3 import DA3Teacher

    with pytest.raises(MissingDependencyError, match="pip install depth-anything-3 addict"):
        DA3Teacher()


class FakeDA3Package(nn.Module):
    """DA3's documented API: ``from_pretrained(folder | hub id)`` and ``inference(frames, **options)``."""

    pretrained_calls: list = []

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.options = []

    @classmethod
    def from_pretrained(cls, name):
        cls.pretrained_calls.append(name)
        if Path(name).is_dir():
            return cls()
        raise OSError(f"offline: {name}")

    def inference(self, frames, **options):
        self.options.append(options)
        count, (height, width) = len(frames), frames[0].shape[:2]
        k = np.array([[20.0, 0, width / 2], [0, 20.0, height / 2], [0, 0, 1]], np.float32)
        return types.SimpleNamespace(
            depth=np.ones((count, height, width), np.float32), conf=np.ones((count, height, width), np.float32),
            extrinsics=np.tile(np.eye(4, dtype=np.float32)[:3], (count, 1, 1)), intrinsics=np.tile(k, (count, 1, 1)),
        )


@pytest.fixture
def fake_da3(monkeypatch):
    package = types.ModuleType("depth_anything_3")
    api = types.ModuleType("depth_anything_3.api")
    api.DepthAnything3 = FakeDA3Package
    monkeypatch.setitem(sys.modules, "depth_anything_3", package)
    monkeypatch.setitem(sys.modules, "depth_anything_3.api", api)
    FakeDA3Package.pretrained_calls = []
    return FakeDA3Package


def test_da3_process_res_and_reference_view_are_options(fake_da3):
    from pmsplat.teachers.da3 import DA3Teacher, DA3TeacherCfg

    teacher = DA3Teacher(DA3TeacherCfg(device="cpu", process_res=280, ref_view_strategy="first",
                                       inference_kwargs={"use_ray_pose": True}), model=FakeDA3Package())
    teacher(torch.rand(1, 3, 3, 14, 28))
    assert teacher.model.options == [{"process_res": 280, "ref_view_strategy": "first", "use_ray_pose": True}]
    assert "first view's camera frame" in teacher.output_frame(3)
    default = DA3Teacher(DA3TeacherCfg(device="cpu"), model=FakeDA3Package())
    default(torch.rand(1, 2, 3, 14, 28))
    assert default.model.options == [{"process_res": 504, "ref_view_strategy": "saddle_balanced"}]  # the package defaults
    assert "first view's camera frame" in default.output_frame(2)
    assert "reference view" in default.output_frame(3) and "not necessarily the first view" in default.output_frame(3)
    with pytest.raises(InputError, match=r"set \['process_res'\] as teacher options"):
        DA3TeacherCfg(inference_kwargs={"process_res": 280})
    from pmsplat.teachers.registry import teacher_config

    with pytest.raises(InputError, match="Invalid options for teacher 'da3'.*ref_view_strategy"):
        teacher_config({"name": "da3", "ref_view_strategy": "best"})


@pytest.mark.parametrize("relative", [False, True])
def test_da3_loads_model_folders_absolute_and_relative(fake_da3, tmp_path, monkeypatch, relative):
    from pmsplat.teachers.da3 import DA3Teacher, DA3TeacherCfg

    folder = tmp_path / "snapshots" / "DA3-SMALL"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "config.json").write_text("{}")
    if relative:
        monkeypatch.chdir(tmp_path)
    DA3Teacher(DA3TeacherCfg(weights="snapshots/DA3-SMALL" if relative else str(folder), device="cpu"))
    assert fake_da3.pretrained_calls == [str(folder.resolve())]
    with pytest.raises(MissingWeightsError, match="is a file; the package loads a model folder"):
        DA3Teacher(DA3TeacherCfg(weights=str(folder / "model.safetensors"), device="cpu"))
    with pytest.raises(MissingWeightsError, match="weights not found at"):
        DA3Teacher(DA3TeacherCfg(weights=str(tmp_path / "nothing"), device="cpu"))
    with pytest.raises(MissingWeightsError, match=r"hub \(OSError: offline.*teacher.weights=/path/to/snapshot"):
        DA3Teacher(DA3TeacherCfg(device="cpu"))
