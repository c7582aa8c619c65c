"""The reproduction report: ``report.md`` (table, configuration, command lines, timings, machine),
``results.csv`` (one row per variant x seed x split), ``per_scene.csv`` and the PNG figures."""

from __future__ import annotations

import csv
import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

# Metric columns in report order: (key, label, higher is better).
METRICS: list[tuple[str, str, bool]] = [
    ("psnr", "PSNR", True),
    ("ssim", "SSIM", True),
    ("lpips", "LPIPS", False),
    ("psnr_boundary", "PSNR (depth edges)", True),
    ("depth_abs_rel", "depth AbsRel", False),
    ("p2s_mean", "point-to-surface", False),
    ("p2s_boundary", "point-to-surface (edges)", False),
    ("floating_fraction", "floating Gaussians", False),
]


@dataclass
class RunRecord:
    """One evaluated run: variant ("baseline" / "pmloss"), seed, split, averaged metrics."""

    variant: str
    seed: int
    split: str
    metrics: dict[str, float]


@dataclass
class ReportInputs:
    title: str
    settings: dict[str, str]  # what was run (preset, steps, seeds, teacher, data)
    records: list[RunRecord]
    commands: list[str]  # exact command lines / overrides of every run
    timings: dict[str, float]  # stage -> seconds
    notes: list[str] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)
    paper_reference: list[str] = field(default_factory=list)  # lines; empty on synthetic data


def machine_description() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return (
        f"{platform.node() or 'host'} · {platform.machine()} · {os.cpu_count()} CPUs · torch {torch.__version__} "
        f"({torch.get_num_threads()} threads) · {device}"
    )


def _spread(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def _cell(mean: float, std: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_table(records: list[RunRecord], split: str) -> tuple[list[str], list[list[str]]]:
    """Markdown header + rows for one split: a row per variant (mean ± std over seeds) and a row
    with the PM-Loss minus baseline difference and which side it favours."""
    header = ["variant", "seeds"] + [label for _, label, _ in METRICS]
    rows = []
    means: dict[str, dict[str, float]] = {}
    for variant in ("baseline", "pmloss"):
        chosen = [r for r in records if r.variant == variant and r.split == split]
        if not chosen:
            continue
        cells = [variant, str(len(chosen))]
        means[variant] = {}
        for key, _, _ in METRICS:
            mean, std = _spread([r.metrics.get(key, math.nan) for r in chosen])
            means[variant][key] = mean
            cells.append(_cell(mean, std))
        rows.append(cells)
    if len(means) == 2:
        cells = ["Δ (PM − base)", ""]
        for key, _, higher in METRICS:
            delta = means["pmloss"][key] - means["baseline"][key]
            if math.isnan(delta):
                cells.append("n/a")
            else:
                better = (delta > 0) == higher and delta != 0
                cells.append(f"{delta:+.3f} ({'PM better' if better else 'base better' if delta else 'equal'})")
        rows.append(cells)
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_results_csv(records: list[RunRecord], path: Path) -> None:
    keys = [key for key, _, _ in METRICS]
    extra = sorted({k for r in records for k in r.metrics} - set(keys))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "seed", "split"] + keys + extra)
        for r in records:
            writer.writerow([r.variant, r.seed, r.split] + [r.metrics.get(k, math.nan) for k in keys + extra])


def write_report(inputs: ReportInputs, out_dir: Path) -> Path:
    """Write report.md and results.csv into ``out_dir``; returns the report path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results_csv(inputs.records, out_dir / "results.csv")
    parts = [f"# {inputs.title}", ""]
    parts.append(f"Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {machine_description()}.")
    parts.append("")
    parts.append("## What was run")
    parts += [f"- **{key}**: {value}" for key, value in inputs.settings.items()]
    parts.append("")
    for split in sorted({r.split for r in inputs.records}):
        parts.append(f"## Results: {split}")
        parts.append("")
        parts.append(_markdown(*summary_table(inputs.records, split)))
        parts.append("")
    parts.append(
        "Metrics: per target view, then averaged per scene, then over scenes (upstream rule); mean ± standard "
        "deviation over seeds. PSNR/SSIM/LPIPS as upstream (PSNR clips, SSIM/LPIPS do not). Geometry columns: "
        "see `pmsplat.reproduce.evaluate` (scene units; lower is better)."
    )
    parts.append("")
    if inputs.paper_reference:
        parts.append("## The paper's reported figures (for comparison; not produced by this run)")
        parts += inputs.paper_reference
        parts.append("")
    if inputs.notes:
        parts.append("## Notes")
        parts += [f"- {note}" for note in inputs.notes]
        parts.append("")
    if inputs.figures:
        parts.append("## Figures")
        for name, caption in inputs.figures:
            parts += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    parts.append("## Timings")
    parts += [f"- {stage}: {seconds:.1f} s" for stage, seconds in inputs.timings.items()]
    parts.append(f"- total: {sum(inputs.timings.values()):.1f} s")
    parts.append("")
    parts.append("## Exact commands and configuration")
    parts.append("")
    parts.append("```")
    parts += inputs.commands
    parts.append("```")
    path = out_dir / "report.md"
    path.write_text("\n".join(parts) + "\n")
    return path
