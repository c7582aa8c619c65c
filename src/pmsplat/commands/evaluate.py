"""``pmsplat evaluate``: score any checkpoint + config with the reproduction's evaluation.

    pmsplat evaluate --checkpoint checkpoints/re10k.ckpt --index assets/re10k_bound_aware.json \\
        +experiment=re10k dataset.roots=[datasets/re10k]
    pmsplat evaluate --checkpoint outputs/run/checkpoints/last.ckpt \\
        --index datasets/synthetic/evaluation_index_extrapolation.json --ground-truth \\
        +experiment=mvsplat_synthetic_cpu

The shared evaluation loop (the test step's and the reproduction's): PSNR / SSIM / LPIPS as
upstream (per view, per scene, over scenes) plus, with ``--ground-truth`` (synthetic data),
boundary PSNR, depth and point-to-surface errors and the floating fraction. Writes
``<out>/scores.{md,csv}`` (per scene) and ``<out>/summary.{md,csv}`` (means over scenes).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint + config on an evaluation index", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, help="Lightning .ckpt or .pth (default: the config's checkpointing.*)")
    p.add_argument("--index", type=Path, required=True, help="evaluation index JSON (scene -> context/target)")
    p.add_argument("--ground-truth", action="store_true", help="load GT depth/pointmaps (synthetic) for the geometry metrics")
    p.add_argument("--max-scenes", type=int, help="evaluate only the first N scenes")
    p.add_argument("--out", type=Path, default=Path("outputs/evaluate"), help="output folder (default outputs/evaluate)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides selecting the model and dataset (as for pmsplat train)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pmsplat.errors import InputError
    from pmsplat.evaluation import write_table
    from pmsplat.reproduce.evaluate import evaluate_checkpoint
    from pmsplat.reproduce.protocol import evaluation_overrides

    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise InputError(f"--checkpoint {args.checkpoint} does not exist.")
    if not args.index.is_file():
        raise InputError(f"--index {args.index} does not exist (published indices: `pmsplat data fetch-index`).")
    from splatcore.overrides import path_override, quote_path_overrides

    overrides = (quote_path_overrides(args.overrides) + evaluation_overrides(args.index, args.ground_truth)
                 + [path_override("output_dir", args.out)])
    result = evaluate_checkpoint(overrides, args.checkpoint, max_scenes=args.max_scenes, label=str(args.index.name))
    if not result.rows:
        skipped = [note for note in result.notes if "skipped" in note]
        if skipped:
            raise InputError(f"no scene of {args.index} could be evaluated: the loader {skipped[0].split(': ', 1)[1]} "
                             "Fix the dataset settings (e.g. dataset.image_shape) or the data.")
        raise InputError(f"no scene of {args.index} was found in the test split; check dataset.roots and the index.")
    write_table(result.rows, args.out / "scores")
    summary = {"checkpoint": str(args.checkpoint), "index": str(args.index), **result.averages()}
    md, _ = write_table([summary], args.out / "summary")
    print(md.read_text())
    for note in result.notes:
        print(f"note: {note}")
    return 0
