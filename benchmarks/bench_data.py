"""Loading throughput of the chunked dataset on the synthetic benchmark.

Generates a synthetic set in a temporary folder (or uses --root), then iterates the training
DataLoader (bounded sampler, 2 context + 4 target views, augmentation on) with 0 and 2 workers
and reports examples/s, the ratio to the 0-worker reference measured in the same run, and the
share of single-process loading time spent decoding JPEG bytes (PIL). Writes
benchmarks/results/data.md.

    .venv/bin/python benchmarks/bench_data.py [--root datasets/synthetic] [--passes 2]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path

import torch
from splatcore.dataset import DataLoaderCfg, DataLoaderStageCfg, DataModule
from splatcore.dataset import dataset as dataset_module

from pmsplat.synthetic import SynthConfig, generate, synthetic_dataset_cfg

RESULTS = Path(__file__).resolve().parent / "results" / "data.md"


def throughput(root: Path, workers: int, passes: int, batch_size: int) -> tuple[float, int]:
    stage = DataLoaderStageCfg(num_workers=workers, persistent_workers=workers > 0, batch_size=batch_size, seed=1234)
    data = DataModule(synthetic_dataset_cfg(root), DataLoaderCfg(train=stage, val=stage, test=stage))
    loader = data.train_dataloader()  # persistent workers: start-up paid once, as in training
    examples = 0
    start = time.perf_counter()
    for _ in range(passes):
        for batch in loader:
            examples += len(batch["scene"])
    return examples / (time.perf_counter() - start), examples


def decode_share(root: Path, passes: int) -> float:
    """Fraction of single-process iteration time spent in decode_image."""
    spent = [0.0]
    original = dataset_module.decode_image

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    dataset_module.decode_image = timed
    try:
        stage = DataLoaderStageCfg(num_workers=0, persistent_workers=False, batch_size=1, seed=1234)
        data = DataModule(synthetic_dataset_cfg(root), DataLoaderCfg(train=stage, val=stage, test=stage))
        start = time.perf_counter()
        for _ in range(passes):
            for _batch in data.train_dataloader():
                pass
        total = time.perf_counter() - start
    finally:
        dataset_module.decode_image = original
    return spent[0] / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, help="an existing synthetic set (default: generate one)")
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as temporary:
        root = args.root
        generation_seconds = None
        if root is None:
            root = Path(temporary) / "synthetic"
            start = time.perf_counter()
            generate(SynthConfig(out=root, train_scenes=16, test_scenes=4, workers=1))
            generation_seconds = time.perf_counter() - start
        rows = []
        reference = None
        for workers in (0, 2):
            rate, examples = throughput(root, workers, args.passes, args.batch_size)
            reference = reference or rate
            rows.append((workers, rate, examples, rate / reference))
        share = decode_share(root, args.passes)
    lines = [
        "# Data loading throughput (synthetic benchmark)",
        "",
        f"- machine: {platform.node()} / {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
        f"{__import__('os').cpu_count()} CPUs (shared with other jobs)",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- torch {torch.__version__}; set: {'generated, 16 train scenes x 48 frames, 64x64' if args.root is None else args.root}"
        + (f" (generated in {generation_seconds:.1f} s)" if generation_seconds else ""),
        f"- loader: train stage, bounded sampler (2 context + 4 target views), flip augmentation, batch {args.batch_size}, {args.passes} passes, persistent workers (start-up included)",
        "",
        "| workers | examples/s | examples | ratio vs 0 workers |",
        "|---:|---:|---:|---:|",
        *[f"| {w} | {rate:.1f} | {n} | {ratio:.2f} |" for w, rate, n, ratio in rows],
        "",
        f"Decode share (0 workers, JPEG bytes -> float via PIL): {100 * share:.0f}% of loading time.",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
