"""``pmsplat data``: generate the synthetic benchmark, fetch published evaluation indices.

    pmsplat data synth [--out datasets/synthetic] [--scenes 32] [--test-scenes 8] [--frames 48]
                       [--size 64 | --size 64 96] [--seed 0] [--supersample 2] [--pointmaps]
    pmsplat data fetch-index [--out assets] [--only NAME ...] [--timeout 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

# Published evaluation index files and the upstream repositories that ship them.
PUBLISHED_INDICES: dict[str, str] = {
    "evaluation_index_re10k.json": "https://raw.githubusercontent.com/donydchen/mvsplat/main/assets/evaluation_index_re10k.json",
    "evaluation_index_acid.json": "https://raw.githubusercontent.com/donydchen/mvsplat/main/assets/evaluation_index_acid.json",
    "re10k_bound_aware.json": "https://raw.githubusercontent.com/aim-uofa/PM-Loss/main/assets/re10k_bound_aware.json",
    "dl3dv_bound_aware.json": "https://raw.githubusercontent.com/aim-uofa/PM-Loss/main/assets/dl3dv_bound_aware.json",
    "dl3dv_depthsplat_offical.json": "https://raw.githubusercontent.com/aim-uofa/PM-Loss/main/assets/dl3dv_depthsplat_offical.json",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="generate the synthetic benchmark, fetch evaluation indices")
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION")

    synth = commands.add_parser("synth", help="render the synthetic benchmark in the upstream chunk format")
    synth.add_argument("--out", type=Path, default=Path("datasets/synthetic"), help="output directory")
    synth.add_argument("--scenes", type=int, default=32, help="number of training scenes (default 32)")
    synth.add_argument("--test-scenes", type=int, default=8, help="number of test scenes (default 8)")
    synth.add_argument("--frames", type=int, default=48, help="frames per scene (default 48)")
    synth.add_argument("--size", type=int, nargs="+", default=[64], metavar="PX", help="image size: S (square) or H W (default 64)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--supersample", type=int, default=2, help="colour samples per pixel side (default 2)")
    synth.add_argument("--scenes-per-chunk", type=int, default=8)
    synth.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="rendering processes (default: min(2, CPUs))")
    synth.add_argument("--pointmaps", action="store_true", help="also store world pointmaps (x4 size; the loader can derive them from depth)")
    synth.set_defaults(func=run_synth)

    fetch = commands.add_parser("fetch-index", help="download the published evaluation index JSONs (needs internet)")
    fetch.add_argument("--out", type=Path, default=Path("assets"), help="directory to write them to (default assets/)")
    fetch.add_argument("--only", nargs="+", choices=sorted(PUBLISHED_INDICES), help="fetch only these files")
    fetch.add_argument("--timeout", type=float, default=30.0, help="seconds per download")
    fetch.set_defaults(func=run_fetch_index)

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_synth(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pmsplat.errors import InputError
    from pmsplat.synthetic import SynthConfig, generate

    if len(args.size) not in (1, 2):
        raise InputError("--size takes one (square) or two (H W) integers.")
    height, width = (args.size * 2)[:2]
    cfg = SynthConfig(
        out=args.out,
        train_scenes=args.scenes,
        test_scenes=args.test_scenes,
        frames=args.frames,
        height=height,
        width=width,
        seed=args.seed,
        supersample=args.supersample,
        scenes_per_chunk=args.scenes_per_chunk,
        store_pointmaps=args.pointmaps,
        workers=args.workers,
    )
    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False) as progress:
        tasks = {
            "train": progress.add_task("train scenes", total=cfg.train_scenes),
            "test": progress.add_task("test scenes", total=cfg.test_scenes),
        }
        summary = generate(cfg, lambda split, done, total: progress.update(tasks[split], completed=done))
    seconds = time.perf_counter() - start
    print(
        f"Wrote {len(summary['splits']['train'])} train + {len(summary['splits']['test'])} test scenes "
        f"({cfg.frames} frames, {cfg.height}x{cfg.width}) to {cfg.out} in {seconds:.1f} s, "
        f"{summary['bytes'] / 1e6:.1f} MB. Near/far: see {cfg.out / 'synthetic.json'}."
    )
    return 0


def run_fetch_index(args: argparse.Namespace) -> int:
    from splatcore.dataset import read_evaluation_index
    from splatcore.errors import DataError

    names = args.only or sorted(PUBLISHED_INDICES)
    args.out.mkdir(parents=True, exist_ok=True)
    failures = []
    for name in names:
        url = PUBLISHED_INDICES[name]
        try:
            with urllib.request.urlopen(url, timeout=args.timeout) as response:
                payload = response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            failures.append(f"  {name}: cannot download {url} ({reason})")
            continue
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            handle.write(payload)
        try:
            entries = read_evaluation_index(Path(handle.name))
        except DataError as error:
            failures.append(f"  {name}: downloaded from {url} but it is not a valid index ({error})")
            continue
        finally:
            Path(handle.name).unlink(missing_ok=True)
        (args.out / name).write_bytes(payload)
        print(f"{name}: {len(entries)} scenes -> {args.out / name}")
    if failures:
        print(
            "pmsplat data fetch-index: some index files could not be fetched:\n" + "\n".join(failures) + "\n"
            "This command needs internet access to raw.githubusercontent.com. On an offline machine, run it "
            f"on one that is online and copy the files into {args.out}/, then pass "
            "dataset.view_sampler.index_path=<file>.",
            file=sys.stderr,
        )
        return 1
    return 0
