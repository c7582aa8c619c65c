"""LPIPS cost in training: the CPU preset's training step with and without the LPIPS term.

Reference in the same run: the training step of ``+experiment=mvsplat_synthetic_cpu`` (64x64,
2 context + 2 target views, batch 1; data from a freshly generated small synthetic benchmark) with
``loss=[mse]``; measured against it: the same step with the preset's ``loss=[mse, lpips]`` (weight
0.05, the converted VGG16 weights of ``make setup``), the LPIPS forward + backward alone on the two
rendered targets, and the no-grad LPIPS of one evaluation scene (as ``pmsplat evaluate`` computes
it, once per rendered batch). The two models have the same initial weights and see the same
batches; their steps are interleaved so that load on the machine affects both alike.

The projection for ``make reproduce-mvsplat`` (base 800 + 4 x 400 fine-tuning steps, all now with
LPIPS) adds ``2400 x (step with - step without)`` to the measured reproduction time; the machine
load is recorded because the absolute times scale with it (ratios less so).

Usage: .venv/bin/python benchmarks/bench_lpips.py [--repeats N] [--threads T] [--baseline-minutes M]
(1 thread by default: its CPU-time ratio is the work ratio even on a busy machine)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "lpips.md"
REPRODUCTION_STEPS = 800 + 4 * 400  # protocol.SYNTHETIC_SCHEDULES["default"]["mvsplat"]


def _models_and_batches(root: Path, count: int):
    import torch

    from splatcore.dataset import DataModule
    from splatcore.main import build_model, compose_config, typed_config

    common = ["+experiment=mvsplat_synthetic_cpu", f"dataset.roots=[{root}]", "output_dir=/tmp/bench_lpips"]
    configs = {
        "mse": compose_config(common + ["loss=[mse]", "~loss.lpips"]),
        "mse+lpips": compose_config(common),
    }
    models = {}
    for name, cfg in configs.items():
        torch.manual_seed(0)
        model = build_model(cfg)
        model.log = lambda *args, **kwargs: None  # no Trainer attached
        models[name] = (model, model.configure_optimizers()["optimizer"])
    run_cfg = typed_config(configs["mse"])
    torch.manual_seed(0)
    loader = DataModule(run_cfg.dataset, run_cfg.data_loader).train_dataloader()
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == count:
            break
    return models, batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline-minutes", type=float, default=10.3,
                        help="measured make reproduce-mvsplat time without LPIPS (README)")
    args = parser.parse_args()

    import torch

    from pmsplat.synthetic import SynthConfig, generate
    from splatcore.evaluation import LPIPS, compute_lpips, lpips_availability

    available, reason = lpips_availability()
    if not available:
        print(f"LPIPS weights not found ({reason}); run `make setup` first.", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "synthetic"
        generate(SynthConfig(out=root, train_scenes=4, test_scenes=1))
        models, batches = _models_and_batches(root, args.repeats + 1)

    def timed(function) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process) of one call."""
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        return time.perf_counter() - wall, time.process_time() - cpu

    def step(name: str, batch) -> tuple[float, float]:
        model, optimizer = models[name]

        def run() -> None:
            optimizer.zero_grad(set_to_none=True)
            model.training_step(batch, 0).backward()
            optimizer.step()

        return timed(run)

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    for name in models:  # warm-up
        step(name, batches[0])
    for index, batch in enumerate(batches[1:]):
        order = list(models) if index % 2 == 0 else list(reversed(list(models)))
        for name in order:
            times[name].append(step(name, batch))

    lpips = LPIPS()
    gt = torch.rand(2, 3, 64, 64)
    pred = torch.rand(2, 3, 64, 64)
    extra = {"alone": [], "evaluation": []}
    for _ in range(args.repeats):
        leaf = pred.clone().requires_grad_(True)
        extra["alone"].append(timed(lambda: lpips(leaf, gt).mean().backward()))
        extra["evaluation"].append(timed(lambda: compute_lpips(gt, pred, lpips=lpips)))
    load_after = os.getloadavg()[0]

    def median(values: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)

    without, with_lpips = median(times["mse"]), median(times["mse+lpips"])
    alone, evaluation = median(extra["alone"]), median(extra["evaluation"])
    ratio_wall, ratio_cpu = with_lpips[0] / without[0], with_lpips[1] / without[1]
    delta_wall = with_lpips[0] - without[0]
    ratio = max(ratio_wall, ratio_cpu)

    def row(label: str, value: tuple[float, float]) -> str:
        return (f"| {label} | {value[0]:.3f} | {value[0] / without[0]:.2f} | {value[1]:.3f} | "
                f"{value[1] / without[1]:.2f} |")

    lines = [
        "# LPIPS in the CPU training step",
        "",
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {args.threads} thread(s), "
        f"torch {torch.__version__}, load average {load_before:.1f} before / {load_after:.1f} after, "
        f"median of {args.repeats} interleaved steps. CPU time (of this process) is less sensitive to "
        "other work on the machine than wall time; with 1 thread it is the work itself.",
        "",
        "| what | wall (s) | wall ratio | CPU (s) | CPU ratio |",
        "| --- | --- | --- | --- | --- |",
        row("training step, loss=[mse] (reference)", without),
        row("training step, loss=[mse, lpips] (the presets now)", with_lpips),
        row("LPIPS forward + backward, 2 x 64x64", alone),
        row("LPIPS no-grad, one evaluation scene (2 x 64x64)", evaluation),
        "",
        f"Projection for `make reproduce-mvsplat` ({REPRODUCTION_STEPS} training steps, all with LPIPS "
        f"now): {args.baseline_minutes} min measured with mse only (quiet machine) x the larger step "
        f"ratio {ratio:.2f} = at most {args.baseline_minutes * ratio:.1f} min (an upper bound: the "
        f"evaluations and the data generation do not grow by that ratio). At this machine's load the "
        f"added wall time would be {REPRODUCTION_STEPS} x {delta_wall:.3f} s = "
        f"{REPRODUCTION_STEPS * delta_wall / 60:.1f} min.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
