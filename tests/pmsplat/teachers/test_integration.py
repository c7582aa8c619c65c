"""Integration tests against the REAL teacher packages, run where they are importable.

Each test builds a small randomly initialised model with the package's own constructor, saves it
in the package's official format (DUSt3R: ``{"model", "args": Namespace(model=<call>)}`` .pth,
``.safetensors``, Hugging Face folders; VGGT: state-dict .pt and folders; DA3: folders), loads it
through the teacher config exactly as a user would, and compares the teacher's output with the
package's own inference on the same input. Without the package each test is skipped with the
reason and the install route (see the README, "Teachers"):

    DUSt3R:  git clone --recursive https://github.com/naver/dust3r /path/to/dust3r
             pip install -r /path/to/dust3r/requirements.txt
             PMSPLAT_DUST3R_REPO=/path/to/dust3r pytest tests/pmsplat/teachers/test_integration.py
    VGGT:    pip install "vggt @ git+https://github.com/facebookresearch/vggt"
    DA3:     pip install depth-anything-3 addict   (+ a torchvision matching the installed torch)

The VGGT test builds the full 1B-parameter architecture (VGGT's constructor has no smaller
preset): about 5 GB of memory and a minute or two on CPU.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import numpy as np
import pytest
import torch

from pmsplat.teachers.registry import TEACHERS

SMALL_DUST3R = (
    "AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed', img_size=(64, 64), "
    "head_type='linear', output_mode='pts3d', depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), "
    "enc_embed_dim=64, enc_depth=2, enc_num_heads=2, dec_embed_dim=32, dec_depth=2, dec_num_heads=2)"
)


def import_or_skip(module: str, teacher: str, before=None):
    """Import ``module`` or skip with the reason (an ImportError, or torchvision's RuntimeError)."""
    if before is not None:
        before()
    try:
        return importlib.import_module(module)
    except (ImportError, RuntimeError) as error:
        pytest.skip(f"{module} is not importable ({type(error).__name__}: {error}); install the {teacher} teacher: "
                    f"{TEACHERS[teacher].install}")


def _dust3r_repo():
    from pmsplat.teachers.dust3r import use_repo

    use_repo(None)  # $PMSPLAT_DUST3R_REPO, when set


@pytest.fixture
def dust3r_model_class(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    return import_or_skip("dust3r.model", "dust3r", before=_dust3r_repo).AsymmetricCroCo3DStereo


def dust3r_reference(net, images: torch.Tensor) -> dict:
    """The package's own two-view inference (DUSt3R's documented view dicts, images in [-1, 1])."""
    from dust3r.inference import inference

    height, width = images.shape[-2:]
    views = [{"img": image[None] * 2 - 1, "true_shape": np.int32([[height, width]]), "idx": i, "instance": str(i)}
             for i, image in enumerate(images)]
    return inference([(views[0], views[1])], net, "cpu", batch_size=1, verbose=False)


@pytest.mark.parametrize("kind", ["official_pth", "safetensors_with_architecture", "hf_folder_absolute", "hf_folder_relative"])
def test_dust3r_loads_every_format_and_matches_the_package(dust3r_model_class, tmp_path, monkeypatch, kind):
    from pmsplat.teachers.dust3r import DUSt3RTeacher, DUSt3RTeacherCfg
    from pmsplat.teachers.dust3r_checkpoint import inference_kwargs, parse_constructor_call

    torch.manual_seed(0)
    net = dust3r_model_class(**inference_kwargs(parse_constructor_call(SMALL_DUST3R)[1])).eval()
    options = {}
    if kind == "official_pth":
        weights = tmp_path / "DUSt3R_small.pth"
        torch.save({"model": net.state_dict(), "args": argparse.Namespace(model=SMALL_DUST3R, lr=1e-4), "epoch": 1}, weights)
    elif kind == "safetensors_with_architecture":
        from safetensors.torch import save_file

        weights = tmp_path / "DUSt3R_small.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
        options["architecture"] = SMALL_DUST3R
    else:
        weights = tmp_path / "DUSt3R_small_hf"
        net.save_pretrained(str(weights))
        if kind == "hf_folder_relative":
            monkeypatch.chdir(tmp_path)
            weights = "DUSt3R_small_hf"
    teacher = DUSt3RTeacher(DUSt3RTeacherCfg(weights=str(weights), device="cpu", progress=False, **options))
    images = torch.rand(1, 2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    out = teacher(images)
    with torch.no_grad():
        reference = dust3r_reference(net, images[0])
    torch.testing.assert_close(out.points[0, 0], reference["pred1"]["pts3d"][0].float())
    torch.testing.assert_close(out.points[0, 1], reference["pred2"]["pts3d_in_other_view"][0].float())
    torch.testing.assert_close(out.confidence[0, 1], reference["pred2"]["conf"][0].float())


def test_dust3r_more_views_run_the_global_alignment(dust3r_model_class, tmp_path):
    from pmsplat.teachers.dust3r import DUSt3RTeacher, DUSt3RTeacherCfg

    weights = tmp_path / "c.pth"
    from pmsplat.teachers.dust3r_checkpoint import inference_kwargs, parse_constructor_call

    net = dust3r_model_class(**inference_kwargs(parse_constructor_call(SMALL_DUST3R)[1]))
    torch.save({"model": net.state_dict(), "args": argparse.Namespace(model=SMALL_DUST3R)}, weights)
    teacher = DUSt3RTeacher(DUSt3RTeacherCfg(weights=str(weights), device="cpu", progress=False,
                                             global_alignment_iterations=3, pair_window=1))
    out = teacher(torch.rand(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(2)))
    assert out.points.shape == (1, 4, 32, 32, 3) and torch.isfinite(out.points).all()
    assert teacher.last_pairs == 6 and out.confidence.shape == (1, 4, 32, 32)


@pytest.fixture(scope="module")
def vggt_model():
    module = import_or_skip("vggt.models.vggt", "vggt")
    torch.manual_seed(0)
    return module.VGGT().eval()


def test_vggt_file_and_folder_match_the_package(vggt_model, tmp_path):
    from pmsplat.teachers.vggt import VGGTTeacher, VGGTTeacherCfg

    images = torch.rand(1, 2, 3, 28, 42, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = vggt_model(images)
    torch.save(vggt_model.state_dict(), tmp_path / "model.pt")
    vggt_model.save_pretrained(str(tmp_path / "folder"))
    for weights in [tmp_path / "model.pt", tmp_path / "folder"]:
        teacher = VGGTTeacher(VGGTTeacherCfg(weights=str(weights), device="cpu", dtype="float32"))
        out = teacher(images)
        torch.testing.assert_close(out.points, reference["world_points"].float())
        torch.testing.assert_close(out.confidence, reference["world_points_conf"].float())
        del teacher


def test_vggt_depth_and_cameras_match_the_package_unprojection(vggt_model):
    from vggt.utils.geometry import unproject_depth_map_to_point_map
    from vggt.utils.pose_enc import pose_encoding_to_extri_intri

    from pmsplat.teachers.vggt import VGGTTeacher, VGGTTeacherCfg

    images = torch.rand(1, 2, 3, 28, 42, generator=torch.Generator().manual_seed(4))
    teacher = VGGTTeacher(VGGTTeacherCfg(points_from="depth_and_cameras", device="cpu", dtype="float32"), model=vggt_model)
    out = teacher(images)
    with torch.no_grad():
        predictions = vggt_model(images)
    extrinsic, intrinsic = pose_encoding_to_extri_intri(predictions["pose_enc"], images.shape[-2:])
    expected = unproject_depth_map_to_point_map(predictions["depth"][0].numpy(), extrinsic[0].numpy(), intrinsic[0].numpy())
    torch.testing.assert_close(out.points[0], torch.as_tensor(expected, dtype=torch.float32), atol=1e-4, rtol=1e-4)


def test_da3_folder_matches_the_package_unprojection(tmp_path, monkeypatch):
    api = import_or_skip("depth_anything_3.api", "da3")
    from depth_anything_3.utils.geometry import affine_inverse, unproject_depth

    from pmsplat.teachers.da3 import DA3Teacher, DA3TeacherCfg

    torch.manual_seed(0)
    net = api.DepthAnything3(model_name="da3-small").eval()
    net.save_pretrained(str(tmp_path / "da3-small"))
    monkeypatch.chdir(tmp_path)
    teacher = DA3Teacher(DA3TeacherCfg(weights="da3-small", device="cpu", process_res=56, ref_view_strategy="first"))
    images = torch.rand(1, 3, 3, 56, 56, generator=torch.Generator().manual_seed(5))
    out = teacher(images)
    frames = [(image.permute(1, 2, 0) * 255).round().byte().numpy() for image in images[0]]
    prediction = teacher.model.inference(frames, process_res=56, ref_view_strategy="first")
    assert prediction.depth.shape == (3, 56, 56)  # no resize: the package's own unprojection is comparable
    extrinsics = torch.as_tensor(prediction.extrinsics, dtype=torch.float32)
    if extrinsics.shape[-2] == 3:
        extrinsics = torch.cat([extrinsics, torch.tensor([0, 0, 0, 1.0]).expand(3, 1, 4)], dim=-2)
    expected = unproject_depth(
        torch.as_tensor(prediction.depth)[None, ..., None], torch.as_tensor(prediction.intrinsics)[None], affine_inverse(extrinsics)[None]
    )[0]
    torch.testing.assert_close(out.points[0], expected.float(), atol=1e-4, rtol=1e-4)
