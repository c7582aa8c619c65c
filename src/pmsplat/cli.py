"""The ``pmsplat`` command. Each sub-command lives in its own module under ``pmsplat.commands``
and is imported only when used, so ``pmsplat --help`` is fast and optional dependencies of one
command never break another.

A command module exposes ``register(subparsers)`` which adds its parser and sets ``func``. Commands
do not catch the project's errors: :func:`main` prints any of them as one line
``pmsplat <command> [<action>]: <message>`` on stderr, without a traceback, and exits with the
command's error code (the convention is described in :mod:`pmsplat.errors`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class Command:
    module: str
    help: str
    error_code: int = 2  # exit code when the command stops on an expected error (bad input, missing file...)


COMMANDS: dict[str, Command] = {
    "data": Command("pmsplat.commands.data", "generate the synthetic benchmark, fetch evaluation indices"),
    "parity": Command("pmsplat.commands.parity", "check a vendored encoder against golden tensors"),
    "train": Command("pmsplat.commands.train", "train or test MVSplat / DepthSplat with Hydra overrides"),
    "patches": Command("pmsplat.commands.patches", "the patch manager: status/apply/unapply/verify/refresh/diff", 1),
    "teacher": Command("pmsplat.commands.teacher", "precompute / verify an offline teacher cache", 1),
    "evaluate": Command("pmsplat.commands.evaluate", "evaluate a checkpoint + config on a dataset"),
    "reproduce": Command("pmsplat.commands.reproduce", "baseline vs baseline + PM-Loss, end to end"),
    "pretrain": Command("pmsplat.commands.pretrain", "train the synthetic CPU base until converged (resumable)"),
}

# Top-level packages of this repository: a ModuleNotFoundError naming one of them is a bug, not a
# missing optional dependency.
OWN_PACKAGES = ("pmsplat", "splatcore", "mvsplat", "depthsplat")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, the other commands are listed but their modules not imported."""
    parser = argparse.ArgumentParser(prog="pmsplat", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=command.help)
            continue
        import_module(command.module).register(sub)
    _name_every_parser(parser)
    return parser


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The direct sub-parsers of ``parser`` by name (empty when it has none)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse keeps sub-parsers only there
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _name_every_parser(parser: argparse.ArgumentParser, path: str = "pmsplat") -> None:
    """Record on every (sub-)parser the command path its errors are printed with: the deepest
    parser used sets it last, e.g. ``pmsplat teacher check``."""
    parser.set_defaults(command_path=path)
    for name, child in subparsers(parser).items():
        _name_every_parser(child, f"{path} {name}")


def expected_error(error: BaseException) -> bool:
    """True for the errors a user can fix (printed as one line): the roots of pmsplat, of the shared
    core and of the baselines (which derive from it), a missing file, a missing optional package."""
    from splatcore.errors import SplatcoreError

    from pmsplat.errors import PmsplatError

    if isinstance(error, ModuleNotFoundError) and not isinstance(error, PmsplatError):
        return (error.name or "").split(".")[0] not in OWN_PACKAGES
    return isinstance(error, PmsplatError | SplatcoreError | FileNotFoundError)


def error_message(error: BaseException) -> str:
    if type(error) is ModuleNotFoundError and error.name:
        package = error.name.split(".")[0]
        return f"this needs the Python package '{package}', which is not installed (pip install {package})."
    return str(error) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except Exception as error:
        if not expected_error(error):
            raise
        print(f"{args.command_path}: {error_message(error)}", file=sys.stderr)
        return COMMANDS[args.command].error_code


if __name__ == "__main__":
    sys.exit(main())
