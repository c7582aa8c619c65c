"""Costs behind the time estimates of ``pmsplat reproduce`` (``--dry-run``) and the sizing of the
ablation (``pmsplat.reproduce.protocol.CPU_COSTS``): on the synthetic benchmark with the CPU presets,

- seconds per training step of the base from scratch (``+experiment=<baseline>_synthetic_cpu``,
  mse + lpips; 4 x ``--steps`` steps) and of fine-tunes from it without and with PM-Loss
  (``pmloss_<baseline>_synthetic_cpu``; ``--steps`` steps), the median over the steps of each run;
- the fixed cost of a run (start-up: config, model, LPIPS weights, Lightning, checkpoint);
- seconds per evaluated scene on each split.

Writes ``benchmarks/results/reproduce_budget_<baseline>.md``. Step times on a shared machine are inflated by
other jobs: the load average is recorded; run it on a quiet machine to size schedules.

    python benchmarks/bench_reproduce_budget.py [--baseline mvsplat] [--steps 30] [--root datasets/synthetic]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def measure(baseline: str, steps: int, root: Path, scratch: Path) -> dict[str, float]:
    import splatcore.main as trainer
    from splatcore.main import compose_config, run

    from pmsplat.reproduce.evaluate import evaluate_checkpoint
    from pmsplat.reproduce.pipeline import ensure_synthetic_data
    from pmsplat.reproduce.protocol import evaluation_overrides

    begin = time.perf_counter()
    ensure_synthetic_data(root)
    stamps: list[float] = []
    original = trainer.HistoryWriter.on_train_batch_end

    def stamped(self, *args, **kwargs):
        stamps.append(time.perf_counter())
        return original(self, *args, **kwargs)

    trainer.HistoryWriter.on_train_batch_end = stamped
    results: dict[str, float] = {}

    def timed_run(key: str, overrides: list[str], count: int):
        stamps.clear()
        start = time.perf_counter()
        out = run(compose_config([*overrides, f"dataset.roots=[{root}]", f"trainer.max_steps={count}",
                                  f"output_dir={scratch / key}", "trainer.enable_progress_bar=false", "seed=0"]))
        total = time.perf_counter() - start
        durations = [b - a for a, b in zip(stamps, stamps[1:])]
        results[key] = statistics.median(durations)
        results[f"wall of the {count}-step run ({key})"] = total
        results[f"startup ({key} run)"] = total - sum(durations) - results[key]  # first step counted as a step
        return out.checkpoint_path

    # the base from scratch (step times fall as the model trains), then fine-tunes from it
    checkpoint = timed_run("base_step", [f"+experiment={baseline}_synthetic_cpu"], 4 * steps)
    for key, preset in (("step", f"{baseline}_synthetic_cpu"), ("pm_step", f"pmloss_{baseline}_synthetic_cpu")):
        timed_run(key, [f"+experiment={preset}", f"checkpointing.pretrained_model={checkpoint}"], steps)
    results["startup"] = max(results[f"startup ({k} run)"] for k in ("base_step", "step", "pm_step"))
    for split in ("interpolation", "extrapolation"):
        index = root / f"evaluation_index_{split}.json"
        start = time.perf_counter()
        evaluation = evaluate_checkpoint([f"+experiment={baseline}_synthetic_cpu", f"dataset.roots=[{root}]",
                                          *evaluation_overrides(index, True), f"output_dir={scratch / 'eval'}"], checkpoint)
        results[f"eval_scene {split}"] = (time.perf_counter() - start) / max(1, len(evaluation.rows))
    trainer.HistoryWriter.on_train_batch_end = original
    results["wall of the whole measurement"] = time.perf_counter() - begin
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="mvsplat", choices=["mvsplat", "depthsplat"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--root", type=Path, default=Path("datasets/synthetic"))
    parser.add_argument("--out", type=Path, help="default benchmarks/results/reproduce_budget_<baseline>.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        results = measure(args.baseline, args.steps, args.root, Path(scratch))
    load_after = os.getloadavg()[0]
    lines = [
        "# Time budget of `pmsplat reproduce` on the synthetic benchmark",
        "",
        f"- machine: {os.uname().nodename} ({os.uname().machine}), {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; load average {load_before:.1f} before, {load_after:.1f} after "
        "(other jobs inflate every number)",
        f"- date: {datetime.now().isoformat(timespec='seconds')}; baseline {args.baseline}; {args.steps}-step runs; "
        "median step time",
        "",
        "| cost | seconds |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value:.3f} |" for key, value in results.items()]
    lines += ["", "Used as `pmsplat.reproduce.protocol.CPU_COSTS` (update it from a quiet-machine run)."]
    out = args.out or HERE / "results" / f"reproduce_budget_{args.baseline}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
