"""The DUSt3R teacher: install route, official checkpoint formats, pair graph, import errors.

naver/dust3r cannot be installed here (GitHub only), so these tests write a stand-in *clone* to
disk (``dust3r/`` + ``croco/models/``) whose modules honour DUSt3R's documented contracts:
``AsymmetricCroCo3DStereo(**kwargs)`` (and, like upstream, crashing when built with its defaults),
``from_pretrained`` for Hugging Face folders, ``inference(pairs, model, device, batch_size,
verbose)`` -> ``{view1, view2, pred1: {pts3d, conf}, pred2: {pts3d_in_other_view, conf}}`` with
pair-frame points, and ``global_aligner``. The stand-in's predictions come from known cameras,
so the expected pointmaps are exact. Everything of pmsplat's (repo route, checkpoint parsing,
loading, chunked pair inference, merging, error mapping) is the real code.
tests/pmsplat/teachers/test_integration.py runs the same paths against the real package when importable.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pmsplat.errors import MissingDependencyError, MissingWeightsError, PmsplatError
from pmsplat.teachers.dust3r import (
    DUSt3RTeacher,
    DUSt3RTeacherCfg,
    merge_pair_outputs,
    pair_count,
    pair_graph,
)
from pmsplat.teachers.dust3r_checkpoint import ArchitectureError, inference_kwargs, parse_constructor_call
from pmsplat.teachers.geometry import unproject_depth

OFFICIAL_512_DPT = (
    "AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed', img_size=(512, 512), "
    "head_type='dpt', output_mode='pts3d', depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), "
    "enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12)"
)
SMALL = "AsymmetricCroCo3DStereo(img_size=(64, 64), enc_embed_dim=6, dec_embed_dim=4, head_type='linear', depth_mode=('exp', -inf, inf))"
H, W = 32, 48

FAKE_INIT = """
SCENE = None
SEEN = {"pairs": [], "batches": [], "verbose": [], "aligner_verbose": [], "pretrained": []}
"""

FAKE_MODEL = """
import json
from pathlib import Path

import torch
from torch import nn

import dust3r


class AsymmetricCroCo3DStereo(nn.Module):
    def __init__(self, output_mode="pts3d", head_type="linear", depth_mode=("exp", -float("inf"), float("inf")),
                 conf_mode=("exp", 1, float("inf")), freeze="none", landscape_only=True,
                 patch_embed_cls="PatchEmbedDust3R", img_size=224, enc_embed_dim=1024, dec_embed_dim=768, **croco):
        super().__init__()
        img_size[0]  # upstream's defaults crash the same way: TypeError 'int' object is not subscriptable
        self.kwargs = dict(output_mode=output_mode, head_type=head_type, depth_mode=tuple(depth_mode),
                           conf_mode=tuple(conf_mode), landscape_only=landscape_only, patch_embed_cls=patch_embed_cls,
                           img_size=tuple(img_size), enc_embed_dim=enc_embed_dim, dec_embed_dim=dec_embed_dim, **croco)
        self.enc = nn.Linear(enc_embed_dim, 3)
        self.dec = nn.Linear(dec_embed_dim, 3)

    @classmethod
    def from_pretrained(cls, name):
        dust3r.SEEN["pretrained"].append(name)
        path = Path(name)
        if path.is_dir():  # the Hugging Face mixin: config.json kwargs + model.safetensors
            from safetensors.torch import load_file
            model = cls(**json.loads((path / "config.json").read_text()))
            model.load_state_dict(load_file(str(path / "model.safetensors")))
            return model
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {name}")
"""

FAKE_INFERENCE = """
import torch

import dust3r


def _camera(points, w2c):
    return torch.einsum("ij,hwj->hwi", w2c[:, :3], points) + w2c[:, 3]


def inference(pairs, model, device, batch_size=8, verbose=True):
    w2c, world = dust3r.SCENE
    first = [a["idx"] for a, _ in pairs]
    second = [b["idx"] for _, b in pairs]
    dust3r.SEEN["pairs"] += list(zip(first, second))
    dust3r.SEEN["batches"].append(len(pairs))
    dust3r.SEEN["verbose"].append(verbose)
    dust3r.SEEN["img_range"] = (min(a["img"].min().item() for a, _ in pairs), max(a["img"].max().item() for a, _ in pairs))
    def view(side, index):
        return {"img": torch.cat([p[side]["img"] for p in pairs]),
                "true_shape": torch.cat([torch.as_tensor(p[side]["true_shape"]) for p in pairs]),
                "idx": index, "instance": [str(i) for i in index]}
    pts1 = torch.stack([_camera(world[i], w2c[i]) for i in first])
    pts2 = torch.stack([_camera(world[j], w2c[i]) for i, j in zip(first, second)])
    conf1 = torch.stack([torch.full(world.shape[1:3], 1.0 + i) for i in first])
    conf2 = torch.stack([torch.full(world.shape[1:3], 10.0 + j) for j in second])
    return {"view1": view(0, first), "view2": view(1, second),
            "pred1": {"pts3d": pts1, "conf": conf1}, "pred2": {"pts3d_in_other_view": pts2, "conf": conf2}, "loss": None}
"""

FAKE_CLOUD_OPT = """
import types

import torch

import dust3r
from dust3r.inference import _camera

GlobalAlignerMode = types.SimpleNamespace(PointCloudOptimizer="PointCloudOptimizer")


class _Aligner:
    def __init__(self, output):
        w2c, world = dust3r.SCENE
        rows = output["pred1"]["pts3d"].shape[0]
        assert len(output["view1"]["idx"]) == len(output["view2"]["idx"]) == rows == output["view1"]["img"].shape[0]
        for k, (i, j) in enumerate(zip(output["view1"]["idx"], output["view2"]["idx"])):
            # the merged output keeps every pair's indices and predictions together
            assert torch.equal(output["pred1"]["pts3d"][k], _camera(world[i], w2c[i]))
            assert torch.equal(output["pred2"]["pts3d_in_other_view"][k], _camera(world[j], w2c[i]))
        self.views = sorted(set(output["view1"]["idx"]))
        dust3r.SEEN["aligned_pairs"] = rows

    def compute_global_alignment(self, init, niter, schedule, lr):
        assert torch.is_grad_enabled() and init == "mst"
        dust3r.SEEN["niter"] = niter

    def get_pts3d(self):
        return [dust3r.SCENE[1][i].clone().requires_grad_() for i in self.views]

    @property
    def im_conf(self):
        return [torch.full(dust3r.SCENE[1].shape[1:3], float(i)) for i in self.views]


def global_aligner(output, device, mode, verbose=True):
    assert mode == "PointCloudOptimizer"
    dust3r.SEEN["aligner_verbose"].append(verbose)
    return _Aligner(output)
"""


def write_clone(root: Path, **overrides: str) -> Path:
    """A stand-in recursive clone of naver/dust3r: dust3r/ (the fake modules) + croco/models/."""
    files = {"__init__.py": FAKE_INIT, "model.py": FAKE_MODEL, "inference.py": FAKE_INFERENCE, "cloud_opt.py": FAKE_CLOUD_OPT}
    files.update(overrides)
    (root / "dust3r").mkdir(parents=True)
    for name, text in files.items():
        (root / "dust3r" / name).write_text(textwrap.dedent(text))
    (root / "croco" / "models").mkdir(parents=True)
    (root / "croco" / "models" / "croco.py").write_text("")
    return root


@pytest.fixture
def isolated_imports(monkeypatch):
    """Restore sys.path and drop the stand-in dust3r modules after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("PMSPLAT_DUST3R_REPO", raising=False)
    yield
    for name in [name for name in sys.modules if name == "dust3r" or name.startswith("dust3r.")]:
        del sys.modules[name]


@pytest.fixture
def clone(tmp_path, isolated_imports):
    return write_clone(tmp_path / "dust3r-clone")


def scene(views: int, seed: int = 0):
    """OpenCV world-to-camera (V, 3, 4) and world points (V, H, W, 3) from known depth + cameras."""
    g = torch.Generator().manual_seed(seed)
    w2c = []
    for _ in range(views):
        q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
        w2c.append(torch.cat([q * torch.sign(torch.linalg.det(q)), torch.randn(3, 1, generator=g, dtype=torch.float64)], 1))
    w2c = torch.stack(w2c)
    k = torch.tensor([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]], dtype=torch.float64).expand(views, 3, 3)
    depth = 1 + 3 * torch.rand(views, H, W, generator=g, dtype=torch.float64)
    return w2c.float(), unproject_depth(depth, w2c, k).float()


def small_state(seed: int = 0, enc: int = 6, dec: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"enc.weight": torch.randn(3, enc, generator=g), "enc.bias": torch.randn(3, generator=g),
            "dec.weight": torch.randn(3, dec, generator=g), "dec.bias": torch.randn(3, generator=g)}


def official_checkpoint(path: Path, description: str = SMALL, state: dict | None = None) -> Path:
    """The official DUSt3R checkpoint layout: {'model': state_dict, 'args': Namespace(model=<call>, ...)}."""
    args = argparse.Namespace(model=description, lr=1e-4, batch_size=4, train_dataset="1000 @ Co3d(...)", pretrained=None)
    torch.save({"model": state or small_state(), "args": args, "epoch": 10}, path)
    return path


def build(clone: Path, **options) -> DUSt3RTeacher:
    return DUSt3RTeacher(DUSt3RTeacherCfg(repo=str(clone), device="cpu", **options))


# ---------------------------------------------------------------- the constructor description


def test_official_description_parses_to_literal_kwargs():
    name, kwargs = parse_constructor_call(OFFICIAL_512_DPT)
    assert name == "AsymmetricCroCo3DStereo"
    assert kwargs == {
        "pos_embed": "RoPE100", "patch_embed_cls": "ManyAR_PatchEmbed", "img_size": (512, 512), "head_type": "dpt",
        "output_mode": "pts3d", "depth_mode": ("exp", -math.inf, math.inf), "conf_mode": ("exp", 1, math.inf),
        "enc_embed_dim": 1024, "enc_depth": 24, "enc_num_heads": 16, "dec_embed_dim": 768, "dec_depth": 12,
        "dec_num_heads": 12,
    }
    adjusted = inference_kwargs(kwargs)  # what the official loader builds for inference
    assert adjusted["patch_embed_cls"] == "PatchEmbedDust3R" and adjusted["landscape_only"] is False
    assert kwargs["patch_embed_cls"] == "ManyAR_PatchEmbed"  # the parsed dict is not modified


@pytest.mark.parametrize("text, message", [
    ("AsymmetricCroCo3DStereo(img_size=__import__('os').system('true'))", "non-literal value"),
    ("AsymmetricCroCo3DStereo(img_size=os.sep)", "non-literal value"),
    ("AsymmetricCroCo3DStereo(enc_depth=12 * 2)", "non-literal value"),
    ("AsymmetricCroCo3DStereo(head=lambda: 0)", "non-literal value"),
    ("AsymmetricCroCo3DStereo(depth_mode=('exp', -'inf'))", "non-literal value"),
    ("AsymmetricCroCo3DStereo(512, head_type='dpt')", "positional arguments"),
    ("AsymmetricCroCo3DStereo(**settings)", "unpacks"),
    ("os.system('true')", "must be a call `ClassName"),
    ("Evil(x=1)", "builds 'Evil'"),
    ("AsymmetricCroCo3DStereo(x=1", "not a Python call"),
    ("AsymmetricCroCo3DStereo(x=1); import os", "not a Python call"),
    ("", "must be a constructor call string"),
])
def test_non_literal_descriptions_are_refused_without_evaluation(text, message):
    with pytest.raises(ArchitectureError, match=message.replace("(", r"\(").replace("*", r"\*")):
        parse_constructor_call(text)


# ---------------------------------------------------------------- install route


def test_repo_option_and_environment_variable_put_the_clone_on_the_import_path(clone, tmp_path, monkeypatch):
    path = official_checkpoint(tmp_path / "ckpt.pth")
    teacher = build(clone, weights=str(path))
    assert teacher.repo == clone.resolve() and sys.path[0] == str(clone.resolve())
    assert type(teacher.model).__module__ == "dust3r.model"
    assert sys.modules["dust3r"].__file__.startswith(str(clone))
    for name in [name for name in sys.modules if name.startswith("dust3r")]:
        del sys.modules[name]
    sys.path.remove(str(clone.resolve()))
    monkeypatch.setenv("PMSPLAT_DUST3R_REPO", str(clone))
    teacher = DUSt3RTeacher(DUSt3RTeacherCfg(weights=str(path), device="cpu"))
    assert teacher.repo == clone.resolve() and sys.modules["dust3r"].__file__.startswith(str(clone))


def test_a_folder_that_is_not_a_recursive_clone_says_what_to_run(tmp_path, isolated_imports):
    not_a_clone = tmp_path / "somewhere"
    not_a_clone.mkdir()
    with pytest.raises(MissingDependencyError, match=r"no dust3r/ package folder.*git clone --recursive https://github.com/naver/dust3r"):
        DUSt3RTeacher(DUSt3RTeacherCfg(repo=str(not_a_clone), device="cpu"))
    shallow = tmp_path / "shallow"
    (shallow / "dust3r").mkdir(parents=True)
    (shallow / "croco").mkdir()
    with pytest.raises(MissingDependencyError, match=r"not recursive.*git -C .*shallow submodule update --init --recursive"):
        DUSt3RTeacher(DUSt3RTeacherCfg(repo=str(shallow), device="cpu"))


def test_without_the_package_the_error_gives_the_clone_route(monkeypatch, isolated_imports):
    from pmsplat.teachers.registry import TEACHERS

    monkeypatch.setitem(sys.modules, "dust3r", None)
    with pytest.raises(MissingDependencyError) as error:
        DUSt3RTeacher(DUSt3RTeacherCfg(device="cpu"))
    assert "git clone --recursive https://github.com/naver/dust3r" in str(error.value)
    assert "teacher.repo=" in str(error.value) and "PMSPLAT_DUST3R_REPO" in str(error.value)
    assert "pip install \"dust3r @" not in str(error.value)  # the route that cannot work
    assert error.value.pip_command == TEACHERS["dust3r"].install


# ---------------------------------------------------------------- weights


@pytest.mark.parametrize("relative", [False, True])
def test_official_checkpoint_builds_the_described_architecture(clone, tmp_path, monkeypatch, relative):
    state = small_state(seed=3)
    path = official_checkpoint(tmp_path / "DUSt3R_small.pth", state=state)
    if relative:
        monkeypatch.chdir(tmp_path)
    teacher = build(clone, weights="DUSt3R_small.pth" if relative else str(path))
    expected = inference_kwargs(parse_constructor_call(SMALL)[1])
    assert teacher.model.kwargs["img_size"] == (64, 64) and teacher.model.kwargs["enc_embed_dim"] == 6
    assert teacher.model.kwargs["landscape_only"] is False and teacher.model.kwargs["depth_mode"] == expected["depth_mode"]
    for key, value in state.items():
        assert torch.equal(teacher.model.state_dict()[key], value)
    assert sys.modules["dust3r"].SEEN["pretrained"] == []  # a file never goes to from_pretrained/eval


def test_checkpoint_that_would_run_code_is_refused(clone, tmp_path):
    marker = tmp_path / "pwned"
    evil = official_checkpoint(tmp_path / "evil.pth", f"AsymmetricCroCo3DStereo(img_size=__import__('pathlib').Path('{marker}').touch())")
    with pytest.raises(ArchitectureError, match="non-literal"):
        build(clone, weights=str(evil))
    assert not marker.exists()

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"model": small_state(), "args": Payload()}, tmp_path / "pickle.pth")
    with pytest.raises(PmsplatError, match=r"weights_only=True.*does not unpickle arbitrary objects"):
        build(clone, weights=str(tmp_path / "pickle.pth"))
    assert not marker.exists()


def test_architecture_mismatch_and_broken_arguments_are_clear(clone, tmp_path):
    wrong = official_checkpoint(tmp_path / "wrong.pth", SMALL.replace("enc_embed_dim=6", "enc_embed_dim=8"))
    with pytest.raises(PmsplatError, match=r"do not match the model: .*enc.weight"):
        build(clone, weights=str(wrong))
    broken = official_checkpoint(tmp_path / "broken.pth", "AsymmetricCroCo3DStereo(img_size=64)")
    with pytest.raises(ArchitectureError, match=r"building AsymmetricCroCo3DStereo with the arguments from broken.pth: args.model failed \(TypeError"):
        build(clone, weights=str(broken))


def test_safetensors_file_needs_config_json_or_architecture(clone, tmp_path):
    from safetensors.torch import save_file

    state = small_state(seed=5)
    bare = tmp_path / "bare" / "weights.safetensors"
    bare.parent.mkdir()
    save_file(state, str(bare))
    with pytest.raises(ArchitectureError, match=r"does not say which architecture.*teacher.architecture"):
        build(clone, weights=str(bare))
    teacher = build(clone, weights=str(bare), architecture=SMALL)
    assert torch.equal(teacher.model.enc.weight, state["enc.weight"])
    beside = tmp_path / "beside" / "weights.safetensors"
    beside.parent.mkdir()
    save_file(state, str(beside))
    (beside.parent / "config.json").write_text(json.dumps({"img_size": [64, 64], "enc_embed_dim": 6, "dec_embed_dim": 4}))
    teacher = build(clone, weights=str(beside))
    assert teacher.model.kwargs["img_size"] == (64, 64) and torch.equal(teacher.model.dec.bias, state["dec.bias"])


@pytest.mark.parametrize("relative", [False, True])
def test_hugging_face_folders_load_absolute_and_relative(clone, tmp_path, monkeypatch, relative):
    from safetensors.torch import save_file

    folder = tmp_path / "models" / "DUSt3R_small"
    folder.mkdir(parents=True)
    save_file(small_state(seed=7), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"img_size": [64, 64], "enc_embed_dim": 6, "dec_embed_dim": 4}))
    if relative:
        monkeypatch.chdir(tmp_path)
    teacher = build(clone, weights="models/DUSt3R_small" if relative else str(folder))
    assert sys.modules["dust3r"].SEEN["pretrained"] == [str(folder.resolve())]
    assert torch.equal(teacher.model.enc.weight, small_state(seed=7)["enc.weight"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("")
    with pytest.raises(MissingWeightsError, match=r"not a Hugging Face model folder: it has no model.safetensors \(found \['notes.txt'\]\)"):
        build(clone, weights=str(empty))


def test_missing_files_and_offline_hub_ids_recommend_a_route_that_works(clone, tmp_path):
    with pytest.raises(MissingWeightsError, match=r"weights not found at .*missing.pth.*DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth"):
        build(clone, weights=str(tmp_path / "missing.pth"))
    with pytest.raises(MissingWeightsError) as error:
        build(clone)  # the default hub id, no network
    message = str(error.value)
    assert "naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt" in message and "couldn't connect" in message
    assert ".pth" in message and "absolute or relative" in message


# ---------------------------------------------------------------- inference


def test_two_views_are_one_pair_in_the_first_camera_frame(clone, tmp_path):
    teacher = build(clone, weights=str(official_checkpoint(tmp_path / "c.pth")))
    w2c, world = scene(2)
    sys.modules["dust3r"].SCENE = (w2c, world)
    out = teacher(torch.rand(1, 2, 3, H, W))
    seen = sys.modules["dust3r"].SEEN
    assert seen["pairs"] == [(0, 1)] and teacher.last_pairs == 1
    assert seen["img_range"][0] < 0 <= seen["img_range"][1] <= 1  # [0, 1] -> [-1, 1]
    expected = torch.einsum("ij,vhwj->vhwi", w2c[0, :, :3], world) + w2c[0, :, 3]  # both views in camera 0
    torch.testing.assert_close(out.points[0], expected)
    assert out.confidence[0, 0].eq(1.0).all() and out.confidence[0, 1].eq(11.0).all()
    assert "first view's camera frame" in teacher.output_frame(2)


def test_more_views_run_every_pair_in_chunks_and_one_global_alignment(clone, tmp_path, capsys):
    teacher = build(clone, weights=str(official_checkpoint(tmp_path / "c.pth")), global_alignment_iterations=7, pair_batch_size=5)
    w2c, world = scene(4, seed=1)
    sys.modules["dust3r"].SCENE = (w2c, world)
    out = teacher(torch.rand(1, 4, 3, H, W))
    seen = sys.modules["dust3r"].SEEN
    assert sorted(seen["pairs"]) == sorted((i, j) for i in range(4) for j in range(4) if i != j)  # complete, both orders
    assert seen["batches"] == [5, 5, 2] and seen["verbose"] == [False] * 3  # chunks, pmsplat's own progress
    assert seen["aligned_pairs"] == 12 and seen["niter"] == 7 and seen["aligner_verbose"] == [True]
    torch.testing.assert_close(out.points[0], world)
    assert not out.points.requires_grad and out.confidence[0, 3].eq(3.0).all()
    assert "DUSt3R pairs (4 views)" in capsys.readouterr().err  # the progress bar


def test_pair_window_and_max_pairs_bound_the_cost(clone, tmp_path, capsys):
    teacher = build(clone, weights=str(official_checkpoint(tmp_path / "c.pth")), pair_window=1, progress=False)
    w2c, world = scene(6, seed=2)
    sys.modules["dust3r"].SCENE = (w2c, world)
    teacher(torch.rand(1, 6, 3, H, W))
    seen = sys.modules["dust3r"].SEEN
    assert sorted(seen["pairs"]) == sorted([(i, i + 1) for i in range(5)] + [(i + 1, i) for i in range(5)])
    assert teacher.pairs_for(6) == 10 and seen["aligner_verbose"] == [False]
    assert "DUSt3R pairs" not in capsys.readouterr().err
    capped = build(clone, weights=str(official_checkpoint(tmp_path / "c.pth")), max_pairs=100)
    assert capped.pairs_for(37) <= 100 < pair_count(37, None)


def test_pair_graph_counts_match_the_documented_formula_and_brute_force():
    assert pair_count(37, None) == 1332 and pair_count(37, 4) == 276 and pair_count(2, None) == 1
    for views in range(2, 9):
        for window in [None, 1, 2, 3, 10]:
            pairs = pair_graph(views, window)
            k = views - 1 if window is None else min(window, views - 1)
            brute = {(i, j) for i in range(views) for j in range(views) if i != j and abs(i - j) <= k}
            if views == 2:
                brute = {(0, 1)}
            assert set(pairs) == brute and len(pairs) == len(brute) == pair_count(views, window)
            # connected: every view is reachable from view 0
            reached, frontier = {0}, [0]
            while frontier:
                node = frontier.pop()
                for i, j in pairs:
                    if i == node and j not in reached:
                        reached.add(j)
                        frontier.append(j)
            assert reached == set(range(views))
    for cap in [38, 50, 100, 379, 380]:
        pairs = pair_graph(20, None, cap)  # narrowed to the widest window that fits the cap
        widest = _widest(20, cap)
        assert len(pairs) == pair_count(20, widest) <= cap
        assert widest == 19 or pair_count(20, widest + 1) > cap
    with pytest.raises(Exception, match="even the sparsest pair graph over 20 views needs 38 pair passes"):
        pair_graph(20, None, 30)


def _widest(views: int, cap: int) -> int:
    return max(k for k in range(1, views) if pair_count(views, k) <= cap)


def test_merge_of_chunked_outputs_equals_one_call():
    def output(rows):
        return {"view1": {"img": torch.arange(rows * 2.0).reshape(rows, 2), "idx": list(range(rows)), "instance": [str(r) for r in range(rows)]},
                "pred1": {"pts3d": torch.arange(rows * 3.0).reshape(rows, 3)}, "loss": None, "name": "x"}

    merged = merge_pair_outputs([output(2), output(3)])
    assert torch.equal(merged["view1"]["img"], torch.cat([output(2)["view1"]["img"], output(3)["view1"]["img"]]))
    assert merged["view1"]["idx"] == [0, 1, 0, 1, 2] and merged["view1"]["instance"] == ["0", "1", "0", "1", "2"]
    assert merged["pred1"]["pts3d"].shape == (5, 3) and merged["loss"] is None and merged["name"] == "x"


# ---------------------------------------------------------------- what is really missing


@pytest.mark.parametrize("cloud_opt, package, message", [
    ("raise ImportError(\"No module named 'torchvision'\", name='torchvision')", "torchvision",
     r"imports torchvision, which is not installed.*pip install torchvision==0\.\d+\.\d+"),
    ("raise RuntimeError('operator torchvision::nms does not exist')", "torchvision",
     r"torchvision, which is installed but broken.*operator torchvision::nms does not exist.*pip uninstall -y torchvision && pip install torchvision=="),
    ("import roma", "roma", r"package is installed, but it imports 'roma', which is not: pip install roma"),
])
def test_import_failures_name_the_real_missing_module(tmp_path, isolated_imports, cloud_opt, package, message):
    clone = write_clone(tmp_path / "clone", **{"cloud_opt.py": cloud_opt})
    teacher = DUSt3RTeacher(DUSt3RTeacherCfg(repo=str(clone), device="cpu", weights=str(official_checkpoint(tmp_path / "c.pth"))))
    sys.modules["dust3r"].SCENE = scene(3)
    with pytest.raises(MissingDependencyError, match=message) as error:
        teacher(torch.rand(1, 3, 3, H, W))  # > 2 views: the global-alignment module is imported
    assert error.value.package == package and "not installed. Install it with:  git clone" not in str(error.value)


def test_torchvision_command_matches_the_installed_torch():
    from pmsplat.teachers.imports import torchvision_install_command

    assert torchvision_install_command("2.13.0+cpu") == "pip install torchvision==0.28.0 --index-url https://download.pytorch.org/whl/cpu"
    assert torchvision_install_command("2.5.1+cu121") == "pip install torchvision==0.20.1 --index-url https://download.pytorch.org/whl/cu121"
    assert torchvision_install_command("2.6.0") == "pip install torchvision==0.21.0"
    assert "torch 1.13.1" in torchvision_install_command("1.13.1")
