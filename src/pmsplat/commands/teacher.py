"""``pmsplat teacher``: try a teacher out, build and check an offline teacher cache, list the teachers.

    pmsplat teacher check NAME [--set KEY=VALUE ...] [--teacher-config FILE.yaml] [--views 2]
                               [--image-shape H W] [--seed 0] [--dataset ROOT ...] [--stage test]

    pmsplat teacher precompute --dataset ROOT [ROOT ...] --out CACHE [--stage train|test]
                               [--teacher NAME] [--set KEY=VALUE ...] [--teacher-config FILE.yaml]
                               [--image-shape H W] [--dataset-name NAME] [--dataset-set KEY=VALUE ...]
                               [--shard I/N] [--frame-policy scene|windows] [--window 16] [--overlap 4]
                               [--crop-multiple 1]
    pmsplat teacher verify CACHE [--dataset ROOT ...] [--quick]
    pmsplat teacher list

``check`` loads the teacher, runs one example (a ray-cast synthetic room, or the first scene of
``--dataset``) and prints the output shapes, frame, time and peak memory; exit 1 on any error.
``precompute`` is resumable (finished scenes are skipped) and several processes may fill one
cache with disjoint ``--shard 0/4``, ``--shard 1/4``, ... (under torchrun or srun each rank takes
its shard from the launcher: ``torchrun --nproc-per-node 4 -m pmsplat.cli teacher precompute ...``);
``verify`` exits 1 unless every scene is
present and intact (and, with ``--dataset``, the dataset is unchanged).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path


def _available_teachers() -> list[str]:
    from pmsplat.teachers.registry import available_teachers

    return available_teachers()


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("teacher", help="check a teacher, precompute / verify an offline teacher cache")
    actions = parser.add_subparsers(dest="teacher_command", metavar="ACTION")

    from pmsplat.commands.choices import LazyChoices

    teachers = LazyChoices(_available_teachers)
    trial = actions.add_parser("check", help="load a teacher and run it once on a small example (after installing it)")
    trial.add_argument("name", choices=teachers, metavar="NAME", help="teacher name: %(choices)s")
    trial.add_argument("--set", dest="teacher_set", nargs="+", default=[], metavar="KEY=VALUE", help="teacher options (YAML values), e.g. weights=PATH device=cuda")
    trial.add_argument("--teacher-config", type=Path, help="YAML file with the teacher config (name + options)")
    trial.add_argument("--views", type=int, default=2, help="views in the example (default 2; DUSt3R runs its global alignment from 3)")
    trial.add_argument("--image-shape", type=int, nargs=2, metavar=("H", "W"), help="image size (default 224 224; with --dataset: dataset.image_shape)")
    trial.add_argument("--seed", type=int, default=0, help="seed of the synthetic room (default 0)")
    trial.add_argument("--dataset", type=Path, nargs="+", metavar="ROOT", help="take the example from this dataset instead")
    trial.add_argument("--stage", choices=["train", "test"], default="test")
    trial.add_argument("--dataset-name", help="dataset.name (default: synthetic when synthetic.json exists, else re10k)")
    trial.add_argument("--dataset-set", nargs="+", default=[], metavar="KEY=VALUE", help="other dataset options (YAML values)")
    trial.set_defaults(func=run_check)

    build = actions.add_parser("precompute", help="run a teacher over a dataset split and store its pointmaps")
    build.add_argument("--dataset", type=Path, nargs="+", required=True, metavar="ROOT", help="dataset root(s) with train/ and test/")
    build.add_argument("--out", type=Path, required=True, help="cache folder (created; an existing one is resumed)")
    build.add_argument("--stage", choices=["train", "test"], default="train")
    build.add_argument("--teacher", default="synthetic", choices=teachers, metavar="NAME", help="teacher name (default synthetic; `pmsplat teacher list` says what each needs)")
    build.add_argument("--set", dest="teacher_set", nargs="+", default=[], metavar="KEY=VALUE", help="teacher options (YAML values)")
    build.add_argument("--teacher-config", type=Path, help="YAML file with the teacher config (name + options)")
    build.add_argument("--image-shape", type=int, nargs=2, metavar=("H", "W"), help="dataset.image_shape (crop-shim output)")
    build.add_argument("--dataset-name", help="dataset.name (default: synthetic when synthetic.json exists, else re10k)")
    build.add_argument("--dataset-set", nargs="+", default=[], metavar="KEY=VALUE", help="other dataset options (YAML values)")
    build.add_argument("--shard", default=None,
                       help="I/N: handle scenes at sorted positions p with p %% N == I (default: RANK/WORLD_SIZE under "
                            "torchrun or SLURM_PROCID/SLURM_NTASKS under srun, else 0/1)")
    build.add_argument("--frame-policy", choices=["scene", "windows"], default="scene", help="frames per teacher call (default: whole scene)")
    build.add_argument("--window", type=int, default=16, help="frames per window (--frame-policy windows)")
    build.add_argument("--overlap", type=int, default=4, help="frames shared by consecutive windows")
    build.add_argument("--crop-multiple", type=int, default=1, help="centre-crop to this multiple first (the patch shim; 1 = off)")
    build.set_defaults(func=run_precompute)

    check = actions.add_parser("verify", help="check a cache for completeness and integrity")
    check.add_argument("cache", type=Path)
    check.add_argument("--dataset", type=Path, nargs="+", metavar="ROOT", help="also check that this dataset is unchanged")
    check.add_argument("--quick", action="store_true", help="sizes only, no sha256 of every file")
    check.set_defaults(func=run_verify)

    listing = actions.add_parser("list", help="list the registered teachers and what each needs")
    listing.set_defaults(func=run_list)

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _key_values(pairs: list[str], what: str) -> dict:
    import yaml

    from pmsplat.errors import InputError

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"{what}: expected KEY=VALUE, got {pair!r}.")
        values[key] = yaml.safe_load(value)
    return values


def _teacher_config(args: argparse.Namespace) -> dict:
    import yaml

    from pmsplat.errors import InputError

    config: dict = {}
    if args.teacher_config is not None:
        if not args.teacher_config.is_file():
            raise InputError(f"--teacher-config {args.teacher_config} does not exist.")
        config = yaml.safe_load(args.teacher_config.read_text()) or {}
        if not isinstance(config, dict):
            raise InputError(f"--teacher-config {args.teacher_config} must hold a mapping (name + options).")
    config.setdefault("name", args.teacher)
    config.update(_key_values(args.teacher_set, "--set"))
    return config


def _dataset_config(args: argparse.Namespace):
    from splatcore.dataset import DatasetCfg

    from pmsplat.synthetic import synthetic_dataset_cfg

    roots = list(args.dataset)
    overrides = _key_values(args.dataset_set, "--dataset-set")
    if args.image_shape:
        overrides["image_shape"] = list(args.image_shape)
    if args.dataset_name:
        overrides["name"] = args.dataset_name
    if (roots[0] / "synthetic.json").is_file():
        return synthetic_dataset_cfg(roots[0], roots=roots, **overrides)
    return dataclasses.replace(DatasetCfg(roots=roots), **overrides)


def run_check(args: argparse.Namespace) -> int:
    from pmsplat.teachers.check import check_teacher, dataset_example, synthetic_example
    from pmsplat.teachers.registry import TEACHERS, build_teacher, needs_pointmap, teacher_identity

    args.teacher = args.name
    if TEACHERS[args.name].config_name is None:
        print(f"pmsplat teacher check: teacher {args.name!r} is built in code around given tensors; there is nothing to check.", file=sys.stderr)
        return 2
    config = _teacher_config(args)
    if config.get("name") != args.name:
        print(f"pmsplat teacher check: --teacher-config names teacher {config.get('name')!r}, not {args.name!r}.", file=sys.stderr)
        return 2
    identity = teacher_identity(config)
    print(f"teacher:     {args.name} {identity['options']}")
    start = time.perf_counter()
    teacher = build_teacher(config)
    print(f"loaded:      {type(teacher).__name__} in {time.perf_counter() - start:.2f} s")
    if args.dataset:
        example = dataset_example(_dataset_config(args), args.stage, args.views, needs_pointmap(config))
    else:
        height, width = args.image_shape or (224, 224)
        example = synthetic_example(args.views, height, width, args.seed)
    print(f"example:     {args.views} views of {example.source}")
    report = check_teacher(teacher, example)
    print("\n".join(report.lines()))
    if not report.ok:
        return 1
    print(f"OK: teacher {args.name!r} works here.")
    return 0


def launcher_shard(environ) -> str:
    """The shard ``I/N`` of this process under a launcher: torchrun's ``RANK`` / ``WORLD_SIZE``, srun's
    ``SLURM_PROCID`` / ``SLURM_NTASKS``; ``0/1`` otherwise (so ``torchrun --nproc-per-node 8 -m
    pmsplat.cli teacher precompute ...`` fills one cache with 8 disjoint shards)."""
    for rank, world in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank in environ and world in environ:
            return f"{environ[rank]}/{environ[world]}"
    return "0/1"


def run_precompute(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from pmsplat.teachers.cache_build import CacheBuildCfg, FramePolicyCfg, precompute

    args.shard = args.shard or launcher_shard(os.environ)
    try:
        shard_index, shard_count = (int(x) for x in args.shard.split("/"))
    except ValueError:  # a usage error, as argparse's (exit 2)
        print(f"pmsplat teacher precompute: --shard must be I/N (e.g. 0/4), got {args.shard!r}.", file=sys.stderr)
        return 2
    start = time.perf_counter()
    cfg = CacheBuildCfg(
        out=args.out,
        dataset=_dataset_config(args),
        teacher=_teacher_config(args),
        stage=args.stage,
        shard=(shard_index, shard_count),
        frame_policy=FramePolicyCfg(kind=args.frame_policy, window=args.window, overlap=args.overlap),
        crop_multiple=args.crop_multiple,
    )
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()
        ) as progress:
            task = progress.add_task(f"teacher cache {args.stage} shard {args.shard}", total=None)

            def update(done: int, total: int, scene: str) -> None:
                progress.update(task, completed=done, total=total)

            summary = precompute(cfg, progress=update)
    except KeyboardInterrupt:
        print(f"pmsplat teacher precompute: interrupted; finished scenes are kept in {args.out}, run the same "
              "command again to resume.", file=sys.stderr)
        return 130
    print(
        f"Shard {args.shard}: {summary.computed} scene(s) computed ({summary.repaired} of them to repair a corrupt or "
        f"missing file), {summary.already_done} already done (checksums verified), "
        f"{summary.skipped} skipped by the loader, of {summary.total}; {summary.bytes_written / 1e6:.1f} MB written, "
        f"teacher {summary.teacher_seconds:.1f} s, total {time.perf_counter() - start:.1f} s -> {args.out}"
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from pmsplat.teachers.cache_verify import verify_cache

    report = verify_cache(args.cache, dataset_roots=args.dataset, checksums=not args.quick)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def run_list(args: argparse.Namespace) -> int:
    from pmsplat.teachers.registry import TEACHERS, available_teachers

    for name in available_teachers():
        spec = TEACHERS[name]
        print(f"{name:10s} {spec.module}.{spec.class_name}  needs: {spec.install}")
    print("After installing one, try it with:  pmsplat teacher check NAME [--set weights=PATH device=cuda]")
    return 0
