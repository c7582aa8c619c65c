"""The ``pmsplat`` command. Each sub-command lives in its own module under ``pmsplat.commands``
and is imported only when used, so ``pmsplat --help`` is fast and optional dependencies of one
command never break another.

A command module exposes ``register(subparsers)`` which adds its parser and sets ``func``.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

# sub-command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("pmsplat.commands.data", "generate the synthetic benchmark, fetch evaluation indices"),
    "parity": ("pmsplat.commands.parity", "check a vendored encoder against golden tensors"),
    "train": ("pmsplat.commands.train", "train or test MVSplat / DepthSplat with Hydra overrides"),
    "patches": ("pmsplat.commands.patches", "the patch manager: status/apply/unapply/verify/refresh/diff"),
    "teacher": ("pmsplat.commands.teacher", "precompute / verify an offline teacher cache"),
    "evaluate": ("pmsplat.commands.evaluate", "evaluate a checkpoint + config on a dataset"),
    "reproduce": ("pmsplat.commands.reproduce", "baseline vs baseline + PM-Loss, end to end"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pmsplat", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            stub = sub.add_parser(name, help=f"{help_text} (not yet available)")
            stub.set_defaults(func=_not_available(name))
            continue
        module.register(sub)
    return parser


def _not_available(name: str):
    def run(_args: argparse.Namespace) -> int:
        print(f"pmsplat {name}: not yet available in this version of pmsplat.", file=sys.stderr)
        return 2

    return run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
