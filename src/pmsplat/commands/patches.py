"""``pmsplat patches``: status / apply / unapply / verify / refresh / new / diff / record-pristine.

See patches/README.md for the model. Exit codes: 0 success, 1 a check failed or an operation
could not be done (a ``PatchError``, printed by ``pmsplat.cli``; nothing was written), 2 bad usage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ACTIONS = {
    "status": "per baseline: applied patches and drift",
    "apply": "apply the series (all or nothing)",
    "unapply": "reverse the series (all or nothing)",
    "verify": "check pristine hash + series == tree, zero fuzz, zero offset",
    "refresh": "regenerate the top applied patch (or --patch NAME) from the current edits",
    "new": "start a new, empty patch on top of a baseline's series",
    "diff": "print the series with per-file added/removed counts and totals",
    "record-pristine": "accept the tree minus the applied patches as the new pristine baseline",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("patches", help="the patch manager: status/apply/unapply/verify/refresh/diff",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="repository root (default: the checkout pmsplat is installed from)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    for name, help_text in ACTIONS.items():
        action = actions.add_parser(name, help=help_text, description=help_text, parents=[common])
        if name == "new":
            action.add_argument("baseline")
            action.add_argument("name", help="short name, e.g. pm-loss-hook (numbered automatically)")
            action.add_argument("-m", "--message", help="description written at the top of the patch")
        elif name in ("apply", "unapply", "refresh", "diff"):
            action.add_argument("baseline", nargs="?", help="default: every baseline")
        else:
            action.add_argument("baselines", nargs="*", metavar="baseline", help="default: every baseline")
        if name in ("apply", "unapply"):
            action.add_argument("--upto", metavar="N|NAME",
                                help="stop when N patches (or patches up to NAME) are applied")
        if name == "apply":
            action.add_argument("--allow-offset", action="store_true",
                                help="let hunks match exactly at moved lines, then rebase those patches")
        if name == "refresh":
            action.add_argument("--patch", metavar="NAME", help="the patch to regenerate (default: top applied)")
        if name == "diff":
            action.add_argument("--stat", action="store_true", help="counts only, without the diff text")
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from pmsplat.patching import Repository, find_root
    from pmsplat.patching import operations

    if not args.action:
        args.parser.print_help()
        return 2
    repo = Repository(find_root(args.root))
    one = [args.baseline] if getattr(args, "baseline", None) else None
    if args.action == "status":
        lines = operations.status(repo, args.baselines)
    elif args.action == "verify":
        lines = operations.verify(repo, args.baselines)
    elif args.action == "apply":
        lines = operations.apply(repo, one, args.upto, args.allow_offset)
    elif args.action == "unapply":
        lines = operations.unapply(repo, one, args.upto)
    elif args.action == "refresh":
        lines = operations.refresh(repo, one, args.patch)
    elif args.action == "new":
        lines = operations.new_patch(repo, args.baseline, args.name, args.message)
    elif args.action == "diff":
        lines = operations.diff(repo, one, args.stat)
    else:
        lines = operations.record_pristine(repo, args.baselines)
    for line in lines:
        print(line)
    return 0
