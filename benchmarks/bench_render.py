"""Benchmark of the splatting decoder: forward and forward+backward time and peak memory.

Scene: two context views of H x W pixels, one Gaussian per context pixel (G = 2 H W) unprojected
from a smooth depth map, disc-like covariances about one pixel wide, SH degree 4 (d_sh = 25, as
the MVSplat/DepthSplat heads), two target views between the context cameras at H x W. Each
configuration runs in a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own; the
memory column is peak RSS minus the RSS after building the scene.

Reference measured in the same run: the same torch rasteriser with one tile covering the whole
image (no tile culling: every pixel meets every visible Gaussian, still chunked), at the sizes
where it is affordable. gsplat rows are measured when CUDA is available.

    .venv/bin/python benchmarks/bench_render.py [--sizes 64 128 256] [--threads 2]
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

RESULTS = Path(__file__).resolve().parent / "results" / "render.md"


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


def measure(args: argparse.Namespace) -> dict:
    """One configuration (runs in its own process)."""
    import torch

    from splatcore.decoder import Decoder, DecoderSplattingCfg
    from splatcore.types import Gaussians

    torch.set_num_threads(args.threads)
    device = "cuda" if args.backend == "gsplat" else "cpu"
    gaussians, cameras = build_scene(args.size, device)
    tile = args.size if args.untiled else 16
    decoder = Decoder(DecoderSplattingCfg(backend=args.backend, tile_size=tile)).to(device)
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
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times_fwd, times_both = [], []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        out = forward(False)
        sync()
        times_fwd.append(time.perf_counter() - start)
        start = time.perf_counter()
        out = forward(True)
        (out.color.sum() + out.depth.sum() * 0.01).backward()
        sync()
        times_both.append(time.perf_counter() - start)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = dict(
        backend=args.backend + (" (untiled reference)" if args.untiled else ""),
        size=args.size,
        gaussians=int(gaussians.means.shape[1]),
        forward_s=min(times_fwd),
        forward_backward_s=min(times_both),
        peak_mib=(peak_kb - baseline_kb) / 1024,
        mean_alpha=float(out.alpha.mean()),
    )
    if device == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def run_child(size: int, backend: str, untiled: bool, threads: int, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", "--size", str(size), "--backend", backend,
               "--threads", str(threads), "--repeats", str(repeats)]
    if untiled:
        command.append("--untiled")
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--reference-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    parser.add_argument("--untiled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return

    import torch

    rows = []
    for size in args.sizes:
        rows.append(run_child(size, "torch", False, args.threads, args.repeats))
        print(rows[-1], flush=True)
        if size in args.reference_sizes:
            rows.append(run_child(size, "torch", True, args.threads, 1))
            print(rows[-1], flush=True)
    cuda = torch.cuda.is_available()
    if cuda:
        for size in args.sizes:
            rows.append(run_child(size, "gsplat", False, args.threads, args.repeats))
            print(rows[-1], flush=True)

    tiled = {r["size"]: r for r in rows if r["backend"] == "torch"}
    lines = [
        "# Splatting decoder benchmark",
        "",
        f"- machine: {platform.node()} · {platform.processor() or platform.machine()} · "
        f"{os.cpu_count()} CPUs visible, torch threads {args.threads} · torch {torch.__version__}"
        + (f" · GPU {torch.cuda.get_device_name()}" if cuda else " · no CUDA device (gsplat rows not measured)"),
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "- scene: 2 context views, one Gaussian per context pixel (G = 2·H·W), d_sh = 25, rendering "
        "2 target views at H×W with depth (`depth_mode='depth'`); loss = sum(colour) + 0.01 sum(depth)",
        "- time: best of the repeats; memory: peak RSS of a fresh process minus its RSS after building "
        "the scene (CPU), `torch.cuda.max_memory_allocated` (CUDA)",
        "- reference (same run): the same rasteriser with a single tile covering the image (no tile culling)",
        "",
        "| backend | H×W | Gaussians | forward s | fwd+bwd s | fwd+bwd / fwd | peak MiB | fwd+bwd vs tiled torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["forward_backward_s"] / tiled[r["size"]]["forward_backward_s"] if r["size"] in tiled else math.nan
        lines.append(
            f"| {r['backend']} | {r['size']}×{r['size']} | {r['gaussians']} | {r['forward_s']:.3f} | "
            f"{r['forward_backward_s']:.3f} | {r['forward_backward_s'] / r['forward_s']:.2f} | "
            f"{r['peak_mib']:.0f} | {ratio:.2f}× |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
