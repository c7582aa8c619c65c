"""``make gpu-check``: one prepared command that validates every CUDA path of pmsplat.

Usage::

    make gpu-check                                   # make setup, then this script (CUDA only)
    make gpu-check GPU_PYTHON=python3                # no setup: an interpreter with CUDA torch already there
    .venv/bin/python benchmarks/gpu_check.py [--budget 420] [--only NAME ...] [--skip NAME ...] [--out-dir DIR]
    .venv/bin/python benchmarks/gpu_check.py --list  # the steps and their time limits

Without a CUDA device it prints one line and exits 0 (``--allow-cpu`` runs the step list anyway,
every CUDA step reported SKIP, and still writes the report: that is how it is tested).

Each step runs in its own Python process with its own time limit; a step that overruns is killed
(with everything it started) and reported ``CUT after N s`` with the figures it had recorded so
far. One failing step never stops the others. After every step the report is rewritten, so a
check that is itself interrupted still leaves ``gpu.md`` (Markdown) and ``gpu.csv`` (one row per
figure) in ``benchmarks/results/`` with the device name, the torch / CUDA / cuDNN / nvcc / gsplat
/ xformers versions, one verdict line per step (PASS / FAIL / SKIP / CUT + the key figure) and
every figure. Numerical comparisons run in float32 with TF32 off
(``torch.backends.cuda.matmul.allow_tf32 = False``, ``torch.backends.cudnn.allow_tf32 = False``).

Time budget: the whole command must end in under 8 minutes on one H100/H200, setup included.
The script's own budget is 420 s (``--budget``; with ``--setup-seconds S`` from the Makefile it
is 470 - S, at least 180 s); a step gets ``min(its limit, what is left)`` and one that cannot
start any more is reported CUT. Steps, in order (limits in seconds; the two background steps are
CPU work that runs while the GPU steps before ``render`` run):

==============  =====  ===============================================================================
step            limit  what (sizes chosen so that the step takes about half its limit on an H200)
==============  =====  ===============================================================================
environment       30   imports of every dependency and of the project packages, versions, nvcc vs
                       torch's CUDA major version, a CUDA matmul
gsplat-build     300   background: gsplat's CUDA extension (JIT build with MAX_JOBS = CPUs - 2, only
                       for this GPU's architecture; seconds when already built), then one gsplat render
synth-data        90   background: ``pmsplat data synth`` of a tiny 256x256 set (2 train + 1 test scene)
knn               60   CUDA grid vs brute force (``pmsplat.nearest_neighbors``) at 16k, 65k, 262k and
                       688k points: indices equal up to ties, distances vs a float64 reference, times
                       of grid / brute force / a chunked ``torch.cdist`` reference, speed-up (target 20x)
pmloss            45   ``pm_loss`` forward + backward at 688,128 points (6 views 256x448): time and peak
                       memory, value and gradient vs the same loss through the brute-force search
attention         45   both encoders (MVSplat released config, DepthSplat small) at 2 x 256x256:
                       xformers memory-efficient attention vs SDPA (outputs), encoder forward times
parity            60   every public parity file in ../shared/parity through the ``pmsplat parity``
                       hooks on CUDA (a failing file also on CPU: port mismatch or CUDA problem?)
render            45   the decoder's gsplat backend vs the exact torch rasteriser on the same Gaussians
                       (64x64, 256x256, 256x448; 3 target views; 2·H·W Gaussians): image / alpha / depth
                       differences, gradients (means, covariances, SH colours, opacities), fwd+bwd times
train            150   50 steps of MVSplat and DepthSplat (small) at 256x256 with loss=[mse,lpips,pm]
                       (synthetic teacher) through ModelWrapper: loss decreases, step time, peak memory,
                       first-step loss vs the same step on CPU
gpu-tests         90   ``pytest -m gpu`` (the GPU-marked tests of the suite)
ddp               90   with 2+ GPUs: tests/splatcore/test_ddp.py on 2 GPUs (one DDP step = 2 accumulated
                       batches, DDP evaluation = one process, one history row per step); SKIP with one
==============  =====  ===============================================================================

On a machine without internet, put missing packages on ``PYTHONPATH`` (wheels installed with
``pip install --target``) and run the script with that interpreter; the environment step lists
what is missing. ``../shared`` is found through ``$PMSPLAT_SHARED``, ``<repo>/../shared`` or
``<repo>/shared``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
TOTAL_LIMIT_S = 480  # the issue: the whole command, setup included, under 8 minutes
DEFAULT_BUDGET_S = 420
MIN_BUDGET_S = 180
MIN_STEP_S = 10  # a step with less time left than this is not started (reported CUT)
VERDICTS = ("PASS", "FAIL", "SKIP", "CUT")
LOG_TAIL_LINES = 25

# (distribution, module) pairs the project needs at run time (setup.py install_requires + the gpu extra)
REQUIREMENTS = [
    ("torch", "torch"),
    ("gsplat", "gsplat"),
    ("xformers", "xformers"),
    ("jaxtyping", "jaxtyping"),
    ("beartype", "beartype"),
    ("lightning", "lightning"),
    ("hydra-core", "hydra"),
    ("omegaconf", "omegaconf"),
    ("scikit-image", "skimage"),
    ("einops", "einops"),
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("safetensors", "safetensors"),
    ("rich", "rich"),
    ("pillow", "PIL"),
    ("matplotlib", "matplotlib"),
    ("e3nn", "e3nn"),
    ("dacite", "dacite"),
    ("lpips", "lpips"),
    ("pytest", "pytest"),
]
# imported lazily by the code on CUDA only, or only for the LPIPS head weights: absent = not fatal here
OPTIONAL = {"gsplat", "xformers", "lpips", "pytest"}
PROJECT_PACKAGES = ["pmsplat", "splatcore", "mvsplat", "depthsplat"]


# ---------------------------------------------------------------------------------------------
# the step list
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One named check. ``target`` is a function of this module (``step_<name>``) or
    ``"path/to/file.py:function"``; it runs in its own process as ``target(ctx) -> (verdict,
    summary)``. ``background`` steps start when the check starts and run alongside the others;
    ``requires`` names steps that must have finished before this one starts."""

    name: str
    title: str
    limit_s: float
    target: str
    needs_cuda: bool = True
    background: bool = False
    requires: tuple[str, ...] = ()


STEPS: list[Step] = [
    Step("environment", "dependencies, versions, a CUDA matmul", 30, "step_environment", needs_cuda=False),
    Step("gsplat-build", "gsplat CUDA extension (JIT build) + one render", 300, "step_gsplat_build", background=True),
    Step("synth-data", "tiny 256x256 synthetic set (pmsplat data synth)", 90, "step_synth_data", background=True),
    Step("knn", "nearest neighbours: CUDA grid vs brute force, 16k-688k", 60, "step_knn"),
    Step("pmloss", "PM-Loss fwd+bwd at 688,128 points", 45, "step_pmloss"),
    Step("attention", "xformers vs SDPA inside both encoders", 45, "step_attention"),
    Step("parity", "public parity files on CUDA (float32, TF32 off)", 60, "step_parity"),
    Step("render", "gsplat vs exact torch rasteriser", 45, "step_render", requires=("gsplat-build",)),
    Step("train", "50 steps MVSplat + DepthSplat, loss=[mse,lpips,pm]", 150, "step_train", requires=("gsplat-build", "synth-data")),
    Step("gpu-tests", "pytest -m gpu", 90, "step_gpu_tests", requires=("gsplat-build",)),
    Step("ddp", "DDP tests on 2 GPUs (skipped with one)", 90, "step_ddp"),
]


def step_names(steps: list[Step] | None = None) -> list[str]:
    return [s.name for s in (STEPS if steps is None else steps)]


def select_steps(steps: list[Step], only: list[str] | None, skip: list[str] | None) -> list[Step]:
    """The steps to run: ``only`` (plus what they require, transitively) minus ``skip``."""
    by_name = {s.name: s for s in steps}
    unknown = sorted((set(only or []) | set(skip or [])) - set(by_name))
    if unknown:
        raise SystemExit(f"gpu_check: unknown step(s) {unknown}; the steps are {list(by_name)}")
    wanted = set(by_name) if not only else set()
    stack = list(only or [])
    while stack:
        name = stack.pop()
        if name not in wanted:
            wanted.add(name)
            stack.extend(by_name[name].requires)
    wanted -= set(skip or [])
    return [s for s in steps if s.name in wanted]


# ---------------------------------------------------------------------------------------------
# versions (tolerant: any string, or None, gives a tuple or None, never an exception)
# ---------------------------------------------------------------------------------------------


def parse_version(text: Any) -> tuple[int, ...] | None:
    """Leading numeric release of a version string: '2.11.0+cu130' -> (2, 11, 0), '0.0.35' ->
    (0, 0, 35), '1.5.3.dev0' -> (1, 5, 3), 'release 13.0, V13.0.88' -> (13, 0), 'v12' -> (12,);
    None when there is no number."""
    if text is None:
        return None
    match = re.search(r"(\d+(?:\.\d+)*)", str(text))
    if not match:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def version_text(version: tuple[int, ...] | None) -> str:
    return "unknown" if version is None else ".".join(map(str, version))


def package_version(distribution: str, module: str | None = None) -> str | None:
    """Installed version of a distribution (metadata first, then ``module.__version__``), or None."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(distribution)
        except PackageNotFoundError:
            pass
    except Exception:  # noqa: BLE001 - a broken metadata directory must not stop the check
        pass
    if module:
        try:
            from importlib import import_module

            return str(getattr(import_module(module), "__version__", None) or "") or None
        except Exception:  # noqa: BLE001
            return None
    return None


def _command_output(argv: list[str], timeout: float = 10.0) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout or "") + (done.stderr or "") if done.returncode == 0 else None


def nvcc_version() -> str | None:
    """'13.0' from ``nvcc --version`` (``$CUDA_HOME/bin/nvcc`` first), or None."""
    candidates = [os.path.join(os.environ[k], "bin", "nvcc") for k in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(k)]
    candidates += ["nvcc", "/usr/local/cuda/bin/nvcc"]
    for candidate in candidates:
        out = _command_output([candidate, "--version"])
        if out:
            match = re.search(r"release\s+(\d+(?:\.\d+)*)", out)
            return match.group(1) if match else version_text(parse_version(out.splitlines()[-1]))
    return None


def driver_version() -> str | None:
    out = _command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return out.strip().splitlines()[0].strip() if out and out.strip() else None


def git_commit() -> str:
    out = _command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    if not out:
        return "unknown"
    return out.strip() + (" (+ uncommitted changes)" if dirty and dirty.strip() else "")


def environment_info(torch_module: Any | None) -> dict[str, str]:
    """Machine, device and versions for the report header (never raises)."""
    info: dict[str, str] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git commit": git_commit(),
        "machine": f"{platform.node()} ({platform.machine()}), {os.cpu_count()} CPUs",
        "python": platform.python_version(),
    }
    torch = torch_module
    if torch is None:
        info["torch"] = "not importable"
    else:
        info["torch"] = str(getattr(torch, "__version__", "unknown"))
        info["torch CUDA build"] = str(getattr(torch.version, "cuda", None) or "none (CPU build)")
        try:
            cudnn = torch.backends.cudnn.version()
        except Exception:  # noqa: BLE001
            cudnn = None
        info["cuDNN"] = str(cudnn) if cudnn else "none"
        try:
            if torch.cuda.is_available():
                props = torch.cuda.get_device_properties(0)
                info["device"] = f"{props.name} (compute capability {props.major}.{props.minor}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs)"
                info["devices visible"] = str(torch.cuda.device_count())
            else:
                info["device"] = "no CUDA device"
        except Exception as error:  # noqa: BLE001
            info["device"] = f"unknown ({type(error).__name__}: {error})"
    info["NVIDIA driver"] = driver_version() or "unknown"
    info["nvcc"] = nvcc_version() or "not found"
    for distribution in ("gsplat", "xformers", "lightning", "hydra-core"):
        info[distribution] = package_version(distribution) or "not installed"
    return info


# ---------------------------------------------------------------------------------------------
# results and the report
# ---------------------------------------------------------------------------------------------


@dataclass
class StepResult:
    name: str
    title: str
    verdict: str
    summary: str
    seconds: float = 0.0
    limit_s: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def verdict_line(result: StepResult) -> str:
    """The one-line verdict printed after each step and listed in the report."""
    timing = f"{result.seconds:6.1f} s / {result.limit_s:.0f} s"
    return f"{result.name:<13} {result.verdict:<4}  {timing}  {result.summary}"


def write_report(out_dir: Path, meta: dict[str, str], results: list[StepResult], pending: list[Step] | None = None) -> tuple[Path, Path]:
    """Write ``gpu.md`` and ``gpu.csv`` into ``out_dir`` (created); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, csv_path = out_dir / "gpu.md", out_dir / "gpu.csv"
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    lines = ["# GPU check (`make gpu-check`, benchmarks/gpu_check.py)", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += [
        f"- verdicts: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP, {counts['CUT']} CUT"
        + (f"; {len(pending)} step(s) not run yet: {', '.join(s.name for s in pending)}" if pending else ""),
        "",
        "| step | verdict | time (s) | limit (s) | key figure |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.name} | {r.verdict} | {r.seconds:.1f} | {r.limit_s:.0f} | {r.summary.replace('|', '/')} |")
    for s in pending or []:
        lines.append(f"| {s.name} | — | | {s.limit_s:.0f} | not run (the check stopped before this step) |")
    lines.append("")
    for r in results:
        lines += [f"## {r.name}: {r.verdict}", "", f"{r.title}. {r.summary}", ""]
        if r.figures:
            lines += ["| figure | value |", "|---|---|"]
            lines += [f"| {k} | {_format_value(v).replace('|', '/')} |" for k, v in r.figures.items()]
            lines.append("")
        if r.log_tail and r.verdict in ("FAIL", "CUT"):
            lines += ["Last lines of the step's output:", "", "```", r.log_tail.rstrip(), "```", ""]
    md_path.write_text("\n".join(lines) + "\n")
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["section", "figure", "value"])
        for key, value in meta.items():
            writer.writerow(["meta", key, value])
        for r in results:
            writer.writerow([r.name, "verdict", r.verdict])
            writer.writerow([r.name, "seconds", f"{r.seconds:.2f}"])
            writer.writerow([r.name, "limit_s", f"{r.limit_s:.0f}"])
            writer.writerow([r.name, "summary", r.summary])
            for key, value in r.figures.items():
                writer.writerow([r.name, key, value if isinstance(value, (int, float)) and not isinstance(value, bool) else _format_value(value)])
    return md_path, csv_path


# ---------------------------------------------------------------------------------------------
# running steps in subprocesses
# ---------------------------------------------------------------------------------------------


def _child_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO / "src"), str(REPO / "baselines")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MAX_JOBS", str(max(1, (os.cpu_count() or 2) - 2)))
    env["GPU_CHECK_WORKDIR"] = str(workdir)
    return env


def read_child_result(path: Path) -> tuple[dict[str, Any], str | None, str | None]:
    """(figures, verdict, summary) from a child's JSON-lines result file (a torn last line is ignored)."""
    figures: dict[str, Any] = {}
    verdict = summary = None
    if not path.exists():
        return figures, verdict, summary
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "figure" in entry:
            figures[entry["figure"]] = entry.get("value")
        if "verdict" in entry:
            verdict, summary = entry["verdict"], entry.get("summary", "")
    return figures, verdict, summary


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    # progress bars rewrite lines with \r: keep the last state of each line
    rows = [row.split("\r")[-1] for row in text.splitlines()]
    return "\n".join(row[:300] for row in rows[-lines:])


@dataclass
class _Running:
    step: Step
    process: subprocess.Popen
    started: float
    deadline: float
    result_path: Path
    log_path: Path
    log_handle: Any


class Runner:
    """Starts steps as subprocesses, enforces each one's time limit and the total budget."""

    def __init__(
        self, workdir: Path, device: str, scale: str, cuda: bool, budget_s: float, script: Path | None = None,
        limit_factor: float = 1.0,
    ):
        self.workdir = workdir
        self.limit_factor = limit_factor
        self.device = device
        self.scale = scale
        self.cuda = cuda
        self.start = time.monotonic()
        self.deadline = self.start + budget_s
        self.script = script or Path(__file__).resolve()
        self.results: dict[str, StepResult] = {}
        self.running: dict[str, _Running] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def launch(self, step: Step) -> None:
        limit = min(step.limit_s * self.limit_factor, self.left())
        if step.needs_cuda and not self.cuda:
            self.results[step.name] = StepResult(step.name, step.title, "SKIP", "no CUDA device", limit_s=step.limit_s)
            return
        if self.left() < min(MIN_STEP_S, step.limit_s * self.limit_factor):
            self.results[step.name] = StepResult(
                step.name, step.title, "CUT", f"not started: {max(0.0, self.left()):.0f} s left of the total budget", limit_s=step.limit_s
            )
            return
        result_path = self.workdir / f"{step.name}.result.jsonl"
        log_path = self.workdir / f"{step.name}.log"
        prereqs = {name: self.results[name].verdict + ": " + self.results[name].summary for name in step.requires if name in self.results}
        argv = [
            sys.executable, str(self.script), "--child", step.target, "--result", str(result_path),
            "--device", self.device, "--scale", self.scale, "--step-name", step.name,
            "--prereqs", json.dumps(prereqs),
        ]
        log_handle = log_path.open("w")
        process = subprocess.Popen(
            argv, stdout=log_handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_child_env(self.workdir), cwd=str(REPO), start_new_session=True,
        )
        now = time.monotonic()
        self.running[step.name] = _Running(step, process, now, now + limit, result_path, log_path, log_handle)

    def _finish(self, name: str, cut: bool) -> StepResult:
        run = self.running.pop(name)
        seconds = time.monotonic() - run.started
        if cut:
            _kill_group(run.process)
        rc = run.process.wait()
        run.log_handle.close()
        figures, verdict, summary = read_child_result(run.result_path)
        limit = run.deadline - run.started
        if cut:
            recorded = f"; figures so far: {len(figures)}" if figures else ""
            verdict, summary = "CUT", f"cut after {seconds:.0f} s (limit {limit:.0f} s){recorded}"
        elif verdict is None:
            verdict, summary = "FAIL", f"the step's process exited with code {rc} without a verdict (see its output below)"
        elif verdict not in VERDICTS:
            summary, verdict = f"unknown verdict {verdict!r}: {summary}", "FAIL"
        result = StepResult(name, run.step.title, verdict, summary or "", seconds, limit, figures, _tail(run.log_path))
        self.results[name] = result
        return result

    def poll(self) -> list[StepResult]:
        """Finish every running step that ended or overran; returns the finished results."""
        done = []
        for name, run in list(self.running.items()):
            if run.process.poll() is not None:
                done.append(self._finish(name, cut=False))
            elif time.monotonic() > run.deadline:
                done.append(self._finish(name, cut=True))
        return done

    def wait_for(self, names: list[str], on_done: Callable[[StepResult], None]) -> None:
        while any(n in self.running for n in names):
            for result in self.poll():
                on_done(result)
            time.sleep(0.2)

    def stop_all(self) -> None:
        for name in list(self.running):
            self._finish(name, cut=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _kill_group(process: subprocess.Popen) -> None:
    """SIGTERM to the step's process group, SIGKILL after 3 s."""
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_check(
    steps: list[Step],
    out_dir: Path,
    *,
    device: str = "cuda",
    scale: str = "full",
    cuda: bool = True,
    budget_s: float = DEFAULT_BUDGET_S,
    meta: dict[str, str] | None = None,
    keep_workdir: bool = False,
    limit_factor: float = 1.0,
    echo: Callable[[str], None] = print,
) -> list[StepResult]:
    """Run ``steps`` (background ones first, concurrently), writing the report after each."""
    meta = dict(meta or {})
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    runner = Runner(workdir, device, scale, cuda, budget_s, limit_factor=limit_factor)
    order = [s.name for s in steps]
    meta["budget"] = f"{budget_s:.0f} s for the steps (limits per step below)"

    def ordered() -> list[StepResult]:
        return [runner.results[n] for n in order if n in runner.results]

    def report() -> None:
        done = set(runner.results)
        pending = [s for s in steps if s.name not in done]
        meta["steps wall time"] = f"{time.monotonic() - runner.start:.0f} s"
        write_report(out_dir, meta, ordered(), pending)

    def on_done(result: StepResult) -> None:
        echo(verdict_line(result))
        report()

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        for step in steps:
            if step.background:
                runner.launch(step)
                if step.name in runner.results:
                    on_done(runner.results[step.name])
        for step in steps:
            if step.background:
                continue
            runner.wait_for([r for r in step.requires if r in runner.running], on_done)
            for result in runner.poll():
                on_done(result)
            runner.launch(step)
            if step.name in runner.results:  # skipped / not started
                on_done(runner.results[step.name])
            runner.wait_for([step.name], on_done)
        runner.wait_for(list(runner.running), on_done)
    except KeyboardInterrupt:
        echo("gpu_check: interrupted; stopping the running steps and writing what was measured")
        runner.stop_all()
    finally:
        signal.signal(signal.SIGTERM, previous)
        report()
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return ordered()


# ---------------------------------------------------------------------------------------------
# the child side
# ---------------------------------------------------------------------------------------------


class StepContext:
    """What a step function gets: device, scale ("full" or "small" for a quick CPU rehearsal),
    a shared work directory, the verdicts of its prerequisites, and ``figure`` to record results
    (each written at once, so a cut step keeps what it had measured)."""

    def __init__(self, name: str, result_path: Path, device: str, scale: str, prereqs: dict[str, str]):
        self.name = name
        self.result_path = result_path
        self.device = device
        self.scale = scale
        self.prereqs = prereqs
        self.workdir = Path(os.environ.get("GPU_CHECK_WORKDIR") or tempfile.mkdtemp(prefix="gpu-check-"))
        self.figures: dict[str, Any] = {}

    @property
    def full(self) -> bool:
        return self.scale == "full"

    def _write(self, entry: dict[str, Any]) -> None:
        with self.result_path.open("a") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")

    def figure(self, key: str, value: Any) -> Any:
        """Record ``value`` under ``key`` (written at once) and return it unchanged."""
        stored = str(value) if isinstance(value, float) and not math.isfinite(value) else value  # JSON has no inf/nan
        self.figures[key] = stored
        self._write({"figure": key, "value": stored})
        print(f"  {key}: {_format_value(value)}", flush=True)
        return value

    def prereq_ok(self, name: str) -> bool:
        return self.prereqs.get(name, "PASS").startswith("PASS")

    def finish(self, verdict: str, summary: str) -> None:
        self._write({"verdict": verdict, "summary": summary})


def _load_target(target: str) -> Callable[[StepContext], tuple[str, str]]:
    if ":" in target:
        import importlib.util

        file, function = target.rsplit(":", 1)
        spec = importlib.util.spec_from_file_location(f"gpu_check_target_{abs(hash(file))}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, function)
    return globals()[target]


def child_main(args: argparse.Namespace) -> int:
    for path in (REPO / "baselines", REPO / "src"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    ctx = StepContext(args.step_name or args.child, Path(args.result), args.device, args.scale, json.loads(args.prereqs or "{}"))
    try:
        verdict, summary = _load_target(args.child)(ctx)
    except Exception as error:  # noqa: BLE001 - every failure becomes a FAIL verdict with its message
        traceback.print_exc()
        message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        ctx.finish("FAIL", f"{type(error).__name__}: {message}")
        return 1
    ctx.finish(verdict, summary)
    return 0


# ---------------------------------------------------------------------------------------------
# helpers used by the steps (run in the child, torch imported there)
# ---------------------------------------------------------------------------------------------


def _torch():
    import torch

    return torch


def exact_float32() -> None:
    """float32 matmuls and convolutions without TF32 (the comparisons' setting)."""
    torch = _torch()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        _torch().cuda.synchronize()


def timed(fn: Callable[[], Any], device: str, repeats: int = 3, warmup: int = 1) -> tuple[float, Any]:
    """(median wall time of ``repeats`` calls after ``warmup`` untimed ones, the last result)."""
    result = None
    for _ in range(warmup):
        result = fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def relative_error(a, b) -> float:
    """max |a - b| / max |b| (max |a - b| when b is all zero); inf when a is not finite."""
    torch = _torch()
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if not bool(torch.isfinite(a).all()):
        return math.inf
    scale = float(b.abs().max()) if b.numel() else 0.0
    diff = float((a - b).abs().max()) if b.numel() else 0.0
    return diff / scale if scale > 0 else diff


def norm_relative_error(a, b) -> float:
    """|a - b| / |b| (Frobenius norms); inf when either is not finite."""
    torch = _torch()
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
        return math.inf
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def surface_points(views: int, height: int, width: int, seed: int = 0):
    """(1, V*H*W, 3) float32 points of a smooth depth surface with a step (the shape of pointmaps
    and of predicted Gaussian centres), one per pixel in (view, row, column) order."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    v, u = torch.meshgrid(torch.linspace(-0.6, 0.6, height), torch.linspace(-1, 1, width), indexing="ij")
    points = []
    for k in range(views):
        depth = 2 + 0.5 * torch.sin(3 * u + k) * torch.cos(2 * v) + 0.3 * ((u > 0.3) & (v < 0)).float()
        points.append(torch.stack([u * depth + 0.15 * k, v * depth, depth], -1).reshape(-1, 3))
    surface = torch.cat(points)[None]
    return surface + 0.002 * torch.randn(surface.shape, generator=g)


def prediction_and_teacher(views: int, height: int, width: int, device: str):
    """(pred, teacher) (1, N, 3) float32: the surface with noise, and the same surface with its
    own noise in another similarity frame (scale, rotation, translation), as a teacher's is."""
    torch = _torch()
    g = torch.Generator().manual_seed(1)
    surface = surface_points(views, height, width)
    pred = surface + 0.005 * torch.randn(surface.shape, generator=g)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    teacher = 0.37 * (surface + 0.01 * torch.randn(surface.shape, generator=g)) @ q.T + torch.tensor([0.5, -1.0, 2.0])
    return pred.to(device), teacher.to(device)


def camera_rig(views: int, device: str, seed: int = 0, fx: float = 1.0, aspect: float = 1.0):
    """(extrinsics (1, V, 4, 4) camera-to-world, intrinsics (1, V, 3, 3) normalised): cameras near
    the origin looking down +z (OpenCV axes), small random rotations and translations."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    extrinsics = torch.eye(4).repeat(1, views, 1, 1)
    for k in range(views):
        angles = (torch.rand(3, generator=g) - 0.5) * 0.1  # about +-3 degrees
        rx, ry, rz = angles.tolist()
        cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
        rot_x = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        rot_y = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rot_z = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        extrinsics[0, k, :3, :3] = rot_z @ rot_y @ rot_x
        extrinsics[0, k, :3, 3] = torch.tensor([0.1 * k, 0.0, 0.0]) + (torch.rand(3, generator=g) - 0.5) * 0.1
    intrinsics = torch.tensor([[fx, 0.0, 0.5], [0.0, fx * aspect, 0.5], [0.0, 0.0, 1.0]]).repeat(1, views, 1, 1)
    return extrinsics.to(device), intrinsics.to(device)


def to_device(value: Any, device: str) -> Any:
    torch = _torch()
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def find_shared_dir() -> Path | None:
    candidates = [os.environ.get("PMSPLAT_SHARED"), REPO.parent / "shared", REPO / "shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "parity").is_dir():
            return Path(candidate)
    return None


def peak_mib(base_bytes: int) -> float:
    torch = _torch()
    return (torch.cuda.max_memory_allocated() - base_bytes) / 2**20


# ---------------------------------------------------------------------------------------------
# the steps
# ---------------------------------------------------------------------------------------------


def step_environment(ctx: StepContext) -> tuple[str, str]:
    """Every dependency imports, the project packages import, versions, a CUDA matmul."""
    from importlib import import_module

    missing, optional_missing = [], []
    for distribution, module in REQUIREMENTS:
        # gsplat / xformers imports are checked in their own steps; of lpips only the weight files
        # are used (its import needs torchvision, which the project does not install)
        if module in ("gsplat", "xformers", "lpips"):
            ctx.figure(f"version/{distribution}", package_version(distribution) or "not installed")
            if package_version(distribution) is None:
                optional_missing.append(distribution)
            continue
        try:
            import_module(module)
            ctx.figure(f"version/{distribution}", package_version(distribution, module) or "installed (no version)")
        except Exception as error:  # noqa: BLE001
            ctx.figure(f"version/{distribution}", f"MISSING ({type(error).__name__}: {str(error)[:120]})")
            (optional_missing if module in OPTIONAL else missing).append(distribution)
    broken = []
    for package in PROJECT_PACKAGES:
        try:
            import_module(package)
        except Exception as error:  # noqa: BLE001
            broken.append(f"{package} ({type(error).__name__}: {str(error)[:100]})")
    ctx.figure("project packages", "all import" if not broken else "; ".join(broken))
    torch = _torch()
    notes = []
    if ctx.device.startswith("cuda"):
        torch_cuda, nvcc = parse_version(torch.version.cuda), parse_version(nvcc_version())
        ctx.figure("torch CUDA build", version_text(torch_cuda))
        ctx.figure("nvcc", version_text(nvcc) if nvcc else "not found")
        if nvcc is None:
            notes.append("no nvcc: gsplat cannot build its CUDA extension")
        elif torch_cuda is not None and nvcc[0] != torch_cuda[0]:
            notes.append(f"nvcc {version_text(nvcc)} vs torch CUDA {version_text(torch_cuda)}: major versions differ, gsplat's JIT build will fail")
        exact_float32()
        a = torch.randn(2048, 2048, device=ctx.device, dtype=torch.float64)
        product = (a.float() @ a.float()).double()
        ctx.figure("float32 matmul vs float64, max rel error", relative_error(product, a @ a))
    if missing or broken:
        hint = f"missing: {', '.join(missing)}" if missing else ""
        return "FAIL", "; ".join(x for x in [hint, *(f"cannot import {b}" for b in broken), *notes] if x)
    extra = f"; optional absent: {', '.join(optional_missing)}" if optional_missing else ""
    return ("FAIL" if notes else "PASS"), "; ".join(notes) if notes else f"all {len(REQUIREMENTS) - len(optional_missing)} dependencies import{extra}"


def step_gsplat_build(ctx: StepContext) -> tuple[str, str]:
    """Import gsplat, build (or load) its CUDA extension, render once through the decoder."""
    torch = _torch()
    if not ctx.device.startswith("cuda"):
        return "SKIP", "gsplat renders on CUDA only"
    major, minor = torch.cuda.get_device_capability()
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", f"{major}.{minor}")
    ctx.figure("TORCH_CUDA_ARCH_LIST", os.environ["TORCH_CUDA_ARCH_LIST"])
    ctx.figure("MAX_JOBS", os.environ.get("MAX_JOBS", "default"))
    version = package_version("gsplat")
    if version is None:
        return "FAIL", "gsplat is not installed (pip install gsplat, or make setup on a CUDA machine: the gpu extra)"
    ctx.figure("gsplat version", version)
    start = time.perf_counter()
    try:  # the JIT build happens on this import when gsplat has no prebuilt module
        from gsplat.cuda._backend import _C
    except ImportError as error:  # another gsplat layout: the first render below builds it instead
        ctx.figure("gsplat.cuda._backend", f"not importable ({error}); built by the first render")
        _C = True
    build_s = ctx.figure("build or load s", time.perf_counter() - start)
    if _C is None:
        return "FAIL", "gsplat's CUDA extension is not available (no CUDA toolkit / nvcc found by torch)"
    from splatcore.decoder import Decoder, DecoderSplattingCfg
    from splatcore.types import Gaussians

    scene = _render_scene(32, 32, targets=1, device=ctx.device)
    out = Decoder(DecoderSplattingCfg(backend="gsplat")).to(ctx.device)(Gaussians(*scene["params"]), *scene["cameras"], (32, 32), "depth")
    _sync(ctx.device)
    ok = bool(torch.isfinite(out.color).all()) and float(out.alpha.max()) > 0
    ctx.figure("first render finite and non-empty", ok)
    if not ok:
        return "FAIL", "gsplat rendered a non-finite or empty image"
    return "PASS", f"extension ready in {build_s:.0f} s; one render OK"


def step_synth_data(ctx: StepContext) -> tuple[str, str]:
    """``pmsplat data synth`` of a tiny set for the training step (into the shared work dir)."""
    from pmsplat.cli import main as pmsplat_main

    size = 256 if ctx.full else 32
    out = ctx.workdir / "synthetic"
    workers = max(1, min(4, (os.cpu_count() or 2) - 2))
    argv = ["data", "synth", "--out", str(out), "--scenes", "2", "--test-scenes", "1", "--frames", "37",
            "--size", str(size), "--supersample", "1", "--workers", str(workers)]
    start = time.perf_counter()
    rc = pmsplat_main(argv)
    seconds = ctx.figure("seconds", time.perf_counter() - start)
    if rc != 0 or not (out / "train" / "index.json").is_file():
        return "FAIL", f"pmsplat {' '.join(argv)} exited with {rc}"
    mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    ctx.figure("size MB", mb)
    return "PASS", f"2 train + 1 test scenes at {size}x{size} in {seconds:.0f} s ({mb:.0f} MB)"


def _knn_tolerance(points_scale: float, d_ref):
    """Squared-distance slack of a float32 search: each coordinate difference carries an error up
    to ~4 ulp of the coordinates' magnitude (delta), so |d' - d| <= 2 sqrt(3 d) delta + 3 delta^2."""
    delta = 4 * 2.0**-23 * points_scale
    return 2 * (3 * d_ref).sqrt() * delta + 3 * delta * delta


def step_knn(ctx: StepContext) -> tuple[str, str]:
    """CUDA grid vs brute force: exact up to ties, float64 spot check, times, speed-up."""
    torch = _torch()
    from pmsplat import nearest_neighbors, similarity_align

    exact_float32()
    device = ctx.device
    sizes = {16_384: (2, 64, 128), 65_536: (2, 128, 256), 262_144: (4, 256, 256), 688_128: (6, 256, 448)} if ctx.full \
        else {1_024: (2, 16, 32), 4_096: (2, 32, 64)}
    failures, ratio = [], None
    for n, (views, height, width) in sizes.items():
        key = f"{n // 1000}k" if n >= 1000 else str(n)
        pred, teacher = prediction_and_teacher(views, height, width, device)
        refs, _ = similarity_align(teacher, pred)
        refs = refs.detach().contiguous()
        t_grid, (index_grid, d_grid) = timed(lambda: nearest_neighbors(pred, refs, method="grid"), device)
        ctx.figure(f"{key}/grid s", t_grid)
        t_brute, (index_brute, d_brute) = timed(lambda: nearest_neighbors(pred, refs, method="brute"), device, repeats=1, warmup=0)
        ctx.figure(f"{key}/brute force s", t_brute)

        def cdist_reference():
            chunk = max(1, (1 << 28) // refs.shape[1])
            parts = [torch.cdist(pred[:, i:i + chunk], refs).argmin(-1) for i in range(0, pred.shape[1], chunk)]
            return torch.cat(parts, 1)

        t_cdist, index_cdist = timed(cdist_reference, device, repeats=1, warmup=1 if n < 100_000 else 0)
        ctx.figure(f"{key}/cdist chunked s", t_cdist)
        ratio = ctx.figure(f"{key}/brute / grid", t_brute / t_grid)
        ctx.figure(f"{key}/cdist / grid", t_cdist / t_grid)
        # exactness: indices equal, or the two chosen references equidistant within float32 rounding
        q64, r64 = pred[0].double(), refs[0].double()
        dg64 = (q64 - r64[index_grid[0]]).square().sum(-1)
        db64 = (q64 - r64[index_brute[0]]).square().sum(-1)
        scale = float(max(pred.abs().max(), refs.abs().max()))
        slack = _knn_tolerance(scale, db64)
        differ = index_grid[0] != index_brute[0]
        beyond = differ & ((dg64 - db64).abs() > slack)
        ctx.figure(f"{key}/indices differing from brute force", int(differ.sum()))
        ctx.figure(f"{key}/... of which not ties", int(beyond.sum()))
        ctx.figure(f"{key}/max |d_grid - d_brute| (returned sq. distances)", float((d_grid - d_brute).abs().max()))
        ctx.figure(f"{key}/indices differing from cdist (mm-based, float32)", int((index_grid != index_cdist).sum()))
        # independent float64 reference on a sample of queries
        sample = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: min(n, 4096)].to(device)
        exact = torch.cat([torch.cdist(q64[sample[i:i + 256]][None], r64[None])[0].min(-1).values.square() for i in range(0, sample.numel(), 256)])
        excess = dg64[sample] - exact
        excess_bad = int((excess > _knn_tolerance(scale, exact)).sum())
        ctx.figure(f"{key}/float64 sample: max (d_grid - d_exact)", float(excess.max()))
        ctx.figure(f"{key}/float64 sample: beyond float32 rounding", excess_bad)
        if int(beyond.sum()) or excess_bad:
            failures.append(f"{key}: {int(beyond.sum())} non-tie index differences, {excess_bad} beyond float64 slack")
        del pred, teacher, refs
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    largest = f"{max(sizes) // 1000}k"
    if failures:
        return "FAIL", "; ".join(failures)
    if ctx.full and ratio is not None and ratio < 20:
        return "FAIL", f"exact at every size, but grid is only {ratio:.1f}x faster than brute force at {largest} (target >= 20x)"
    return "PASS", f"exact up to ties at every size; grid {ratio:.0f}x faster than brute force at {largest}"


def step_pmloss(ctx: StepContext) -> tuple[str, str]:
    """pm_loss forward + backward at 688,128 points: time, peak memory, vs the brute-force engine."""
    torch = _torch()
    from pmsplat import pm_loss

    exact_float32()
    device = ctx.device
    views, height, width = (6, 256, 448) if ctx.full else (2, 32, 48)
    pred, teacher = prediction_and_teacher(views, height, width, device)
    ctx.figure("points", pred.shape[1])
    cuda = device.startswith("cuda")

    def run(method: str):
        means = pred.clone().requires_grad_(True)
        loss = pm_loss(means, teacher, knn_method=method)
        loss.sum().backward()
        return loss.detach(), means.grad

    run("auto")  # warm-up (allocator, kernels)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if cuda else 0
    t_default, (loss, grad) = timed(lambda: run("auto"), device, repeats=3, warmup=0)
    ctx.figure("fwd+bwd s (default engine)", t_default)
    if cuda:
        ctx.figure("peak MiB above inputs", peak_mib(base))
    t_brute, (loss_ref, grad_ref) = timed(lambda: run("brute"), device, repeats=1, warmup=0)
    ctx.figure("fwd+bwd s (brute force)", t_brute)
    ctx.figure("brute / default", t_brute / t_default)
    ctx.figure("loss", float(loss.sum()))
    loss_rel = ctx.figure("loss rel. difference vs brute force", relative_error(loss, loss_ref))
    grad_rel = ctx.figure("gradient rel. difference (norm) vs brute force", norm_relative_error(grad, grad_ref))
    ok = loss_rel <= 1e-5 and grad_rel <= 1e-4 and math.isfinite(float(loss.sum()))
    summary = f"{t_default * 1000:.0f} ms fwd+bwd at {pred.shape[1]:,} points" + (f", peak {ctx.figures.get('peak MiB above inputs', 0):.0f} MiB" if cuda else "")
    summary += f"; vs brute force: loss {loss_rel:.1e}, grad {grad_rel:.1e} (tol 1e-5, 1e-4)"
    return ("PASS" if ok else "FAIL"), summary


def _encoder_outputs(output: Any) -> dict[str, Any]:
    gaussians = output["gaussians"] if isinstance(output, dict) else output
    tensors = {
        "means": gaussians.means, "covariances": gaussians.covariances,
        "harmonics": gaussians.harmonics, "opacities": gaussians.opacities,
    }
    if isinstance(output, dict) and output.get("depths") is not None:
        tensors["depths"] = output["depths"]
    return tensors


def _build_encoder(overrides: list[str]):
    """An encoder from the project's config tree (the presets), random weights (seeded)."""
    torch = _torch()
    from splatcore.main import build_encoder, compose_config

    cfg = compose_config(overrides)
    torch.manual_seed(0)
    return build_encoder(cfg), cfg


def step_attention(ctx: StepContext) -> tuple[str, str]:
    """xformers vs SDPA inside both encoders; encoder forward times."""
    torch = _torch()
    exact_float32()
    device = ctx.device
    size = 256 if ctx.full else 64
    tolerance = 1e-3
    summaries, failures, skipped = [], [], []
    for label, overrides in (("mvsplat", ["baseline=mvsplat"]), ("depthsplat-small", ["baseline=depthsplat", "model/encoder=depthsplat_small"])):
        encoder, cfg = _build_encoder(overrides)
        encoder = encoder.to(device).eval()
        extrinsics, intrinsics = camera_rig(2, device)
        g = torch.Generator().manual_seed(0)
        context = {
            "image": torch.rand(1, 2, 3, size, size, generator=g).to(device),
            "extrinsics": extrinsics, "intrinsics": intrinsics,
            "near": torch.full((1, 2), float(cfg.dataset.near), device=device),
            "far": torch.full((1, 2), float(cfg.dataset.far), device=device),
        }
        switchable = [m for m in encoder.modules() if callable(getattr(m, "set_attention_backend", None))]
        ctx.figure(f"{label}/modules with an attention backend switch", len(switchable))

        def forward():
            with torch.no_grad():
                return _encoder_outputs(encoder(context, 0, deterministic=True))

        if not switchable:
            t, _ = timed(forward, device)
            ctx.figure(f"{label}/forward s", t)
            summaries.append(f"{label}: no xformers path, fwd {t * 1000:.0f} ms")
            continue
        outputs, times = {}, {}
        for backend in ("sdpa", "xformers"):
            for module in switchable:
                module.set_attention_backend(backend)
            try:
                times[backend], outputs[backend] = timed(forward, device)
            except Exception as error:  # noqa: BLE001 - xformers absent or broken for this CUDA build
                ctx.figure(f"{label}/{backend} error", f"{type(error).__name__}: {str(error)[:200]}")
                continue
            ctx.figure(f"{label}/forward s ({backend})", times[backend])
        for module in switchable:
            module.set_attention_backend("auto")
        if "xformers" not in outputs:
            skipped.append(label)
            summaries.append(f"{label}: xformers unavailable, SDPA fwd {times.get('sdpa', math.nan) * 1000:.0f} ms")
            continue
        worst = 0.0
        for name, reference in outputs["sdpa"].items():
            worst = max(worst, ctx.figure(f"{label}/xformers vs sdpa rel. error: {name}", relative_error(outputs["xformers"][name], reference)))
        if worst > tolerance:
            failures.append(label)
        summaries.append(f"{label}: xformers vs SDPA {worst:.1e} (tol {tolerance:.0e}), fwd {times['xformers'] * 1000:.0f} / {times['sdpa'] * 1000:.0f} ms")
        del encoder
    summary = "; ".join(summaries)
    if failures:
        return "FAIL", summary
    if skipped:
        return "SKIP", summary
    return "PASS", summary


def _parity_run(ctx: StepContext, hooks: Any, parity: Any, label: str, device: str) -> tuple[dict[str, Any], list[str]]:
    """Run one parity file's encoder on ``device`` through the hooks; record and return (outputs,
    names of the tensors out of tolerance)."""
    from splatcore.testing.parity import compare_outputs

    encoder = hooks.build_encoder(parity.metadata).to(device)
    inputs = {k: v.to(device) for k, v in parity.inputs.items()}
    start = time.perf_counter()
    outputs = hooks.run_encoder(encoder, inputs)
    _sync(device)
    ctx.figure(f"{label}/{device} s", time.perf_counter() - start)
    results = compare_outputs(parity.references, outputs)
    bad = [r.name for r in results if not r.ok]
    worst = max((r.relative_error / r.tolerance for r in results), default=math.nan)
    ctx.figure(f"{label}/{device} tensors within tolerance", f"{len(results) - len(bad)} of {len(results)}")
    ctx.figure(f"{label}/{device} worst error / tolerance", worst)
    if bad:
        ctx.figure(f"{label}/{device} out of tolerance", ", ".join(bad))
    return outputs, bad


def step_parity(ctx: StepContext) -> tuple[str, str]:
    """Every public parity file through the ``pmsplat parity`` hooks (``<baseline>.parity``
    build_encoder / run_encoder, the README tolerances) on CUDA. A file that fails there is run
    on CPU too, to tell a port mismatch (fails on both) from a CUDA problem."""
    torch = _torch()
    from importlib import import_module

    from splatcore.testing.parity import load_parity_file

    shared = find_shared_dir()
    if shared is None:
        return "SKIP", "../shared/parity not found (set PMSPLAT_SHARED to the folder that holds parity/)"
    files = sorted((shared / "parity").glob("*/public*.safetensors"))
    if not files:
        return "SKIP", f"no public*.safetensors under {shared / 'parity'}"
    exact_float32()
    torch.set_num_threads(2)  # as `pmsplat parity` (the CPU reruns only; the gsplat build may be using the CPUs)
    failed, passed = [], 0
    for path in files:
        baseline = path.parent.name
        label = f"{baseline}/{path.stem}"
        hooks = import_module(f"{baseline}.parity")
        parity = load_parity_file(path)
        outputs, bad = _parity_run(ctx, hooks, parity, label, ctx.device)
        if not bad:
            passed += 1
            continue
        note = ""
        if ctx.device != "cpu":
            cpu_outputs, cpu_bad = _parity_run(ctx, hooks, parity, label, "cpu")
            common = [k for k in outputs if k in cpu_outputs]
            ctx.figure(f"{label}/{ctx.device} vs cpu max rel. error", max((relative_error(outputs[k], cpu_outputs[k]) for k in common), default=math.nan))
            note = ", fails on CPU too: a port mismatch, not CUDA" if set(cpu_bad) >= set(bad) else ", passes on CPU: a CUDA problem"
        failed.append(f"{label} ({len(bad)} tensors{note})")
    summary = f"{passed} of {len(files)} public files pass on {ctx.device}"
    if failed:
        summary += "; failing: " + "; ".join(failed)
    return ("FAIL" if failed else "PASS"), summary


def _render_scene(height: int, width: int, targets: int, device: str, seed: int = 0) -> dict[str, Any]:
    """Gaussians of 2 context views (one per pixel, footprint about 1 px, unprojected from a
    smooth depth surface with a step) and ``targets`` nearby target cameras; float32."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    means = surface_points(2, height, width, seed)[0].double()
    count = means.shape[0]
    q, _ = torch.linalg.qr(torch.randn(count, 3, 3, generator=g, dtype=torch.float64))
    pixel = 2.0 / width  # the surface spans x in [-depth, depth] over W pixels
    scales = means[:, 2:3] * pixel * (0.5 + torch.rand(count, 3, generator=g, dtype=torch.float64))
    covariances = q @ torch.diag_embed(scales**2) @ q.transpose(-1, -2)
    harmonics = torch.randn(count, 3, 25, generator=g, dtype=torch.float64) * 0.2
    opacities = 0.05 + 0.9 * torch.rand(count, generator=g, dtype=torch.float64)
    extrinsics, intrinsics = camera_rig(targets, "cpu", seed=seed + 1, fx=0.5, aspect=width / height)
    near = torch.ones(1, targets)
    far = torch.full((1, targets), 100.0)
    params = [t[None].to(device, torch.float32) for t in (means, covariances, harmonics, opacities)]
    cameras = [t.to(device, torch.float32) for t in (extrinsics, intrinsics, near, far)]
    return {"params": params, "cameras": cameras}


def step_render(ctx: StepContext) -> tuple[str, str]:
    """The decoder's gsplat backend vs the exact torch rasteriser on the same Gaussians."""
    torch = _torch()
    from splatcore.decoder import Decoder, DecoderSplattingCfg
    from splatcore.types import Gaussians

    exact_float32()
    device = ctx.device
    if device.startswith("cuda"):
        if not ctx.prereq_ok("gsplat-build"):
            return "SKIP", f"gsplat unavailable ({ctx.prereqs.get('gsplat-build', 'build step not run')})"
        backends = ("gsplat", "torch")
    else:
        backends = ("torch", "torch")  # CPU rehearsal: exercises the comparison code only
    sizes = [(64, 64), (256, 256), (256, 448)] if ctx.full else [(16, 16), (16, 24)]
    targets = 3
    failures, speedups = [], []
    for height, width in sizes:
        key = f"{height}x{width}"
        scene = _render_scene(height, width, targets, device)
        g = torch.Generator().manual_seed(1)
        weights = torch.rand(1, targets, 3, height, width, generator=g).to(device)
        results = {}
        for backend in dict.fromkeys(backends):
            decoder = Decoder(DecoderSplattingCfg(backend=backend)).to(device)

            def step(decoder=decoder):
                leaves = [p.clone().requires_grad_(True) for p in scene["params"]]
                out = decoder(Gaussians(*leaves), *scene["cameras"], (height, width), "depth")
                loss = (out.color * weights).sum() + 0.1 * out.depth.sum() + out.alpha.sum()
                loss.backward()
                return out, [leaf.grad for leaf in leaves]

            seconds, results[backend] = timed(step, device, repeats=3 if height * width <= 65536 else 2)
            ctx.figure(f"{key}/{backend} fwd+bwd s", seconds)
            results[backend + "_s"] = seconds
        (out_a, grads_a), (out_b, grads_b) = results[backends[0]], results[backends[-1]]
        ctx.figure(f"{key}/Gaussians", scene["params"][0].shape[1])
        checks = []
        for name in ("color", "alpha", "depth"):
            a, b = getattr(out_a, name), getattr(out_b, name)
            diff = (a - b).abs()
            ctx.figure(f"{key}/{name} max abs diff", float(diff.max()))
            ctx.figure(f"{key}/{name} mean abs diff", float(diff.mean()))
            ctx.figure(f"{key}/{name} fraction > 1e-4", float((diff > 1e-4).float().mean()))
            # tolerances of tests/splatcore/decoder/test_gpu_parity.py: a handful of pixels may differ where an
            # alpha sits within rounding of the 1/255 threshold or T of the 1e-4 early stop
            checks.append(float(diff.mean()) < 1e-5 and float((diff > 1e-4).float().mean()) < 1e-3 and float(diff.max()) < 2e-2)
        for name, a, b in zip(("means", "covariances", "harmonics", "opacities"), grads_a, grads_b):
            rel = ctx.figure(f"{key}/grad {name} rel. error (norm)", norm_relative_error(a, b))
            checks.append(rel < 2e-3)
        if not all(checks):
            failures.append(key)
        speedups.append(results[backends[-1] + "_s"] / results[backends[0] + "_s"])
        if len(set(backends)) == 2:
            ctx.figure(f"{key}/gsplat speed-up (fwd+bwd)", speedups[-1])
        del scene, results
    summary = f"{len(sizes) - len(failures)} of {len(sizes)} sizes within float32 tolerance"
    if len(set(backends)) == 2:
        summary += f"; gsplat {speedups[-1]:.1f}x faster at {sizes[-1][0]}x{sizes[-1][1]}"
    if failures:
        summary += f"; out of tolerance: {', '.join(failures)}"
    return ("FAIL" if failures else "PASS"), summary


def _lpips_reason() -> str | None:
    try:
        from splatcore.evaluation.metrics import lpips_unavailable_reason

        return lpips_unavailable_reason()
    except Exception as error:  # noqa: BLE001
        return f"LPIPS availability unknown ({type(error).__name__}: {error})"


def _train_one(ctx: StepContext, label: str, overrides: list[str], steps: int) -> tuple[bool, str]:
    torch = _torch()
    from splatcore.dataset import DataModule
    from splatcore.main import build_model, compose_config, typed_config

    device = ctx.device
    cfg = compose_config(overrides)
    run_cfg = typed_config(cfg)
    torch.manual_seed(run_cfg.seed)
    start = time.perf_counter()
    model = build_model(cfg, run_cfg)
    model.log = lambda *args, **kwargs: None  # no Lightning Trainer attached
    ctx.figure(f"{label}/parameters (M)", sum(p.numel() for p in model.parameters()) / 1e6)
    batch = next(iter(DataModule(run_cfg.dataset, run_cfg.data_loader).train_dataloader()))
    ctx.figure(f"{label}/build + first batch s", time.perf_counter() - start)
    # the same first step on CPU (exact torch rasteriser, k-d tree kNN), float32
    exact_float32()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model.train()
    start = time.perf_counter()
    with torch.no_grad():
        cpu_loss = float(model.training_step(copy.deepcopy(batch), 0))
    # the loss terms (loss/<name>, loss/total), not their logged statistics (loss/<name>/<stat>)
    cpu_terms = {k: v for k, v in model.last_train_record.items() if k.startswith("loss/") and k.count("/") == 1}
    ctx.figure(f"{label}/CPU first-step loss", cpu_loss)
    ctx.figure(f"{label}/CPU first-step forward s", time.perf_counter() - start)
    model = model.to(device)
    batch = to_device(batch, device)
    ctx.figure(f"{label}/decoder backend", model.decoder.resolve_backend(torch.device(device)))
    optim = model.configure_optimizers()
    optimizer, scheduler = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    clip = float(cfg.trainer.get("gradient_clip_val") or 0.0)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if cuda else 0
    losses, times = [], []
    for step in range(steps):
        if step == 1:  # step 1 compared with the CPU in float32; then the precision `pmsplat train` uses
            torch.set_float32_matmul_precision("high")
            torch.backends.cudnn.allow_tf32 = True
        _sync(device)
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model.training_step(batch, step)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        _sync(device)
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
        if step == 0:
            for key, value in model.last_train_record.items():
                if key in cpu_terms:
                    ctx.figure(f"{label}/first step {key}: {device} vs cpu rel. diff", abs(value - cpu_terms[key]) / max(abs(cpu_terms[key]), 1e-12))
        if step in (0, steps - 1) or (step + 1) % 10 == 0:
            print(f"  {label} step {step + 1}: loss {losses[-1]:.5f} ({times[-1] * 1000:.0f} ms)", flush=True)
    first_rel = ctx.figure(f"{label}/first-step loss {device} vs cpu rel. diff", abs(losses[0] - cpu_loss) / max(abs(cpu_loss), 1e-12))
    ctx.figure(f"{label}/loss first step", losses[0])
    ctx.figure(f"{label}/loss last step", losses[-1])
    k = max(1, min(5, steps // 4))
    head, tail = sum(losses[:k]) / k, sum(losses[-k:]) / k
    ctx.figure(f"{label}/loss mean of last {k} / first {k}", tail / head if head else math.nan)
    steady = times[2:] or times
    step_s = ctx.figure(f"{label}/step s (median, steps 3+)", statistics.median(steady))
    ctx.figure(f"{label}/first step s", times[0])
    if cuda:
        ctx.figure(f"{label}/peak MiB (training)", peak_mib(base))
    finite = all(math.isfinite(v) for v in losses)
    ok = finite and tail < head and first_rel <= 1e-3
    detail = f"{label}: loss {head:.4f} -> {tail:.4f}, {step_s * 1000:.0f} ms/step, first step vs CPU {first_rel:.1e}"
    if cuda:
        detail += f", peak {ctx.figures[f'{label}/peak MiB (training)']:.0f} MiB"
    del model, optimizer, batch
    if cuda:
        torch.cuda.empty_cache()
    return ok, detail


def step_train(ctx: StepContext) -> tuple[str, str]:
    """50 training steps of each baseline through ModelWrapper on one fixed synthetic batch."""
    root = ctx.workdir / "synthetic"
    if not (root / "train").is_dir():
        return "SKIP", f"no synthetic data ({ctx.prereqs.get('synth-data', 'synth-data step not run')})"
    size = 256 if ctx.full else 32
    steps = 50 if ctx.full else 4
    backend = "auto"
    if ctx.device.startswith("cuda") and not ctx.prereq_ok("gsplat-build"):
        backend = "torch"  # gsplat unavailable: still train on CUDA with the exact rasteriser
    reason = _lpips_reason()
    ctx.figure("LPIPS", "VGG weights found" if reason is None else f"weights absent, LPIPS term = 0 ({reason[:120]})")
    common = [
        "dataset=synthetic", f"dataset.roots=[{root}]", f"dataset.image_shape=[{size},{size}]",
        f"dataset.ori_image_shape=[{size},{size}]", "dataset.load_pointmap=true", "teacher=synthetic",
        "loss=[mse,lpips,pm]", "loss.lpips.apply_after_step=0", f"trainer.max_steps={steps}",
        "data_loader.train.batch_size=1", "data_loader.train.num_workers=0", "data_loader.train.persistent_workers=false",
        f"model.decoder.backend={backend}", f"output_dir={ctx.workdir / 'train'}",
    ]
    if reason is not None:
        common.append("loss.lpips.allow_missing_weights=true")
    results = []
    for label, overrides in (("mvsplat", ["baseline=mvsplat"]), ("depthsplat-small", ["baseline=depthsplat", "model/encoder=depthsplat_small"])):
        try:
            results.append(_train_one(ctx, label, overrides + common, steps))
        except Exception as error:  # noqa: BLE001 - the other baseline still runs
            traceback.print_exc()
            results.append((False, f"{label}: {type(error).__name__}: {str(error).strip()[:200]}"))
    summary = "; ".join(detail for _, detail in results)
    if backend == "torch":
        summary += " (decoder: torch backend, gsplat unavailable)"
    return ("PASS" if all(ok for ok, _ in results) else "FAIL"), summary


PYTEST_KINDS = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected")


def parse_pytest_summary(output: str) -> tuple[dict[str, int], str]:
    """Counts from pytest's closing line ('3 passed, 1 skipped, 120 deselected in 9.1s'; 'errors'
    counted as 'error') and that line; zeros and '' when there is none."""
    counts = {kind: 0 for kind in PYTEST_KINDS}
    for line in reversed(output.splitlines()):
        found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)\b", line)
        if found and re.search(r"\bin [\d.]+s", line):
            for number, kind in found:
                counts["error" if kind.startswith("error") else kind] += int(number)
            return counts, line.strip("= ")
    return counts, ""


def step_gpu_tests(ctx: StepContext) -> tuple[str, str]:
    """``pytest -m gpu``: the suite's GPU-marked tests."""
    if not ctx.device.startswith("cuda"):
        return "SKIP", "GPU tests need CUDA"
    argv = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-rfE"]
    # streamed into this step's log line by line, so a cut step still shows how far pytest got
    process = subprocess.Popen(argv, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    returncode = process.wait()
    counts, summary_line = parse_pytest_summary("".join(lines))
    for kind in ("passed", "failed", "error", "skipped", "xfailed"):
        ctx.figure(kind, counts[kind])
    ctx.figure("pytest exit code", returncode)
    if returncode == 0 and counts["passed"]:
        return "PASS", summary_line
    if returncode == 5 or (returncode == 0 and not counts["passed"]):
        return "SKIP", summary_line or "no GPU test ran"
    return "FAIL", summary_line or f"pytest exited with {returncode}"


def step_ddp(ctx: StepContext) -> tuple[str, str]:
    """The DDP tests of the suite with ``trainer.accelerator=gpu`` on 2 GPUs (needs 2)."""
    import torch

    count = torch.cuda.device_count() if ctx.device.startswith("cuda") else 0
    ctx.figure("GPUs", count)
    if count < 2:
        return "SKIP", f"{count} GPU(s): the DDP step needs 2"
    argv = [sys.executable, "-m", "pytest", "tests/splatcore/test_ddp.py", "-q", "-p", "no:cacheprovider", "-rfE"]
    env = dict(os.environ, PMSPLAT_DDP_ACCELERATOR="gpu")
    done = subprocess.run(argv, cwd=str(REPO), env=env, capture_output=True, text=True)
    print(done.stdout[-4000:], flush=True)
    counts, summary_line = parse_pytest_summary(done.stdout)
    for kind in ("passed", "failed", "error", "skipped"):
        ctx.figure(kind, counts[kind])
    return ("PASS" if done.returncode == 0 and counts["passed"] else "FAIL"), summary_line or f"pytest exited with {done.returncode}"


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where gpu.md and gpu.csv go (default benchmarks/results)")
    parser.add_argument("--budget", type=float, default=None, help=f"seconds for all steps (default {DEFAULT_BUDGET_S}; with --setup-seconds S: 470 - S, at least {MIN_BUDGET_S})")
    parser.add_argument("--setup-seconds", type=float, default=None, help="time `make setup` took (reported; shrinks the default budget)")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps (and the steps they require)")
    parser.add_argument("--skip", nargs="+", metavar="STEP", help="leave these steps out")
    parser.add_argument("--list", action="store_true", help="print the steps with their time limits and exit")
    parser.add_argument("--allow-cpu", action="store_true", help="without CUDA: run the step list anyway (CUDA steps SKIP) and write the report")
    parser.add_argument("--device", default="cuda", help="device of the steps (cuda; cpu rehearses the steps' code on CPU)")
    parser.add_argument("--scale", choices=("full", "small"), default="full", help="problem sizes (small: a quick rehearsal)")
    parser.add_argument("--limit-factor", type=float, default=1.0, help="multiply every step's time limit (slow machines, rehearsals)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the temporary work directory (logs, synthetic data)")
    # internal: one step in this process
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--step-name", help=argparse.SUPPRESS)
    parser.add_argument("--prereqs", help=argparse.SUPPRESS)
    return parser


def _import_torch() -> Any | None:
    try:
        import torch

        return torch
    except Exception:  # noqa: BLE001
        return None


def main(argv: list[str] | None = None, steps: list[Step] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        return child_main(args)
    steps = STEPS if steps is None else steps
    if args.list:
        for step in steps:
            flags = ", ".join(f for f, on in (("background", step.background), ("CUDA", step.needs_cuda)) if on)
            requires = f"; after {', '.join(step.requires)}" if step.requires else ""
            print(f"{step.name:<13} {step.limit_s:4.0f} s  {step.title} ({flags or 'CPU'}{requires})")
        return 0
    torch = _import_torch()
    cuda = bool(torch is not None and torch.cuda.is_available())
    rehearsal = args.device == "cpu"
    if not cuda and not rehearsal and not args.allow_cpu:
        reason = "torch is not importable" if torch is None else f"torch {torch.__version__} sees no CUDA device"
        listed = _command_output(["nvidia-smi", "-L"])
        if listed and "GPU" in listed:  # a GPU is there but this torch cannot use it: say so, do not pass silently
            print(
                f"gpu-check: nvidia-smi lists a GPU but {reason}; install a CUDA build of torch in this "
                f"interpreter ({sys.executable}), e.g. rm .venv/.pmsplat-installed && make setup.",
                file=sys.stderr,
            )
            return 2
        print(f"gpu-check: no CUDA device on this machine ({reason}); nothing to check.")
        return 0
    selected = select_steps(steps, args.only, args.skip)
    budget = args.budget
    if budget is None:
        budget = DEFAULT_BUDGET_S if args.setup_seconds is None else max(MIN_BUDGET_S, TOTAL_LIMIT_S - 10 - args.setup_seconds)
    meta = environment_info(torch)
    if args.setup_seconds is not None:
        meta["setup (make setup)"] = f"{args.setup_seconds:.0f} s"
    if args.limit_factor != 1.0:
        meta["time limits"] = f"x {args.limit_factor:g} (--limit-factor)"
    if rehearsal or args.scale != "full":
        meta["mode"] = f"REHEARSAL on {args.device}, {args.scale} sizes: not a GPU validation"
    if cuda and torch is not None and "TORCH_CUDA_ARCH_LIST" not in os.environ:
        try:  # the same value in every step, so the gsplat extension built once is reused
            major, minor = torch.cuda.get_device_capability()
            os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
        except Exception:  # noqa: BLE001
            pass
    print(f"gpu-check: {len(selected)} steps, budget {budget:.0f} s; device: {meta.get('device')}; report: {args.out_dir}/gpu.md", flush=True)
    start = time.monotonic()
    results = run_check(
        selected, args.out_dir, device=args.device if (cuda or rehearsal) else "cpu", scale=args.scale,
        cuda=cuda or rehearsal, budget_s=budget, meta=meta, keep_workdir=args.keep_workdir, limit_factor=args.limit_factor,
    )
    total = time.monotonic() - start + (args.setup_seconds or 0.0)
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    print(
        f"gpu-check: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP, {counts['CUT']} CUT in {total:.0f} s"
        f"{' (setup included)' if args.setup_seconds is not None else ''}; report: {args.out_dir / 'gpu.md'}"
    )
    return 1 if counts["FAIL"] or counts["CUT"] else 0


if __name__ == "__main__":
    sys.exit(main())
