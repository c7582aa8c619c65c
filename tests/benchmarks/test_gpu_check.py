"""benchmarks/gpu_check.py (``make gpu-check``) on CPU: the step list, the report writer, the per-step
time limit, the run without CUDA (every CUDA step SKIP, report still written) and the one-line
exit without CUDA. The CUDA steps themselves only run on a GPU machine."""

from __future__ import annotations

import csv
import importlib.util
import re
import shutil
import subprocess
import sys

import pytest
import torch
from testkit import REPO_ROOT as REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"

_spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check
_spec.loader.exec_module(gpu_check)

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this test covers the machine without CUDA")

EXPECTED_STEPS = ["environment", "gsplat-build", "synth-data", "knn", "pmloss", "attention", "parity", "render", "train", "gpu-tests", "ddp"]


def test_step_list_names_targets_and_order():
    steps = gpu_check.STEPS
    assert gpu_check.step_names() == EXPECTED_STEPS
    seen = set()
    for step in steps:
        assert step.limit_s > 0
        assert callable(getattr(gpu_check, step.target)), step.target
        assert all(r in seen for r in step.requires), f"{step.name} requires a later step"
        assert not (step.background and step.requires)
        seen.add(step.name)
    # every step that renders needs the gsplat build; training needs the data
    by_name = {s.name: s for s in steps}
    assert "gsplat-build" in by_name["render"].requires and "synth-data" in by_name["train"].requires
    assert [s.name for s in steps if not s.needs_cuda] == ["environment"]


def test_docstring_budget_table_matches_the_step_list():
    rows = dict(re.findall(r"^([a-z][a-z0-9-]+)\s+(\d+)\s{2,}", gpu_check.__doc__, flags=re.M))
    assert {name: int(limit) for name, limit in rows.items()} == {s.name: int(s.limit_s) for s in gpu_check.STEPS}


def test_select_steps_adds_requirements_and_rejects_unknown_names():
    steps = gpu_check.STEPS
    assert gpu_check.step_names(gpu_check.select_steps(steps, ["train"], None)) == ["gsplat-build", "synth-data", "train"]
    assert "knn" not in gpu_check.step_names(gpu_check.select_steps(steps, None, ["knn"]))
    assert gpu_check.step_names(gpu_check.select_steps(steps, None, None)) == EXPECTED_STEPS
    with pytest.raises(SystemExit, match="unknown step"):
        gpu_check.select_steps(steps, ["nope"], None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2.11.0+cu130", (2, 11, 0)),
        ("0.0.35", (0, 0, 35)),
        ("1.5.3.dev0", (1, 5, 3)),
        ("Cuda compilation tools, release 13.0, V13.0.88", (13, 0)),
        ("v12", (12,)),
        ("2.6.0rc1", (2, 6, 0)),
        ("", None),
        ("unknown", None),
        (None, None),
        (12.4, (12, 4)),
    ],
)
def test_parse_version_is_tolerant(text, expected):
    assert gpu_check.parse_version(text) == expected


def test_package_version_of_an_absent_package_is_none():
    assert gpu_check.package_version("surely-not-a-package-xyz", "surely_not_a_module_xyz") is None
    assert gpu_check.package_version("torch") in (torch.__version__, torch.__version__.split("+")[0])


def _results():
    R = gpu_check.StepResult
    return [
        R("knn", "nearest neighbours", "PASS", "exact; grid 31x faster", 12.34, 60, {"688k/grid s": 0.0123456, "688k/ties": 3, "ok": True}),
        R("render", "gsplat vs torch", "CUT", "cut after 45 s (limit 45 s)", 45.2, 45, {"64x64/color max abs diff": 1.5e-06}, "line 1\nline | 2"),
        R("parity", "parity files", "SKIP", "../shared/parity not found", 0.5, 60),
        R("train", "training", "FAIL", "ValueError: boom", 3.0, 150, {}, "Traceback ...\nValueError: boom"),
    ]


def test_report_writer_markdown_and_csv(tmp_path):
    meta = {"device": "NVIDIA H200 (compute capability 9.0)", "torch": "2.11.0+cu130", "gsplat": "1.5.3", "xformers": "not installed"}
    pending = [gpu_check.Step("gpu-tests", "pytest -m gpu", 90, "step_gpu_tests")]
    md_path, csv_path = gpu_check.write_report(tmp_path / "out", meta, _results(), pending)
    md = md_path.read_text()
    for line in ("- device: NVIDIA H200 (compute capability 9.0)", "- torch: 2.11.0+cu130", "- xformers: not installed",
                 "| knn | PASS | 12.3 | 60 | exact; grid 31x faster |", "| render | CUT | 45.2 | 45 | cut after 45 s (limit 45 s) |",
                 "| train | FAIL | 3.0 | 150 | ValueError: boom |", "| 688k/grid s | 0.01235 |", "| ok | yes |",
                 "| gpu-tests | — | | 90 | not run (the check stopped before this step) |",
                 "1 PASS, 1 FAIL, 1 SKIP, 1 CUT; 1 step(s) not run yet: gpu-tests"):
        assert line in md, line
    # log tails only for FAIL / CUT steps, and never a table-breaking '|' in a table row
    assert "line | 2" in md and "ValueError: boom\n```" in md
    assert md.count("```") == 4
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["section", "figure", "value"]
    assert ["meta", "device", "NVIDIA H200 (compute capability 9.0)"] in rows
    assert ["knn", "verdict", "PASS"] in rows and ["render", "verdict", "CUT"] in rows
    assert ["knn", "688k/grid s", "0.0123456"] in rows  # numbers written in full
    assert ["knn", "ok", "yes"] in rows
    assert ["train", "summary", "ValueError: boom"] in rows
    assert ["render", "seconds", "45.20"] in rows


def test_verdict_line_is_one_line_with_the_key_figure():
    line = gpu_check.verdict_line(_results()[0])
    assert "\n" not in line and line.split()[:2] == ["knn", "PASS"] and "grid 31x faster" in line and "12.3 s / 60 s" in line


FAKE_STEPS = '''
import time

def sleepy(ctx):
    ctx.figure("before the sleep", 1.5)
    time.sleep(60)
    return "PASS", "never reached"

def broken(ctx):
    ctx.figure("partial", 7)
    raise ValueError("something is wrong")

def quick(ctx):
    ctx.figure("answer", 42)
    return "PASS", "quick one " + ctx.prereqs.get("sleepy", "?")
'''


def test_time_limit_cuts_a_step_and_the_next_steps_still_run(tmp_path):
    fake = tmp_path / "fake_steps.py"
    fake.write_text(FAKE_STEPS)
    Step = gpu_check.Step
    steps = [
        Step("sleepy", "sleeps past its limit", 1.5, f"{fake}:sleepy", needs_cuda=False),
        Step("broken", "raises", 30, f"{fake}:broken", needs_cuda=False),
        Step("quick", "after the others", 30, f"{fake}:quick", needs_cuda=False, requires=("sleepy",)),
        Step("cuda-only", "needs CUDA", 30, f"{fake}:quick"),
    ]
    lines = []
    results = gpu_check.run_check(steps, tmp_path / "out", device="cpu", cuda=False, budget_s=120, meta={"device": "cpu"}, echo=lines.append)
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == ["sleepy", "broken", "quick", "cuda-only"]
    sleepy = by_name["sleepy"]
    assert sleepy.verdict == "CUT" and sleepy.summary.startswith("cut after") and sleepy.seconds < 20
    assert sleepy.figures == {"before the sleep": 1.5}  # what it measured before the cut is kept
    assert by_name["broken"].verdict == "FAIL" and "ValueError: something is wrong" in by_name["broken"].summary
    assert by_name["broken"].figures == {"partial": 7} and "Traceback" in by_name["broken"].log_tail
    assert by_name["quick"].verdict == "PASS" and by_name["quick"].summary.startswith("quick one CUT: cut after")
    assert by_name["cuda-only"].verdict == "SKIP"
    assert len(lines) == 4 and all("\n" not in line for line in lines)
    md = (tmp_path / "out" / "gpu.md").read_text()
    assert "| sleepy | CUT |" in md and "| before the sleep | 1.5 |" in md and "| broken | FAIL |" in md


def test_a_spent_budget_reports_the_remaining_steps_as_not_started(tmp_path):
    fake = tmp_path / "fake_steps.py"
    fake.write_text(FAKE_STEPS)
    steps = [gpu_check.Step("quick", "quick", 30, f"{fake}:quick", needs_cuda=False)]
    (result,) = gpu_check.run_check(steps, tmp_path / "out", device="cpu", cuda=False, budget_s=1, echo=lambda _: None)
    assert result.verdict == "CUT" and result.summary.startswith("not started")
    assert (tmp_path / "out" / "gpu.csv").is_file()


@no_cuda
def test_cpu_run_reports_every_cuda_step_skipped_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "results"
    rc = gpu_check.main(["--allow-cpu", "--out-dir", str(out), "--skip", "environment"])
    assert rc == 0
    rows = list(csv.reader((out / "gpu.csv").open()))
    verdicts = {r[0]: r[2] for r in rows if r[1] == "verdict"}
    assert verdicts == {name: "SKIP" for name in EXPECTED_STEPS if name != "environment"}
    summaries = {r[0]: r[2] for r in rows if r[1] == "summary"}
    assert set(summaries.values()) == {"no CUDA device"}
    meta = {r[1]: r[2] for r in rows if r[0] == "meta"}
    assert meta["device"] == "no CUDA device" and meta["torch"] == torch.__version__
    assert {"gsplat", "xformers", "nvcc", "NVIDIA driver", "torch CUDA build"} <= set(meta)
    assert "0 PASS, 0 FAIL, 10 SKIP, 0 CUT" in (out / "gpu.md").read_text()
    assert "10 SKIP" in capsys.readouterr().out


@no_cuda
def test_without_cuda_the_script_prints_one_line_and_exits_0(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and "no CUDA device" in done.stdout
    assert not list(tmp_path.iterdir())  # no report from a machine that checked nothing


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver: make gpu-check would run")
def test_make_gpu_check_without_cuda_prints_one_line_and_exits_0():
    done = subprocess.run(["make", "-s", "--no-print-directory", "gpu-check"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and "no CUDA" in done.stdout


@pytest.mark.slow
def test_cpu_rehearsal_of_the_numerical_steps(tmp_path):
    """The CUDA steps' code at tiny sizes on CPU (``--device cpu --scale small``): keeps the check
    working while the project's APIs move (pmsplat.pm_loss, the decoder interface)."""
    rc = gpu_check.main(["--device", "cpu", "--scale", "small", "--only", "pmloss", "render", "--skip", "gsplat-build",
                         "--out-dir", str(tmp_path), "--limit-factor", "4"])
    rows = list(csv.reader((tmp_path / "gpu.csv").open()))
    verdicts = {r[0]: r[2] for r in rows if r[1] == "verdict"}
    assert verdicts == {"pmloss": "PASS", "render": "PASS"}, (tmp_path / "gpu.md").read_text()
    assert rc == 0
    figures = {(r[0], r[1]): r[2] for r in rows}
    assert float(figures[("pmloss", "loss rel. difference vs brute force")]) == 0.0
    assert float(figures[("render", "16x24/color max abs diff")]) == 0.0
    assert "REHEARSAL" in (tmp_path / "gpu.md").read_text()


@pytest.mark.parametrize(
    "output, counts, line",
    [
        ("..s\n3 passed, 1 skipped, 120 deselected in 9.12s\n", {"passed": 3, "skipped": 1, "deselected": 120}, "3 passed, 1 skipped, 120 deselected in 9.12s"),
        ("F.\nFAILED tests/x.py::t - 2 passed\n===== 1 failed, 1 passed, 2 errors in 0.50s =====\n", {"failed": 1, "passed": 1, "error": 2}, "1 failed, 1 passed, 2 errors in 0.50s"),
        ("no tests ran in 0.01s\n", {}, ""),
        ("ImportError while loading conftest\n", {}, ""),
    ],
)
def test_parse_pytest_summary(output, counts, line):
    found, summary = gpu_check.parse_pytest_summary(output)
    assert {k: v for k, v in found.items() if v} == counts and summary == line
