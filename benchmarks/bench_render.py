"""Benchmark of the splatting decoder: forward and forward+backward time and peak memory.

Scene: two context views of H x W pixels, one Gaussian per context pixel (G = 2 H W) unprojected
from a smooth depth map, disc-like covariances ``footprint`` pixels wide (1: what a trained
MVSplat-like model predicts, radius of the 1/255 footprint about 3 px; 3: the larger footprints
of an untrained model), SH degree 4 (d_sh = 25, as the MVSplat/DepthSplat heads), target views
between the context cameras at H x W (2 by default; 4 = one training step of the synthetic
benchmark). Each configuration runs in a fresh subprocess so that its peak RSS (``ru_maxrss``)
is its own; the memory column is peak RSS minus the RSS after building the scene.

Comparison measured in the same run, on live code: the same torch rasteriser with tiles of
16 x 16 pixels (``decoder.tile_size=16``, the previous default) against the default 4 x 4 tiles.
(Results before #15 compared against a frozen copy of the pre-rewrite rasteriser, since deleted;
git history has it.) Times are the best of the repeats, as wall clock and as process CPU
time (the CPU column is robust to other jobs sharing the machine, and equals wall time on an idle
machine with one thread). gsplat rows are measured when CUDA is available.

    .venv/bin/python benchmarks/bench_render.py [--sizes 64 128 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "render.md"


def build_scene(size: int, device: str, footprint: float = 1.0):
    import torch

    from splatcore.types import Gaussians

    g = torch.Generator().manual_seed(0)
    views, fx = 2, 1.0
    rows, cols = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    u, v = cols / size, rows / size
    means, covariances = [], []
    context_x = (-0.3, 0.3)
    for x0 in context_x:
        depth = 3.0 + 0.5 * torch.sin(4 * u) * torch.cos(3 * v) + 0.8 * (u > 0.6).float() * (v < 0.5).float()
        ray = torch.stack(((u - 0.5) / fx, (v - 0.5) / fx, torch.ones_like(u)), dim=-1)
        ray = ray / ray.norm(dim=-1, keepdim=True)
        points = ray * depth[..., None] + torch.tensor([x0, 0.0, 0.0])
        means.append(points.reshape(-1, 3))
        pixel = (depth / (fx * size)).reshape(-1) * footprint  # `footprint` pixels at that depth
        q, _ = torch.linalg.qr(torch.randn(size * size, 3, 3, generator=g))
        scales = torch.stack((pixel, pixel, 0.2 * pixel), dim=-1)
        scales = scales * (0.6 + 0.8 * torch.rand(size * size, 3, generator=g))
        cov = q @ torch.diag_embed(scales**2) @ q.transpose(-1, -2)
        covariances.append(0.5 * (cov + cov.transpose(-1, -2)))
    count = views * size * size
    gaussians = Gaussians(
        torch.cat(means)[None].to(device),
        torch.cat(covariances)[None].to(device),
        (torch.randn(1, count, 3, 25, generator=g) * 0.2).to(device),
        (0.5 + 0.5 * torch.rand(1, count, generator=g)).to(device),
    )
    extrinsics = torch.eye(4).repeat(1, 2, 1, 1)
    extrinsics[0, 0, 0, 3], extrinsics[0, 1, 0, 3] = -0.1, 0.15
    intrinsics = torch.tensor([[fx, 0, 0.5], [0, fx, 0.5], [0, 0, 1]]).repeat(1, 2, 1, 1)
    cameras = [t.to(device) for t in (extrinsics, intrinsics, torch.ones(1, 2), torch.full((1, 2), 100.0))]
    return gaussians, cameras


def target_cameras(views: int, device: str):
    """``views`` target cameras on the baseline between the two context cameras (x = -0.3, 0.3)."""
    import torch

    positions = {2: (-0.1, 0.15), 4: (-0.2, -0.05, 0.1, 0.2)}[views]
    extrinsics = torch.eye(4).repeat(1, views, 1, 1)
    for v, x in enumerate(positions):
        extrinsics[0, v, 0, 3] = x
    intrinsics = torch.tensor([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]]).repeat(1, views, 1, 1)
    near, far = torch.ones(1, views), torch.full((1, views), 100.0)
    return [t.to(device) for t in (extrinsics, intrinsics, near, far)]


def measure(args: argparse.Namespace) -> dict:
    """One configuration (runs in its own process)."""
    import torch

    from splatcore.decoder import Decoder, DecoderSplattingCfg
    from splatcore.types import Gaussians

    torch.set_num_threads(args.threads)
    device = "cuda" if args.backend == "gsplat" else "cpu"
    gaussians, _ = build_scene(args.size, device, args.footprint)
    cameras = target_cameras(args.views, device)
    if args.impl == "tile16":
        cfg = DecoderSplattingCfg(backend=args.backend, tile_size=16)
    else:
        cfg = DecoderSplattingCfg(backend=args.backend)
    decoder = Decoder(cfg).to(device)
    shape = (args.size, args.size)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def forward(grad: bool):
        leaves = [t.detach().clone().requires_grad_(grad) for t in (gaussians.means, gaussians.covariances, gaussians.harmonics, gaussians.opacities)]
        with torch.set_grad_enabled(grad):
            out = decoder(Gaussians(*leaves), *cameras, shape, "depth")
        return out

    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Warm-up (lazy initialisation, allocator, CUDA context and kernels), not timed.
    (lambda out: (out.color.sum() + out.depth.sum() * 0.01).backward())(forward(True))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    wall_fwd, wall_both, cpu_fwd, cpu_both = [], [], [], []
    for _ in range(args.repeats):
        sync()
        start, start_cpu = time.perf_counter(), time.process_time()
        out = forward(False)
        sync()
        wall_fwd.append(time.perf_counter() - start)
        cpu_fwd.append(time.process_time() - start_cpu)
        start, start_cpu = time.perf_counter(), time.process_time()
        out = forward(True)
        (out.color.sum() + out.depth.sum() * 0.01).backward()
        sync()
        wall_both.append(time.perf_counter() - start)
        cpu_both.append(time.process_time() - start_cpu)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = dict(
        backend=args.backend,
        impl=args.impl,
        size=args.size,
        views=args.views,
        footprint=args.footprint,
        gaussians=int(gaussians.means.shape[1]),
        forward_s=min(wall_fwd),
        forward_backward_s=min(wall_both),
        forward_cpu_s=min(cpu_fwd),
        forward_backward_cpu_s=min(cpu_both),
        peak_mib=(peak_kb - baseline_kb) / 1024,
        colour_sum=float(out.color.sum()),
    )
    if device == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def run_child(args: argparse.Namespace, size: int, backend: str, impl: str, footprint: float, views: int) -> dict:
    command = [sys.executable, __file__, "--child", "--size", str(size), "--backend", backend,
               "--impl", impl, "--footprint", str(footprint), "--views", str(views),
               "--threads", str(args.threads), "--repeats", str(args.repeats if impl == "new" or size <= 128 else 1)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--reference-sizes", type=int, nargs="+", default=[64, 128, 256], help="sizes also run with 16x16 tiles")
    parser.add_argument("--footprints", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--large-footprint-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS, help="result table (default benchmarks/results/render.md)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="new", choices=["new", "tile16"], help=argparse.SUPPRESS)
    parser.add_argument("--footprint", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--views", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return

    import torch

    configs = []  # (size, footprint, views)
    for footprint in args.footprints:
        for size in args.sizes:
            if footprint == args.footprints[0] or size in args.large_footprint_sizes:
                configs.append((size, footprint, 2))
    configs.insert(1, (min(args.sizes), args.footprints[0], 4))
    rows = []
    for size, footprint, views in configs:
        rows.append(run_child(args, size, "torch", "new", footprint, views))
        if size in args.reference_sizes:
            rows.append(run_child(args, size, "torch", "tile16", footprint, views))
    cuda = torch.cuda.is_available()
    if cuda:
        for size, footprint, views in configs:
            rows.append(run_child(args, size, "gsplat", "new", footprint, views))

    def key(r):
        return (r["size"], r["footprint"], r["views"])

    new = {key(r): r for r in rows if r["backend"] == "torch" and r["impl"] == "new"}
    lines = [
        "# Splatting decoder benchmark",
        "",
        f"- machine: {platform.node()} · {platform.processor() or platform.machine()} · "
        f"{os.cpu_count()} CPUs visible, torch threads {args.threads} · torch {torch.__version__}"
        + (f" · GPU {torch.cuda.get_device_name()}" if cuda else " · no CUDA device (gsplat rows not measured)"),
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} · load average at the end "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min; other jobs inflate wall times)",
        "- scene: 2 context views, one Gaussian per context pixel (G = 2·H·W), d_sh = 25, footprint = "
        "Gaussian std in context pixels (1 ≈ trained model, 1/255 radius ≈ 3 px; 3 = larger, "
        "untrained-like), rendering V target views at H×W with depth (`depth_mode='depth'`); "
        "loss = sum(colour) + 0.01 sum(depth)",
        "- torch (new): tile 4 (the default), analytic backward over the composited pairs; torch (tile16): the "
        "same rasteriser with `decoder.tile_size=16`",
        "- time: best of the repeats after one untimed warm-up (new: 3, tile16: 3 up to 128×128, 1 at 256×256), wall clock and process CPU time; memory: "
        "peak RSS of a fresh process minus its RSS after building the scene (CPU), "
        "`torch.cuda.max_memory_allocated` (CUDA); speed-up = tile16 / new, same scene, same run",
        "",
        "| backend | H×W | footprint | target views | Gaussians | forward s (CPU s) | fwd+bwd s (CPU s) | peak MiB | fwd+bwd speed-up of new vs this row (wall / CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = new.get(key(r))
        if base is not None and r is not base:
            ratio = (f"{r['forward_backward_s'] / base['forward_backward_s']:.1f}× / "
                     f"{r['forward_backward_cpu_s'] / base['forward_backward_cpu_s']:.1f}×")
        else:
            ratio = "1.0×" if base is r else "—"
        name = r["backend"] if r["backend"] == "gsplat" else f"torch ({r['impl']})"
        lines.append(
            f"| {name} | {r['size']}×{r['size']} | {r['footprint']:g} | {r['views']} | {r['gaussians']} | "
            f"{r['forward_s']:.3f} ({r['forward_cpu_s']:.3f}) | {r['forward_backward_s']:.3f} "
            f"({r['forward_backward_cpu_s']:.3f}) | {r['peak_mib']:.0f} | {ratio} |"
        )
    agree = [
        abs(r["colour_sum"] - new[key(r)]["colour_sum"]) / max(abs(new[key(r)]["colour_sum"]), 1e-12)
        for r in rows if key(r) in new
    ]
    lines += ["", f"Largest relative difference of the rendered colour sum between any row and the new "
              f"torch row of the same scene: {max(agree):.1e}."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
