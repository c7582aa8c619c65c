"""``pmsplat teacher check NAME``: loads the teacher, runs one example, reports shapes, frame, time
and memory (and the error against the ground truth where there is one); one clear error, exit 1,
when the teacher cannot be loaded. Run with the synthetic teacher and with a stand-in VGGT/DA3."""

from __future__ import annotations

import re
import sys
import textwrap
import types

import pytest
import torch
from torch import nn

from pmsplat.cli import main
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.check import CheckExample, check_teacher, synthetic_example
from pmsplat.teachers.tensor import TensorTeacher

EXACT = ["noise_std=0", "edge_blur_px=0", "distortion=0", "view_misalignment_deg=0", "view_misalignment_shift=0"]


def vs_truth(text: str) -> float:
    return float(re.search(r"vs truth:\s+([0-9.]+) RMS error", text).group(1))


def test_synthetic_teacher_check_reports_shapes_frame_time_memory_and_error(capsys):
    assert main(["teacher", "check", "synthetic", "--image-shape", "24", "40", "--views", "3"]) == 0
    out = capsys.readouterr().out
    assert "points:      (1, 3, 24, 40, 3), 100.0% finite" in out
    assert re.search(r"confidence:  \(1, 3, 24, 40\), range \[[0-9.]+, [0-9.]+\]", out)
    assert "frame:       a random similarity transform of the ground truth" in out
    assert re.search(r"time:        [0-9.]+ s for one call on cpu", out)
    assert re.search(r"memory:      [0-9.]+ GiB peak RSS", out)
    assert 0.005 < vs_truth(out) < 0.5  # the default degradations
    assert "OK: teacher 'synthetic' works here." in out

    assert main(["teacher", "check", "synthetic", "--image-shape", "24", "40", "--set", *EXACT]) == 0
    assert vs_truth(capsys.readouterr().out) < 1e-4  # exact up to the teacher's similarity frame


def test_reported_error_is_zero_for_a_similarity_and_one_for_unrelated_points():
    example = synthetic_example(views=2, height=16, width=20, seed=3)
    truth = example.pointmap[None]
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    rotated = 2.5 * truth @ (q * torch.sign(torch.linalg.det(q))).T + 7
    report = check_teacher(TensorTeacher(rotated), example)
    assert report.ok and report.aligned_error < 1e-5 and report.points_shape == (1, 2, 16, 20, 3)
    noise = torch.randn(truth.shape, generator=torch.Generator().manual_seed(1))
    report = check_teacher(TensorTeacher(noise, torch.rand(noise.shape[:4])), example)
    assert 0.97 < report.aligned_error <= 1.0  # the best similarity of unrelated points collapses them
    assert report.confidence_shape == (1, 2, 16, 20)


def test_a_teacher_returning_the_wrong_shape_fails_the_check(capsys):
    example = synthetic_example(views=2, height=16, width=20)
    report = check_teacher(TensorTeacher(torch.zeros(1, 2, 8, 10, 3)), example)
    assert not report.ok and "points have shape (1, 2, 8, 10, 3), expected (1, 2, 16, 20, 3)" in report.problems[0]
    assert "PROBLEM:" in "\n".join(report.lines())

    class NaNTeacher:
        patch_size = 4

        def __call__(self, images, context=None):
            points = torch.zeros(*images.shape[:2], *images.shape[-2:], 3)
            points[..., 0, 0, :] = float("nan")
            return TeacherOutput(points)

    report = check_teacher(NaNTeacher(), example)
    assert report.input_shape == (1, 2, 3, 16, 20) and "not finite" in report.problems[0]


class StandInVGGT(nn.Module):
    """VGGT's documented forward contract (images (B, S, 3, H, W) -> world_points etc.)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(2))

    @classmethod
    def from_pretrained(cls, name):
        raise OSError(f"offline: {name}")

    def forward(self, images):
        batch, views, _, height, width = images.shape
        points = images.permute(0, 1, 3, 4, 2) * self.weight[0]
        return {"world_points": points, "world_points_conf": torch.ones(batch, views, height, width) * self.weight[1]}


@pytest.fixture
def stand_in_vggt(monkeypatch):
    modules = {name: types.ModuleType(name) for name in ["vggt", "vggt.models", "vggt.models.vggt"]}
    modules["vggt.models.vggt"].VGGT = StandInVGGT
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def test_check_with_a_stand_in_vggt_and_its_weights(stand_in_vggt, tmp_path, capsys):
    torch.save({"weight": torch.tensor([1.0, 3.0])}, tmp_path / "model.pt")
    code = main(["teacher", "check", "vggt", "--image-shape", "30", "44", "--set", f"weights={tmp_path / 'model.pt'}", "device=cpu"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "loaded:      VGGTTeacher" in out
    assert "points:      (1, 2, 28, 42, 3)" in out  # rounded down to multiples of 14, as PM-Loss feeds it
    assert "range [3, 3]" in out  # the loaded weights were used
    assert "frame:       first view's camera frame" in out


def test_check_reports_a_missing_package_or_weights_as_one_error(monkeypatch, stand_in_vggt, tmp_path, capsys):
    assert main(["teacher", "check", "vggt", "--set", f"weights={tmp_path / 'nothing.pt'}", "device=cpu"]) == 1
    assert "VGGT weights not found at" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "vggt", None)
    monkeypatch.setitem(sys.modules, "vggt.models.vggt", None)
    assert main(["teacher", "check", "vggt"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pmsplat teacher check: ") and 'pip install "vggt @ git+https://github.com/facebookresearch/vggt"' in err
    assert main(["teacher", "check", "tensor"]) == 2


@pytest.fixture
def forget_da3():
    """Drop the stand-in depth_anything_3 modules afterwards (they must not leak into other tests)."""
    yield
    for name in [name for name in sys.modules if name.split(".")[0] == "depth_anything_3"]:
        del sys.modules[name]


def test_check_names_missing_torchvision_for_da3(tmp_path, monkeypatch, capsys, forget_da3):
    """A depth_anything_3 whose import stops at torchvision (as on the CPU setup) is reported as
    torchvision missing, with the command for the matching build, not as DA3 missing."""
    package = tmp_path / "site" / "depth_anything_3"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "api.py").write_text(textwrap.dedent("""
        raise ModuleNotFoundError("No module named 'torchvision'", name="torchvision")
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "depth_anything_3", raising=False)
    monkeypatch.delitem(sys.modules, "depth_anything_3.api", raising=False)
    assert main(["teacher", "check", "da3", "--set", "device=cpu"]) == 1
    err = capsys.readouterr().err
    assert "imports torchvision, which is not installed" in err and f"torch {torch.__version__}" in err
    assert "pip install torchvision==0." in err and "pip install depth-anything-3" not in err
    (package / "api.py").write_text("import addict\n")
    monkeypatch.delitem(sys.modules, "depth_anything_3.api", raising=False)
    monkeypatch.setitem(sys.modules, "addict", None)
    assert main(["teacher", "check", "da3", "--set", "device=cpu"]) == 1
    assert "imports 'addict', which is not: pip install addict" in capsys.readouterr().err


def test_check_on_a_dataset_scene(tmp_path, capsys):
    from pmsplat.synthetic import SynthConfig, generate
    from pmsplat.synthetic.evaluation_index import EvaluationIndexLayout

    layout = EvaluationIndexLayout(interpolation_gap=(4, 8), interpolation_targets=2, extrapolation_gap=6,
                                   extrapolation_window=4, extrapolation_targets_per_side=2)
    generate(SynthConfig(out=tmp_path / "data", train_scenes=0, test_scenes=1, frames=16, height=16, width=16,
                         supersample=1, index_layout=layout))
    assert main(["teacher", "check", "synthetic", "--dataset", str(tmp_path / "data"), "--set", *EXACT]) == 0
    out = capsys.readouterr().out
    assert "2 views of scene " in out and "points:      (1, 2, 16, 16, 3)" in out
    assert vs_truth(out) < 1e-3


def test_check_example_is_what_the_teacher_receives():
    seen = {}

    class Recorder:
        patch_size = 8

        def __call__(self, images, context=None):
            seen["images"], seen["context"] = images, context
            return TeacherOutput(torch.zeros(*images.shape[:2], *images.shape[-2:], 3) + torch.arange(3.0))

    example = CheckExample(torch.rand(2, 3, 20, 27), None, "s", torch.tensor([0, 5]), "test")
    report = check_teacher(Recorder(), example)
    assert seen["images"].shape == (1, 2, 3, 16, 24) and seen["context"]["scene"] == ["s"]
    assert seen["context"]["index"].tolist() == [[0, 5]] and report.aligned_note == "no ground truth for this example"
