"""MVSplat encoder: forward time and peak memory, 2 context views at 256x256 (the re10k setting).

Measured on the current device (CPU, or CUDA with --device cuda): the released-config encoder
(12.0 M parameters, deterministic weights) in eval/no_grad mode as in test_step, and the same
forward with autograd (train mode, as in a training step, without the backward pass). Every
configuration runs in a fresh subprocess so that peak memory (CPU: peak RSS above the RSS after
building the model and inputs; CUDA: torch.cuda.max_memory_allocated) is its own. The reference in
the same run is the no-grad forward: the other rows give time and memory ratios against it, and the
per-stage rows give each stage's share of the forward time.

``--train-step`` adds a full ``ModelWrapper`` training step (forward + decoder + mse + backward +
Adam) with 4 target views; the paper's 0.044 s per scene is a GPU figure (run with --device cuda).

Usage: .venv/bin/python benchmarks/bench_mvsplat.py [--device cpu|cuda] [--repeats N] [--threads T] [--train-step]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "mvsplat.md"


def make_context(views: int, size: int, device):
    import torch

    generator = torch.Generator().manual_seed(0)
    extrinsics = torch.eye(4).repeat(1, views, 1, 1)
    extrinsics[0, :, 0, 3] = torch.linspace(-0.2, 0.2, views)
    intrinsics = torch.tensor([[0.86, 0.0, 0.5], [0.0, 0.86, 0.5], [0.0, 0.0, 1.0]]).repeat(1, views, 1, 1)
    context = {
        "image": torch.rand(1, views, 3, size, size, generator=generator),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
        "near": torch.ones(1, views),
        "far": torch.full((1, views), 100.0),
    }
    return {k: v.to(device) for k, v in context.items()}


def current_rss_kib() -> float:
    """Current resident set size (Linux /proc), in KiB like ru_maxrss."""
    import os

    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


def training_step_fn(device: str, targets: int = 4):
    """A full training step of the shared ModelWrapper (released re10k encoder, mse loss, decoder
    backend gsplat on CUDA / torch on CPU): data shim, encoder, decoder, loss, backward, Adam step."""
    import torch

    from splatcore.main import build_model, compose_config

    backend = "gsplat" if device == "cuda" else "torch"
    cfg = compose_config(["loss=[mse]", "trainer.max_steps=1000", f"model.decoder.backend={backend}", "output_dir=/tmp/bench_mvsplat"])
    model = build_model(cfg).to(device)
    optimizer = model.configure_optimizers()["optimizer"]
    context = make_context(2, 256, device)
    target = make_context(targets, 256, device)
    target["index"] = torch.zeros(1, targets, dtype=torch.int64, device=device)
    context["index"] = torch.zeros(1, 2, dtype=torch.int64, device=device)
    batch = {"context": context, "target": target, "scene": ["bench"]}
    model.log = lambda *args, **kwargs: None  # no Trainer attached

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def measure(mode: str, device: str, repeats: int, threads: int) -> dict:
    """Runs in a subprocess: time (median of ``repeats`` after one warm-up) and peak memory."""
    import torch

    if mode == "train_step":
        torch.set_num_threads(threads)
        step = training_step_fn(device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        base_rss = current_rss_kib()
        step()
        sync()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base_cuda = torch.cuda.memory_allocated()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - start)
        peak = (
            (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
            if device == "cuda"
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
        )
        return {"time": sorted(times)[len(times) // 2], "peak_mib": peak, "stages": {}}

    from mvsplat.parity import build_encoder

    torch.set_num_threads(threads)
    encoder = build_encoder({"V": "2", "seed": "0"}).to(device)
    context = make_context(2, 256, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward():
        if mode == "no_grad":
            encoder.eval()
            with torch.no_grad():
                return encoder(context, 10_000_000)
        encoder.train()
        out = encoder(context, 0)
        return out

    base_rss = current_rss_kib()
    forward()
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    times = []
    stage_times = {"backbone (CNN + transformer)": [], "depth predictor": [], "Gaussian adapter": []}
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        result = forward()
        sync()
        times.append(time.perf_counter() - start)
        del result
    if mode == "no_grad":  # stage breakdown with forward hooks
        marks = {}

        def mark(name):
            def hook(*_):
                sync()
                marks[name] = time.perf_counter()

            return hook

        encoder.backbone.register_forward_pre_hook(mark("start"))
        encoder.backbone.register_forward_hook(mark("backbone"))
        encoder.depth_predictor.register_forward_hook(mark("depth"))
        for _ in range(repeats):
            with torch.no_grad():
                encoder(context, 10_000_000)
            sync()
            end = time.perf_counter()
            stage_times["backbone (CNN + transformer)"].append(marks["backbone"] - marks["start"])
            stage_times["depth predictor"].append(marks["depth"] - marks["backbone"])
            stage_times["Gaussian adapter"].append(end - marks["depth"])
    peak = (
        (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
        if device == "cuda"
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    )
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    return {
        "time": median(times),
        "peak_mib": peak,
        "stages": {k: median(v) for k, v in stage_times.items() if v},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--train-step", action="store_true", help="also time a full training step (slow on CPU)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.device, args.repeats, args.threads)))
        return 0
    import os

    load_before = os.getloadavg()[0]
    results = {}
    modes = ("no_grad", "autograd") + (("train_step",) if args.train_step else ())
    for mode in modes:
        command = [sys.executable, __file__, "--worker", mode, "--device", args.device,
                   "--repeats", str(args.repeats), "--threads", str(args.threads)]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
    import torch

    reference = results["no_grad"]
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    lines = [
        "# MVSplat encoder: forward time and peak memory",
        "",
        f"- machine: {platform.node()} ({device_name}), {args.device}, torch {torch.__version__}, "
        f"{args.threads} CPU threads, load average before the run {load_before:.1f} (other work on the "
        "machine inflates CPU times; compare ratios within one run)",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        "- setting: released re10k config (12.0 M parameters), 2 context views, 256x256, batch 1, "
        f"median of {args.repeats} runs after a warm-up; reference = the no-grad forward of the same run",
        "- peak memory: " + ("CUDA max_memory_allocated above the resident model" if args.device == "cuda"
                             else "peak RSS (incl. the warm-up forward) above the RSS after building the model and inputs (fresh process)"),
        "- full training step (ModelWrapper.training_step: shim, encoder, decoder with 4 targets, mse, backward, Adam): "
        + ("measured below" if args.train_step else "run with --train-step (slow on CPU: the torch rasteriser renders 4 x 256x256 from 131k Gaussians)"),
        "- paper: 0.044 s per scene on a GPU (forward); not measurable on this CPU-only machine",
        "",
        "| measurement | time (s) | ratio vs reference | peak memory (MiB) | ratio vs reference |",
        "|---|---|---|---|---|",
    ]
    for mode, label in (("no_grad", "encoder forward, eval + no_grad (reference)"),
                        ("autograd", "encoder forward with autograd (train mode)"),
                        ("train_step", "full training step (4 targets, backward, optimiser)")):  # fmt: skip
        if mode not in results:
            continue
        r = results[mode]
        lines.append(
            f"| {label} | {r['time']:.3f} | {r['time'] / reference['time']:.2f} | "
            f"{r['peak_mib']:.0f} | {r['peak_mib'] / max(reference['peak_mib'], 1e-9):.2f} |"
        )
    for stage, seconds in reference["stages"].items():
        lines.append(f"| stage: {stage} (no_grad) | {seconds:.3f} | {seconds / reference['time']:.2f} | | |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
