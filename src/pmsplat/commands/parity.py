"""``pmsplat parity --baseline NAME FILE.safetensors``: check a vendored encoder against golden
tensors produced by the upstream encoder (see ../shared/parity/README.md).
``pmsplat parity --baseline depthsplat --keys KEYS.json``: check the port's state-dict layout of
every preset of a key file (format of ../shared/parity/depthsplat/preset_state_dict_keys.json).

The encoder is built from the file's metadata (seed, views; the encoder configuration is the
metadata's ``encoder_config`` where present, else the ``encoder_config`` of the fixture's
``config.json`` beside the file; V, H and W come from the inputs) by
``<baseline>.parity.build_encoder(metadata)`` — which also applies the deterministic weight rule —
and run by ``<baseline>.parity.run_encoder(encoder, inputs)``, which returns the port's tensors keyed
by the fixture's base names. Every reference tensor is compared after the documented slicing
(``_every8``, ``_strideS``); the command prints a table of max |port - ref| / max |ref| and exits
with 1 when any tensor is out of tolerance (5e-4 for ``inter_*``, 2e-3 for final outputs), 2 on
unusable input.

With ``--keys`` one line per preset is printed (``OK`` or the first differing names/shapes) and the
exit code is 0 only when every preset matches (1 otherwise, 2 on an unusable key file).
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from pmsplat.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parity", help="check a vendored encoder against golden tensors")
    from splatcore.config_dir import available_baselines

    p.add_argument("--baseline", choices=available_baselines(), required=True, help="which vendored encoder to check")
    p.add_argument("file", nargs="?", help="parity set (.safetensors with input_* tensors, references and metadata)")
    p.add_argument(
        "--keys", metavar="KEYS.json",
        help="instead of a parity set: check every preset of this key file (state-dict names, shapes, order)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, as the fixtures)")
    p.set_defaults(func=run)


def _load_hooks(baseline: str):
    """``<baseline>.parity``: ``build_encoder``, ``run_encoder`` and, optionally, ``check_key_layouts``."""
    return import_module(f"{baseline}.parity")


def run(args: argparse.Namespace) -> int:
    keys = getattr(args, "keys", None)
    if (args.file is None) == (keys is None):
        print("pmsplat parity: give either a parity FILE or --keys KEYS.json (not both).", file=sys.stderr)
        return 2
    if keys is not None:
        return _run_keys(args.baseline, keys)
    return _run_file(args)


def _run_keys(baseline: str, path: str) -> int:
    import json
    from pathlib import Path

    hooks = _load_hooks(baseline)
    if not hasattr(hooks, "check_key_layouts"):
        raise InputError(f"--keys is not available for {baseline} (its parity module has no check_key_layouts).")
    try:
        key_file = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the key file {path}: {error}") from error
    results = hooks.check_key_layouts(key_file)
    for result in results:
        counts = f"{result.num_tensors} tensors, {result.num_elements} elements"
        print(f"{result.preset}: OK ({counts})" if result.ok else f"{result.preset}: FAIL ({counts}): {result.problem}")
    failed = [r.preset for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} presets differ from {path}: {', '.join(failed)}")
        return 1
    print(f"all {len(results)} presets match {path}")
    return 0


def _run_file(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from splatcore.testing.parity import compare_outputs, load_parity_file

    console = Console(width=None if sys.stdout.isatty() else 132)
    hooks = _load_hooks(args.baseline)
    torch.set_num_threads(max(1, args.threads))
    parity_file = load_parity_file(args.file)
    encoder = hooks.build_encoder(parity_file.hook_metadata())
    outputs = hooks.run_encoder(encoder, parity_file.inputs)
    results = compare_outputs(parity_file.references, outputs)
    if not results:
        raise InputError(f"{args.file} holds no reference tensors to compare.")
    image = parity_file.inputs["image"]
    table = Table(
        title=f"{args.baseline} parity: {args.file} (seed {parity_file.metadata.get('seed', '?')}, "
        f"V={image.shape[1]}, {image.shape[-2]}x{image.shape[-1]})"
    )
    for column in ("tensor", "shape", "max |ref|", "max |port-ref|", "rel. error", "tolerance", "status"):
        table.add_column(column, justify="left" if column in ("tensor", "shape", "status") else "right")
    for result in results:
        status = "ok" if result.ok else f"FAIL{': ' + result.problem if result.problem else ''}"
        table.add_row(
            result.name,
            "x".join(map(str, result.shape)),
            f"{result.max_abs_ref:.4g}",
            f"{result.max_abs_diff:.3e}",
            f"{result.relative_error:.3e}",
            f"{result.tolerance:.0e}",
            status,
        )
    console.print(table)
    failed = [r.name for r in results if not r.ok]
    if failed:
        console.print(f"[red]{len(failed)} of {len(results)} tensors out of tolerance: {', '.join(failed)}[/red]")
        return 1
    console.print(f"[green]all {len(results)} tensors within tolerance[/green]")
    return 0
