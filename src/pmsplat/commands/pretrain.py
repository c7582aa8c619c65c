"""``pmsplat pretrain``: train the synthetic CPU base until it converges (or its budget is spent).

Examples::

    pmsplat pretrain --baseline mvsplat                          # outputs/pretrain/mvsplat, 4000-step budget, 128 scenes
    pmsplat pretrain --baseline mvsplat --max-steps 6000 --scenes 256
    pmsplat pretrain --baseline depthsplat --out runs/ds --export checkpoints/synthetic/depthsplat_base.safetensors
    pmsplat pretrain --baseline mvsplat optimizer.lr=5e-4         # extra Hydra overrides

Run again with the same options after a kill: it continues from the latest step checkpoint.
Writes ``<out>/report.md`` (which rule stopped it), ``curves.png``, ``validation.csv``,
``train_history.csv`` and the float16 weights + ``.provenance.json`` (``--export``). The
behaviour is :mod:`pmsplat.reproduce.pretrain`'s. Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="train the synthetic CPU base until converged (resumable)")
    p.add_argument("--baseline", required=True, choices=["mvsplat", "depthsplat"])
    p.add_argument("--out", type=Path, default=None, help="run folder (default outputs/pretrain/<baseline>)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="step budget; also the LR schedule's length (default: 4000 for mvsplat, 2000 for depthsplat)")
    p.add_argument("--scenes", type=int, default=128, help="training scenes, generated if missing (default 128, as the shipped bases)")
    p.add_argument("--data", type=Path, default=None,
                   help="synthetic data folder (default datasets/synthetic, or datasets/synthetic-train<N> for --scenes N != 32)")
    p.add_argument("--val-every", type=int, default=250, help="steps between validations (default 250)")
    p.add_argument("--val-scenes", type=int, default=8, help="scenes of the fixed validation subset (default 8)")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between resumable checkpoints (default 100)")
    p.add_argument("--export", type=Path, default=None,
                   help="float16 safetensors to write (default checkpoints/synthetic/<baseline>_base.safetensors)")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for the preset, e.g. optimizer.lr=5e-4")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pmsplat.reproduce.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(
        baseline=args.baseline, out=args.out, max_steps=args.max_steps, scenes=args.scenes, data=args.data,
        val_every=args.val_every, val_scenes=args.val_scenes, checkpoint_every=args.checkpoint_every,
        overrides=list(args.overrides), export=args.export, command=shlex.join(["pmsplat", *sys.argv[1:]]),
    )
    provenance = pretrain(cfg)
    stop = provenance["stop"]
    print(f"stopped by {stop['reason']} at step {provenance['steps']}; weights {provenance['weights']}; report {cfg.out / 'report.md'}")
    return 0
