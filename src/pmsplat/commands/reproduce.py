"""``pmsplat reproduce``: the paper's comparison (baseline vs baseline + PM-Loss), end to end.

    pmsplat reproduce --baseline mvsplat                      # synthetic benchmark, CPU (default):
                                                              # fine-tunes the shipped synthetic base
    pmsplat reproduce --baseline mvsplat --from-scratch       # a short base from scratch instead
    pmsplat reproduce --baseline depthsplat --data dl3dv --root datasets/DL3DV_480P \\
        --teacher vggt --gpus 8 --base-checkpoint checkpoints/depthsplat-gs-base-dl3dv-256x448-75cc0183.pth

    pmsplat reproduce --baseline mvsplat --ablation           # PM-Loss variants from the same base
    pmsplat reproduce --baseline mvsplat --ablation --variants scale_invariant warmup

Writes ``outputs/reproduce/<baseline>/`` (report.md, results.csv, per_scene.csv, PNG figures; with
``--ablation`` ablation.md, ablation.csv, ablation_runs.csv, ablation.png). Finished runs are
reused (the ablation reuses the comparison's base and its fine-tunes), so an interrupted
reproduction resumes; the folder can be moved or copied and resumed there. ``--dry-run`` prints
the plan (and, for the synthetic benchmark, an estimate of its CPU time).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def _datasets() -> tuple[str, ...]:
    from pmsplat.reproduce.protocol import DATASETS

    return DATASETS


def _schedules() -> list[str]:
    from pmsplat.reproduce.protocol import SYNTHETIC_SCHEDULES

    return list(SYNTHETIC_SCHEDULES)


def _teachers() -> list[str]:
    from pmsplat.reproduce.protocol import teachers

    return teachers()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="baseline vs baseline + PM-Loss, end to end", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    from splatcore.config_dir import available_baselines

    from pmsplat.commands.choices import LazyChoices

    p.add_argument("--baseline", choices=available_baselines(), required=True)
    p.add_argument("--data", default="synthetic", choices=LazyChoices(_datasets), metavar="DATA",
                   help="synthetic (default) or a real dataset: %(choices)s")
    p.add_argument("--root", type=Path, help="dataset root (default datasets/<data>)")
    p.add_argument("--teacher", choices=LazyChoices(_teachers), metavar="NAME",
                   help="pointmap teacher, one of %(choices)s (default: synthetic on synthetic data, vggt otherwise)")
    p.add_argument("--gpus", type=int, help="number of GPUs (DDP when > 1)")
    p.add_argument("--out", type=Path, help="output folder (default outputs/reproduce/<baseline>)")
    p.add_argument("--schedule", default="default", choices=LazyChoices(_schedules), metavar="SCHEDULE",
                   help="synthetic schedule, one of %(choices)s: default (MVSplat on 2 CPU cores: 3 seeds x 2 fine-tunes of 200 steps "
                        "from the shipped base, ~12 min), long (600-step fine-tunes, ~35 min) or smoke (seconds; for tests); "
                        "with --from-scratch: base 480 + fine-tunes 240 steps, 2 seeds (long: 600 + 300); --dry-run prints the estimate")
    p.add_argument("--from-scratch", action="store_true",
                   help="synthetic data: train a short base from scratch first instead of fine-tuning the shipped converged "
                        "base (checkpoints/synthetic/<baseline>_base.safetensors, written by `make pretrain-synthetic`)")
    p.add_argument("--ablation", action="store_true",
                   help="run the PM-Loss ablation (synthetic benchmark): weight, warm-up, confidence, Huber, "
                        "bidirectional, stop-gradient, scale-invariant, 3x longer, teacher quality; >= 2 seeds each")
    p.add_argument("--variants", nargs="+", metavar="NAME",
                   help="with --ablation: run only these variants (and the baselines they are compared with)")
    p.add_argument("--base-checkpoint", type=Path, help="real data: the official checkpoint to fine-tune")
    p.add_argument("--index-dir", type=Path, help="real data: folder with the evaluation index JSONs (default assets/)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and their overrides, run nothing")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides applied to every run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pmsplat.errors import InputError
    from pmsplat.reproduce.protocol import (
        ablation_schedule,
        estimate_seconds,
        make_ablation_plan,
        make_plan,
        synthetic_schedule,
    )

    if args.variants and not args.ablation:
        raise InputError("--variants selects ablation variants; add --ablation.")
    if args.ablation:
        if args.data != "synthetic" or args.teacher not in (None, "synthetic") or args.gpus:
            raise InputError("--ablation runs on the synthetic benchmark with the synthetic teacher (its teacher-"
                             "quality variants need ground truth); drop --data/--teacher/--gpus.")
        plan = make_ablation_plan(
            args.baseline, args.root, ablation_schedule(args.schedule, args.baseline, args.from_scratch), variants=args.variants,
            extra_overrides=list(args.overrides), from_scratch=args.from_scratch,
            main_schedule=synthetic_schedule(args.schedule, args.baseline, args.from_scratch),
        )
    else:
        if args.from_scratch and args.data != "synthetic":
            raise InputError("--from-scratch is for the synthetic benchmark; real data fine-tunes --base-checkpoint.")
        plan = make_plan(
            args.baseline, args.data, args.root, args.teacher,
            schedule=synthetic_schedule(args.schedule, args.baseline, args.from_scratch) if args.data == "synthetic" else None,
            gpus=args.gpus, base_checkpoint=args.base_checkpoint, index_dir=args.index_dir,
            extra_overrides=list(args.overrides), from_scratch=args.from_scratch,
        )
    out = args.out or Path("outputs/reproduce") / args.baseline
    if args.dry_run:
        for spec in plan.runs:
            start = f" (from {spec.start_from})" if spec.start_from else ""
            if spec.kind == "train" and not spec.start_from and plan.base_checkpoint is not None:
                start = f" (from {plan.base_checkpoint})"
            print(f"{spec.kind:8s} {spec.name}{start}: " + " ".join(shlex.quote(o) for o in spec.overrides))
        seconds = estimate_seconds(plan)
        if seconds is not None:
            print(f"estimated time on 2 quiet CPU cores, nothing reused: {seconds / 60:.0f} min "
                  "(finished runs in the output folder are reused and cost nothing)")
        return 0
    problems = _missing_inputs(plan)
    if problems:
        raise InputError("cannot start:\n  " + "\n  ".join(problems))
    from pmsplat.reproduce.pipeline import execute

    report = execute(plan, out)
    print(f"Report: {report}")
    return 0


def _missing_inputs(plan) -> list[str]:
    """Real-data inputs that must exist before hours of training start."""
    if plan.data == "synthetic":
        return []
    problems = []
    if not (plan.root / "train").is_dir():
        problems.append(f"dataset root {plan.root} has no train/ folder (pass --root).")
    for split, path in plan.splits.items():
        if not path.is_file():
            problems.append(f"{split} index {path} is missing: `pmsplat data fetch-index --out {path.parent}` on a machine with internet.")
    if plan.base_checkpoint is not None and not plan.base_checkpoint.is_file():
        problems.append(f"base checkpoint {plan.base_checkpoint} is missing (pass --base-checkpoint; see README).")
    return problems
