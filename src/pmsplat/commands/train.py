"""``pmsplat train [hydra overrides...]``: train (or test, with ``mode=test``) a vendored baseline.

Examples::

    pmsplat data synth --out datasets/synthetic
    pmsplat train +experiment=mvsplat_synthetic_cpu trainer.max_steps=300
    pmsplat train +experiment=depthsplat_synthetic_cpu
    pmsplat train +experiment=mvsplat_synthetic_cpu mode=test checkpointing.load=outputs/.../last.ckpt
    pmsplat train --cfg +experiment=re10k     # print the composed config and exit

The overrides use the upstream Hydra vocabulary (``config/``); everything runs in-process through
``splatcore.main.compose_config`` + ``splatcore.main.run``. Exit codes: 0 done, 2 invalid
configuration / missing file (one message, no traceback: ``pmsplat.cli``).
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or test MVSplat / DepthSplat (Hydra overrides)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. +experiment=mvsplat_synthetic_cpu trainer.max_steps=300")
    p.add_argument("--cfg", action="store_true", help="print the composed configuration and exit")
    p.add_argument("--config-dir", default=None, help="Hydra config directory (default: the repository's config/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf
    from splatcore.main import compose_config, run as run_training
    from splatcore.main import typed_config

    from splatcore.overrides import quote_path_overrides

    # a path value Hydra's grammar cannot read (spaces, parentheses, quotes...) is quoted for it
    cfg = compose_config(quote_path_overrides(args.overrides), config_dir=args.config_dir)
    if args.cfg:
        print(OmegaConf.to_yaml(cfg, resolve=True))
        typed_config(cfg, check_files=False)
        return 0
    result = run_training(cfg)
    print(f"output directory: {result.output_dir}")
    if result.checkpoint_path is not None:
        print(f"checkpoint: {result.checkpoint_path}")
    if result.history:
        first, last = result.history[0], result.history[-1]
        print(f"loss/total: step {int(first['step'])} {first['loss/total']:.5f} -> step {int(last['step'])} {last['loss/total']:.5f}")
    if result.scores is not None:
        print("scores:", json.dumps(result.scores))
    return 0
