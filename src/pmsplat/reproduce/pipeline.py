"""``pmsplat reproduce``: run a :class:`~pmsplat.reproduce.protocol.Plan` with resume, then report.

Layout of ``outputs/reproduce/<baseline>/`` (``out``)::

    runs/<run>/            one folder per run (Lightning outputs, config.yaml, train_history.csv,
                           spec.json, done.json)
    report.md, results.csv, per_scene.csv, figures: renders_<split>.png, point_clouds.png,
    loss_curves.png                                    (the comparison, ``pmsplat reproduce``)
    ablation.md, ablation.csv, ablation_runs.csv, ablation.png   (``pmsplat reproduce --ablation``)

Resume (:mod:`pmsplat.reproduce.stages`): a run whose ``done.json`` exists with the same settings
and intact outputs is not redone; a training run that was cut off resumes from its last step
checkpoint (same settings; otherwise it is started again from its beginning); a
finished run whose checkpoint is missing or corrupt is run again (the log says so). Every path
stored in ``done.json``, ``spec.json`` and the runs' ``config.yaml`` under the reproduction
folder is relative to the run folder, and a run is identified by its settings and the digest of
the weights it starts from, never by where it lies: the whole folder can be moved or copied
(another disk, another machine) and the next call resumes it.

Lock: while a call runs, ``reproduce.lock`` in ``out`` names its owner (PID, host, start time); a
second call on the same folder stops at once naming that owner, and a lock left by a process that
died on this host is taken over (:mod:`pmsplat.reproduce.lock`).
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .bases import shipped_base_summary
from .lock import hold_lock
from .protocol import Plan, RunSpec
from .report import ReportInputs, RunRecord, write_report
from .stages import artifact, run_stage, step_checkpoint, weights_digest

CONFIG_FILE = "config.yaml"
CONFIG_HEADER = "# Resolved run config. Paths inside the reproduction folder are relative to this run folder.\n"


def _log(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(message, highlight=False)


def ensure_synthetic_data(root: Path, log: Callable[[str], None] = _log) -> None:
    """Generate the synthetic benchmark at ``root`` with the default settings when absent."""
    from pmsplat.synthetic import SynthConfig, generate

    if (root / "synthetic.json").is_file() and (root / "train" / "index.json").is_file():
        return
    log(f"[bold]Generating the synthetic benchmark[/] in {root} (once; about a minute on 2 cores)")
    generate(SynthConfig(out=root, workers=2))


# ------------------------------------------------------------------------------------ paths


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def relative_value(value: str, directory: Path, container: Path) -> str:
    """``value`` rewritten relative to ``directory`` when it is an absolute path inside
    ``container`` (the reproduction folder); anything else is returned unchanged."""
    if not value.startswith(os.sep) or "\n" in value:
        return value
    path = Path(value)
    if not _inside(path, container):
        return value
    return os.path.relpath(path, directory)


def _relative_overrides(overrides: list[str], directory: Path, container: Path) -> list[str]:
    from splatcore.overrides import path_value, unquote

    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            out.append(item)
            continue
        plain = unquote(value)
        relative = relative_value(plain, directory, container)
        out.append(f"{key}{sep}{path_value(relative)}" if relative != plain else item)
    return out


def relativise_config(directory: Path, container: Path) -> None:
    """Rewrite ``directory/config.yaml`` (written resolved by the trainer) with every absolute path
    inside ``container`` made relative to ``directory``."""
    from omegaconf import OmegaConf

    path = directory / CONFIG_FILE
    if not path.is_file():
        return
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        if isinstance(node, str):
            return relative_value(node, directory, container)
        return node

    path.write_text(CONFIG_HEADER + OmegaConf.to_yaml(OmegaConf.create(walk(data))))


# ------------------------------------------------------------------------------------ stages


def _quoted(overrides: list[str]) -> list[str]:
    from splatcore.overrides import quote_path_overrides

    return quote_path_overrides(overrides)


def _resume_point(directory: Path) -> str | None:
    found = step_checkpoint(directory)
    return None if found is None else f"its step-{found[1]} checkpoint ({found[0].name})"


def _train(spec: RunSpec, directory: Path, start_checkpoint: Path | None) -> dict:
    """Train one stage in ``directory``; an unfinished attempt's latest step checkpoint there (see
    :func:`step_checkpoint`) is resumed from (weights, optimizer, scheduler, data position), and
    the result records the overrides of an uninterrupted run either way."""
    from omegaconf import OmegaConf
    from splatcore.main import compose_config
    from splatcore.overrides import path_override

    directory = directory.resolve()
    overrides = spec.overrides + [path_override("output_dir", directory), f"wandb.name={spec.name}"]
    if start_checkpoint is not None:
        overrides.append(path_override("checkpointing.pretrained_model", start_checkpoint))
    resume = step_checkpoint(directory)
    extra = [] if resume is None else [path_override("checkpointing.load", resume[0]), "checkpointing.resume=true"]
    checkpoint_path, history = _run_training(_quoted(overrides) + extra, directory)
    if resume is not None:  # config.yaml as an uninterrupted run writes it (no resume keys)
        (directory / CONFIG_FILE).write_text(OmegaConf.to_yaml(compose_config(_quoted(overrides)), resolve=True))
    container = directory.parent.parent
    relativise_config(directory, container)
    checkpoint = Path(checkpoint_path).resolve().relative_to(directory)
    return {
        "checkpoint": str(checkpoint),
        "weights": weights_digest(directory / checkpoint),
        "overrides": _relative_overrides(overrides, directory, container),
        "history": history,
    }


def _processes(overrides: list[str]) -> int:
    """The number of training processes the overrides ask for (``trainer.devices`` x ``trainer.num_nodes``)."""
    values = {o.split("=", 1)[0].lstrip("+"): o.split("=", 1)[1] for o in overrides if "=" in o}
    count = 1
    for key in ("trainer.devices", "trainer.num_nodes"):
        value = values.get(key, "1")
        count *= int(value) if value.isdigit() else 1
    return count


def _run_training(overrides: list[str], directory: Path) -> tuple[Path, list[dict[str, float]]]:
    """Train with the composed ``overrides``: in this process for one device; for several (``--gpus
    N``) as ``python -m pmsplat.cli train`` in a child process, because Lightning's DDP launcher
    starts the other ranks by running the current command again (the child's command, not this
    pipeline). Returns (last checkpoint, history rows)."""
    import csv
    import subprocess
    import sys

    from splatcore.history import HISTORY_FILE
    from splatcore.main import compose_config, run

    if _processes(overrides) <= 1:
        result = run(compose_config(overrides))
        return Path(result.checkpoint_path), result.history
    done = subprocess.run([sys.executable, "-m", "pmsplat.cli", "train", *overrides], cwd=Path.cwd())
    if done.returncode != 0:
        from pmsplat.errors import PmsplatError

        raise PmsplatError(f"the training stage in {directory} failed (exit code {done.returncode}); its log is above. "
                           "Run the same command again to resume it.")
    with (directory / HISTORY_FILE).open(newline="") as handle:
        history = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]
    return directory / "checkpoints" / "last.ckpt", history


def _evaluate(spec: RunSpec, directory: Path, checkpoint: Path, max_scenes: int | None) -> dict:
    import torch
    from splatcore.overrides import path_override

    from .evaluate import evaluate_checkpoint

    directory = directory.resolve()
    overrides = spec.overrides + [path_override("output_dir", directory), f"wandb.name={spec.name}"]
    result = evaluate_checkpoint(_quoted(overrides), checkpoint, max_scenes=max_scenes, label=f"{spec.start_from} on {spec.split}")
    torch.save(result.samples, directory / "samples.pt")
    container = directory.parent.parent
    return {"averages": result.averages(), "rows": result.rows, "notes": result.notes,
            "overrides": _relative_overrides(overrides, directory, container)}


def _train_artifacts(directory: Path, result: dict) -> list[dict[str, str]]:
    record = {"path": result["checkpoint"], "kind": "weights", "digest": result["weights"]}
    return [record]


def _evaluate_artifacts(directory: Path, result: dict) -> list[dict[str, str]]:
    return [artifact(directory, "samples.pt", "file")] if (directory / "samples.pt").is_file() else []


def execute(plan: Plan, out: Path, log: Callable[[str], None] = _log) -> Path:
    """Run every stage of ``plan`` (skipping finished ones) and write the report (the ablation's
    for an ablation plan); returns its path. The output folder is locked for the whole call
    (:mod:`pmsplat.reproduce.lock`): a second run on it stops at once with
    :class:`~pmsplat.reproduce.lock.OutputLockedError`; a stale lock is taken over."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with hold_lock(out, log):
        return _execute(plan, out, log)


def _execute(plan: Plan, out: Path, log: Callable[[str], None]) -> Path:
    """:func:`execute` once the output folder is locked."""
    runs_dir = out.resolve() / "runs"
    timings: dict[str, float] = {}
    results: dict[str, dict] = {}
    if plan.data == "synthetic":
        start = time.perf_counter()
        ensure_synthetic_data(plan.root, log)
        timings["synthetic data"] = time.perf_counter() - start
    for number, spec in enumerate(plan.runs, 1):
        log(f"[bold cyan][{number}/{len(plan.runs)}][/] {spec.kind} {spec.name}")
        directory = runs_dir / spec.name
        source = results.get(spec.start_from) if spec.start_from else None
        if spec.kind == "train":
            if source is not None:
                start_checkpoint = runs_dir / spec.start_from / source["checkpoint"]
                start_identity: Any = {"run": spec.start_from, "weights": source["weights"]}
            else:
                start_checkpoint = plan.base_checkpoint
                start_identity = None if start_checkpoint is None else str(start_checkpoint)
                if plan.base_sha256:  # the shipped synthetic base: its bytes, not where the checkout lies
                    start_identity = {"base": start_checkpoint.name, "sha256": plan.base_sha256}
            work = lambda d, spec=spec, c=start_checkpoint: _train(spec, d, c)  # noqa: E731
            identity = {"overrides": spec.overrides, "start": start_identity}
            produced = _train_artifacts
        else:
            checkpoint = runs_dir / spec.start_from / source["checkpoint"]
            work = lambda d, spec=spec, c=checkpoint: _evaluate(spec, d, c, plan.schedule.max_eval_scenes)  # noqa: E731
            identity = {"overrides": spec.overrides, "run": spec.start_from, "weights": source["weights"],
                        "scenes": plan.schedule.max_eval_scenes}
            produced = _evaluate_artifacts
        resumable = _resume_point if spec.kind == "train" else None
        result, seconds, _ = run_stage(directory, identity, work, log, artifacts=produced, resumable=resumable)
        results[spec.name] = result
        timings[spec.name] = seconds
    if plan.variants:
        from .ablation import write_ablation

        return write_ablation(plan, out, results, timings)
    return write_outputs(plan, out, results, timings)


# ------------------------------------------------------------------------------------ report


def _records(plan: Plan, results: dict[str, dict]) -> list[RunRecord]:
    return [
        RunRecord(spec.variant, spec.seed, spec.split, dict(results[spec.name]["averages"]))
        for spec in plan.runs
        if spec.kind == "evaluate"
    ]


def _command_lines(plan: Plan, results: dict[str, dict], out: Path) -> list[str]:
    """The runs as commands from the current directory (run-folder-relative paths re-anchored)."""
    from splatcore.overrides import path_value, unquote

    lines = []
    for spec in plan.runs:
        directory = out / "runs" / spec.name
        overrides = []
        for item in results[spec.name].get("overrides", spec.overrides):
            key, sep, value = item.partition("=")
            if sep and key in ("output_dir", "checkpointing.pretrained_model") and not os.path.isabs(unquote(value)):
                value = path_value(os.path.normpath(directory / unquote(value)))
            overrides.append(f"{key}{sep}{value}" if sep else item)
        lines.append(f"# {spec.name}")
        if spec.kind == "train":
            lines.append("pmsplat train " + " ".join(shlex.quote(o) for o in overrides))
        else:
            lines.append("# (in-process: pmsplat.reproduce.evaluate on) " + " ".join(shlex.quote(o) for o in overrides))
    return lines


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: node}


def _resolved_config(out: Path, spec: RunSpec) -> tuple[dict, str]:
    """The resolved config of a training run: its ``config.yaml`` when it ran, else composed
    from its overrides (with a note saying so)."""
    from omegaconf import OmegaConf

    path = out / "runs" / spec.name / CONFIG_FILE
    if path.is_file():
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False), f"runs/{spec.name}/{CONFIG_FILE}"
    from splatcore.main import compose_config

    composed = compose_config(_quoted(spec.overrides + ["output_dir=.", f"wandb.name={spec.name}"]))
    return OmegaConf.to_container(composed, resolve=True), f"composed from the overrides of {spec.name}"


IGNORED_RECIPE_KEYS = ("output_dir", "wandb.")


def recipe_difference(out: Path, baseline: RunSpec, pm: RunSpec) -> tuple[list[tuple[str, str, str]], str]:
    """The keys in which the two runs' resolved configs differ (values as YAML-ish text; "—"
    where a key is absent), ignoring the output folder and the logger's run name."""
    a, source_a = _resolved_config(out, baseline)
    b, source_b = _resolved_config(out, pm)
    flat_a, flat_b = _recipe_keys(a), _recipe_keys(b)
    rows = []
    for key in sorted(set(flat_a) | set(flat_b)):
        if key in IGNORED_RECIPE_KEYS or key.startswith(tuple(p for p in IGNORED_RECIPE_KEYS if p.endswith("."))):
            continue
        value_a, value_b = flat_a.get(key, "—"), flat_b.get(key, "—")
        if value_a != value_b:
            rows.append((key, _text(value_a), _text(value_b)))
    rows = _group_one_sided(rows)
    source = (f"Derived from the two resolved configs ({source_a} vs {source_b}); every other key is identical "
              "(ignored: the output folder, the logger's run name, the teacher group of the run without PM-Loss, which "
              "nothing reads, and `loss.pm.teacher.*`, which repeats `teacher.*`).")
    return rows, source


def _group_one_sided(rows: list[tuple[str, str, str]], minimum: int = 3) -> list[tuple[str, str, str]]:
    """Rows of keys that only one run has, merged per parent key when there are ``minimum`` or more
    (``teacher.*``: "—" vs "name=synthetic, noise_std=0.005, ..."), in first-key order."""
    groups: dict[tuple[str, int], list[tuple[str, str, str]]] = {}
    for row in rows:
        side = 0 if row[1] == "—" else 1 if row[2] == "—" else -1
        groups.setdefault((row[0].rsplit(".", 1)[0], side) if side >= 0 else (row[0], -1), []).append(row)
    out = []
    for (parent, side), members in groups.items():
        if side < 0 or len(members) < minimum:
            out += members
            continue
        present = ", ".join(f"{key.rsplit('.', 1)[1]}={(b if side == 0 else a)}" for key, a, b in members)
        out.append((f"{parent}.*", "—" if side == 0 else present, present if side == 0 else "—"))
    return out


def _recipe_keys(config: dict) -> dict[str, Any]:
    """Flattened config without what is not part of the recipe: the teacher group of a run
    without PM-Loss (nothing reads it), and ``loss.pm.teacher.*`` where it repeats ``teacher.*``
    (it is the same group, interpolated)."""
    flat = _flatten(config)
    uses_pm = isinstance(config.get("loss"), dict) and "pm" in config["loss"]
    out = {}
    for key, value in flat.items():
        if key.startswith("teacher.") and not uses_pm:
            continue
        if key.startswith("loss.pm.teacher.") and flat.get("teacher." + key[len("loss.pm.teacher."):], object()) == value:
            continue
        out[key] = value
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def write_outputs(plan: Plan, out: Path, results: dict[str, dict], timings: dict[str, float]) -> Path:
    from pmsplat.evaluation import write_table

    from .figures import make_figures

    records = _records(plan, results)
    per_scene = [
        {"run": spec.start_from, "split": spec.split, **row}
        for spec in plan.runs if spec.kind == "evaluate" for row in results[spec.name]["rows"]
    ]
    if per_scene:
        write_table(per_scene, out / "per_scene")
    notes = sorted({note for spec in plan.runs if spec.kind == "evaluate" for note in results[spec.name].get("notes", [])})
    figures = make_figures(plan, out, results)
    s = plan.schedule
    settings = {
        "baseline": plan.baseline,
        "data": f"{plan.data} ({plan.root})",
        "teacher": plan.teacher,
        "protocol": (
            (f"base: {s.base_steps} steps of the baseline from scratch (seed 0)" if plan.from_scratch else
             f"base: the shipped synthetic base {shipped_base_summary(plan.base_checkpoint, plan.base_sha256)}")
            + f"; then per seed {list(s.seeds)}: {s.finetune_steps} fine-tuning steps from the base, without and with "
            f"PM-Loss (weight {s.pm_weight}); same data order, schedule and start for both"
            if plan.data == "synthetic"
            else f"fine-tune the official checkpoint {plan.base_checkpoint} for {s.finetune_steps} steps, per seed {list(s.seeds)}"
        ),
        "evaluation": ", ".join(f"{split}: {path}" for split, path in plan.splits.items())
        + (f" (first {s.max_eval_scenes} scene(s) only)" if s.max_eval_scenes else " (every scene)"),
    }
    recipe: list[tuple[str, str, str]] = []
    recipe_source = ""
    trains = {spec.name: spec for spec in plan.runs if spec.kind == "train"}
    seed = s.seeds[0]
    pair = [trains.get(plan.run_names.get((variant, seed), "")) for variant in ("baseline", "pmloss")]
    if all(pair):
        recipe, recipe_source = recipe_difference(out, pair[0], pair[1])
        settings["photometric loss"] = _photometric_summary(out, pair[0])
    if plan.data == "synthetic":
        notes.append(
            "This is the synthetic benchmark on CPU-sized models: the numbers are not, and must not be read as, "
            "the paper's RealEstate10K / DL3DV results."
        )
    inputs = ReportInputs(
        title=f"PM-Loss reproduction: {plan.baseline} on {plan.data}",
        settings=settings,
        records=records,
        commands=_command_lines(plan, results, out),
        timings=timings,
        notes=notes,
        figures=figures,
        paper_reference=paper_reference(plan),
        recipe=recipe,
        recipe_source=recipe_source,
    )
    path = write_report(inputs, out)
    (out / "plan.json").write_text(json.dumps([asdict(r) for r in plan.runs], indent=2))
    return path


def _photometric_summary(out: Path, spec: RunSpec) -> str:
    """The rendering losses of a run as its resolved config has them, e.g. ``mse 1.0 + lpips 0.05
    (from step 0)``."""
    config, _ = _resolved_config(out, spec)
    losses = config.get("loss") or {}
    steps = (config.get("trainer") or {}).get("max_steps")
    parts = []
    for name in ("mse", "lpips"):
        if name in losses:
            cfg = losses[name] or {}
            after = cfg.get("apply_after_step") or 0
            note = ""
            if after > 0:
                note = f" (from step {after}" + (f": never within the {steps} steps" if steps and after >= steps else "") + ")"
            parts.append(f"{name} ×{cfg.get('weight')}{note}")
    text = " + ".join(parts) or "none"
    if "lpips" not in losses:
        text += " (no LPIPS term: not the paper's photometric loss, MSE + 0.05 LPIPS)"
    return text


def paper_reference(plan: Plan) -> list[str]:
    """The paper-side figures we can state without guessing (upstream-facts §10)."""
    if plan.data == "synthetic":
        return []
    lines = []
    if plan.baseline == "mvsplat" and plan.data == "re10k":
        lines.append(
            "- MVSplat paper, RE10K 256x256 2 views (interpolation index): PSNR 26.39, SSIM 0.869, LPIPS 0.128. "
            "The PM-Loss paper's own tables (256x448, bound-aware extrapolation) were not available to this project; "
            "take them from arXiv 2506.05327."
        )
    else:
        lines.append(
            "- The DepthSplat and PM-Loss table values could not be verified from stored material; take them "
            "from arXiv 2410.13862 / 2506.05327."
        )
    return lines
