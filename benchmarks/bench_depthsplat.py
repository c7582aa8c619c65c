"""DepthSplat encoder: forward time and peak memory, small and base, 2 context views at 256x256.

Measured on the current device (CPU, or CUDA with --device cuda): the RE10K small (ViT-S, 37 M
parameters) and base (ViT-B, 117 M) presets with deterministic weights, in eval/no_grad mode as in
test_step. The reference in the same run is the MVSplat encoder's forward (released re10k config,
the same inputs and settings); every row gives its time and memory as a ratio to it. Each
configuration runs in a fresh subprocess so that its peak memory is its own (CPU: peak RSS above the
RSS after building the model and inputs; CUDA: torch.cuda.max_memory_allocated above the resident
model). Per-stage rows (ViT, DPT head, the rest of the depth branch, the Gaussian branch) give each
stage's share of the DepthSplat forward.

On a GPU the rows are also compared with the per-scene inference times quoted for DepthSplat
(0.050 s small, 0.070 s base, as the issue quotes them); on a CPU there is no such figure.

Usage: .venv/bin/python benchmarks/bench_depthsplat.py [--device cpu|cuda] [--repeats N] [--threads T]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_mvsplat import current_rss_kib, make_context  # noqa: E402  (shared bench helpers)

RESULTS = HERE / "results" / "depthsplat.md"
PAPER_GPU_SECONDS = {"small": 0.050, "base": 0.070}
MODELS = ("mvsplat", "small", "base")
SIZE = 256
VIEWS = 2


def build(model: str, device: str):
    """The encoder for ``model`` with deterministic weights (seed 0), eval mode."""
    if model == "mvsplat":
        from mvsplat.parity import build_encoder

        return build_encoder({"V": str(VIEWS), "seed": "0"}).to(device).eval()
    from depthsplat.config import PRESETS
    from depthsplat.encoder import EncoderDepthSplat
    from splatcore.testing.parity import apply_deterministic_weights

    encoder = EncoderDepthSplat(PRESETS[f"re10k_{model}"]())
    apply_deterministic_weights(encoder, 0)
    return encoder.to(device).eval()


def measure(model: str, device: str, repeats: int, threads: int) -> dict:
    """Runs in a subprocess: median time of ``repeats`` forwards after a warm-up, peak memory and
    (DepthSplat) per-stage times."""
    import torch

    torch.set_num_threads(threads)
    encoder = build(model, device)
    parameters = sum(p.numel() for p in encoder.parameters())
    context = make_context(VIEWS, SIZE, device)
    # warm-up at a small size on CPU (kernel selection, allocator) to keep the run short; at full
    # size on CUDA (cuDNN autotuning depends on the shape)
    warm_context = context if device == "cuda" else make_context(VIEWS, 64, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    base_rss = current_rss_kib()
    with torch.no_grad():
        encoder(warm_context, 10_000_000)
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    marks: dict[str, float] = {}

    def mark(name):
        def hook(*_):
            sync()
            marks[name] = time.perf_counter()

        return hook

    stages: dict[str, list[float]] = {}
    if model != "mvsplat":
        predictor = encoder.depth_predictor
        predictor.register_forward_pre_hook(mark("depth_start"))
        predictor.register_forward_hook(mark("depth_end"))
        # get_intermediate_layers bypasses the ViT's forward(): from the patch embedding to the last
        # call of the final LayerNorm (applied to each returned block output)
        predictor.pretrained.patch_embed.register_forward_pre_hook(mark("vit_start"))
        predictor.pretrained.norm.register_forward_hook(mark("vit_end"))
        predictor.upsampler.register_forward_pre_hook(mark("dpt_start"))
        predictor.upsampler.register_forward_hook(mark("dpt_end"))
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        with torch.no_grad():
            result = encoder(context, 10_000_000)
        sync()
        end = time.perf_counter()
        times.append(end - start)
        del result
        if model != "mvsplat":
            vit = marks["vit_end"] - marks["vit_start"]
            dpt = marks["dpt_end"] - marks["dpt_start"]
            depth = marks["depth_end"] - marks["depth_start"]
            for name, seconds in (
                ("ViT (DINOv2)", vit),
                ("DPT head", dpt),
                ("rest of the depth branch (CNN, transformer, cost volumes, U-Nets)", depth - vit - dpt),
                ("Gaussian branch (upsampler, regressor U-Net, head, adapter)", end - marks["depth_end"]),
            ):
                stages.setdefault(name, []).append(seconds)
    peak = (
        (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
        if device == "cuda"
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    )
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    return {
        "time": median(times),
        "peak_mib": peak,
        "parameters": parameters,
        "stages": {k: median(v) for k, v in stages.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=None, help="timed forwards (default 1 on CPU, 10 on CUDA)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats or (10 if args.device == "cuda" else 1)
    if args.worker:
        print(json.dumps(measure(args.worker, args.device, repeats, args.threads)))
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("bench_depthsplat: --device cuda needs a CUDA device; none is available", file=sys.stderr)
            return 2
    load_before = os.getloadavg()[0]
    results = {}
    for model in MODELS:
        command = [sys.executable, __file__, "--worker", model, "--device", args.device,
                   "--repeats", str(repeats), "--threads", str(args.threads)]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[model] = json.loads(output.strip().splitlines()[-1])
        print(model, results[model], flush=True)
    import torch

    reference = results["mvsplat"]
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    paper_note = (
        "- GPU reference: 0.050 s (small) / 0.070 s (base) per scene as quoted for DepthSplat; the "
        "last column gives measured / quoted"
        if args.device == "cuda"
        else "- GPU reference 0.050 s (small) / 0.070 s (base) per scene as quoted for DepthSplat: not "
        "measurable here (CPU only); run with --device cuda on a GPU machine"
    )
    lines = [
        "# DepthSplat encoder: forward time and peak memory",
        "",
        f"- machine: {platform.node()} ({device_name}), {args.device}, torch {torch.__version__}, "
        f"{args.threads} CPU threads, load average before the run {load_before:.1f} (other work on the "
        "machine inflates CPU times; compare ratios within one run)",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- setting: {VIEWS} context views, {SIZE}x{SIZE}, batch 1, eval + no_grad, deterministic weights, "
        f"median of {repeats} timed forward(s) after a warm-up"
        + (" (CPU warm-up at 64x64 to keep the run short)" if args.device == "cpu" else ""),
        "- reference (ratio 1.00): the MVSplat encoder (released re10k config) on the same inputs in the same run",
        "- peak memory: " + ("CUDA max_memory_allocated above the resident model" if args.device == "cuda"
                             else "peak RSS (incl. the warm-up) above the RSS after building the model and inputs (fresh process)"),
        paper_note,
        "",
        "| model | parameters | time (s) | ratio vs reference | peak memory (MiB) | ratio vs reference |"
        + (" measured / quoted GPU time |" if args.device == "cuda" else ""),
        "|---|---|---|---|---|---|" + ("---|" if args.device == "cuda" else ""),
    ]
    labels = {"mvsplat": "MVSplat encoder (reference)", "small": "DepthSplat small (re10k, ViT-S)",
              "base": "DepthSplat base (re10k, ViT-B)"}  # fmt: skip
    for model in MODELS:
        r = results[model]
        row = (
            f"| {labels[model]} | {r['parameters'] / 1e6:.1f} M | {r['time']:.3f} | {r['time'] / reference['time']:.2f} | "
            f"{r['peak_mib']:.0f} | {r['peak_mib'] / max(reference['peak_mib'], 1e-9):.2f} |"
        )
        if args.device == "cuda":
            row += f" {r['time'] / PAPER_GPU_SECONDS[model]:.2f} |" if model in PAPER_GPU_SECONDS else " |"
        lines.append(row)
    lines += ["", "Stages of the DepthSplat forward (share of that model's forward time):", "",
              "| model | stage | time (s) | share |", "|---|---|---|---|"]  # fmt: skip
    for model in ("small", "base"):
        r = results[model]
        for stage, seconds in r["stages"].items():
            lines.append(f"| {model} | {stage} | {seconds:.3f} | {seconds / r['time']:.2f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
