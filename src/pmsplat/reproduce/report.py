"""The reproduction report: ``report.md`` (table, configuration, command lines, timings, machine),
``results.csv`` (one row per variant x seed x split), ``per_scene.csv`` and the PNG figures.

Noise first: every row gives the mean ± standard deviation over the seeds, and every comparison
says whether the difference exceeds the seed spread, by one rule (:func:`compare`):

    a difference of means is called **beyond the seed spread** when
    ``|mean_b - mean_a| > std_a + std_b`` (sample standard deviations over the seeds, n - 1);

with one seed per side there is no spread and no verdict ("n/a"). With 2 seeds this is a coarse,
conservative rule (it asks for non-overlapping mean ± std intervals), not a significance test.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from pmsplat.evaluation.tables import markdown_table, write_csv

# Metric columns in report order: (key, label, higher is better; None: neither, e.g. the scale
# ratio, whose right value is 1).
METRICS: list[tuple[str, str, bool | None]] = [
    ("psnr", "PSNR", True),
    ("ssim", "SSIM", True),
    ("lpips", "LPIPS", False),
    ("psnr_boundary", "PSNR (depth edges)", True),
    ("depth_abs_rel", "depth AbsRel", False),
    ("p2s_mean", "point-to-surface", False),
    ("p2s_boundary", "point-to-surface (edges)", False),
    ("floating_fraction", "floating Gaussians", False),
    ("scale_ratio", "scale pred/GT", None),
]
# Where the PSNR is lost: (key, label).
PSNR_REGIONS: list[tuple[str, str]] = [
    ("psnr", "all pixels"),
    ("psnr_interior", "away from depth edges"),
    ("psnr_boundary", "depth-edge band"),
    ("psnr_covered", "seen by a context view"),
    ("psnr_uncovered", "outside every context view"),
    ("uncovered_fraction", "fraction outside"),
]
SPREAD_RULE = (
    "A difference of means is *beyond the seed spread* when |Δ| > std_a + std_b (sample standard deviations "
    "over the seeds); with one seed per side there is no verdict. With 2 seeds this is a coarse, conservative "
    "rule (non-overlapping mean ± std intervals), not a significance test."
)
COLLAPSE_NOTE = (
    "Collapse diagnostic: scale pred/GT = median distance of the predicted Gaussian centres (context views) to "
    "their centroid over the same for the ground-truth points; 1 is the right size, well below 1 means the "
    "prediction shrank (PM-Loss with the teacher aligned onto the prediction scales with the prediction's "
    "squared size)."
)


@dataclass
class RunRecord:
    """One evaluated run: variant ("baseline" / "pmloss" / an ablation variant), seed, split,
    averaged metrics."""

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
    recipe: list[tuple[str, str, str]] = field(default_factory=list)  # (key, baseline value, PM value)
    recipe_source: str = ""  # which two configs the recipe difference was derived from


def machine_description() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return (
        f"{platform.node() or 'host'} · {platform.machine()} · {os.cpu_count()} CPUs · torch {torch.__version__} "
        f"({torch.get_num_threads()} threads) · {device}"
    )


def spread(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample std, n) of the finite values; std is 0 for n = 1, both NaN for n = 0."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return math.nan, math.nan, 0
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std, len(values)


def _spread(values: Sequence[float]) -> tuple[float, float]:
    mean, std, _ = spread(values)
    return mean, std


@dataclass
class Comparison:
    """b - a over seeds: ``delta`` = mean_b - mean_a; ``beyond`` True/False by the spread rule,
    None when it cannot be decided (a side with fewer than 2 seeds, or no value)."""

    delta: float
    spread: float  # std_a + std_b
    beyond: bool | None
    better: str  # "b", "a" or "equal" (by the metric's direction), "" when delta is NaN or no direction


def compare(a: Sequence[float], b: Sequence[float], higher_is_better: bool | None = True) -> Comparison:
    """Compare the per-seed values of two variants with the rule of the module docstring."""
    mean_a, std_a, n_a = spread(a)
    mean_b, std_b, n_b = spread(b)
    delta = mean_b - mean_a
    if math.isnan(delta):
        return Comparison(delta, math.nan, None, "")
    limit = std_a + std_b
    beyond = abs(delta) > limit if min(n_a, n_b) >= 2 else None
    if higher_is_better is None:
        better = ""
    else:
        better = "equal" if delta == 0 else ("b" if (delta > 0) == higher_is_better else "a")
    return Comparison(delta, limit, beyond, better)


def verdict(comparison: Comparison) -> str:
    if comparison.beyond is None:
        return "n/a: one seed" if not math.isnan(comparison.delta) else "n/a"
    return "beyond seed spread" if comparison.beyond else "within seed spread"


def _cell(mean: float, std: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _values(records: list[RunRecord], variant: str, split: str, key: str) -> list[float]:
    return [r.metrics.get(key, math.nan) for r in records if r.variant == variant and r.split == split]


def summary_table(records: list[RunRecord], split: str) -> tuple[list[str], list[list[str]]]:
    """Markdown header + rows for one split: a row per variant (mean ± std over seeds) and a row
    with the PM-Loss minus baseline difference, which side it favours and whether it is beyond
    the seed spread (:func:`compare`)."""
    header = ["variant", "seeds"] + [label for _, label, _ in METRICS]
    rows = []
    present = []
    for variant in ("baseline", "pmloss"):
        chosen = [r for r in records if r.variant == variant and r.split == split]
        if not chosen:
            continue
        present.append(variant)
        cells = [variant, str(len(chosen))]
        for key, _, _ in METRICS:
            cells.append(_cell(*_spread(_values(records, variant, split, key))))
        rows.append(cells)
    if len(present) == 2:
        cells = ["Δ (PM − base)", ""]
        for key, _, higher in METRICS:
            result = compare(_values(records, "baseline", split, key), _values(records, "pmloss", split, key), higher)
            if math.isnan(result.delta):
                cells.append("n/a")
            else:
                side = {"b": "PM better; ", "a": "base better; ", "equal": "equal; ", "": ""}[result.better]
                cells.append(f"{result.delta:+.3f} ({side}{verdict(result)})")
        rows.append(cells)
    return header, rows


def regions_table(records: list[RunRecord], split: str, variants: Sequence[str] = ("baseline", "pmloss")) -> tuple[list[str], list[list[str]]]:
    """Where the PSNR is lost: PSNR over all pixels, away from / at depth edges, inside / outside
    the context views' frusta (mean ± std over seeds), per variant."""
    header = ["variant"] + [label for _, label in PSNR_REGIONS]
    rows = []
    for variant in variants:
        if not _values(records, variant, split, "psnr"):
            continue
        rows.append([variant] + [_cell(*_spread(_values(records, variant, split, key))) for key, _ in PSNR_REGIONS])
    return header, rows


def collapse_table(records: list[RunRecord]) -> tuple[list[str], list[list[str]]]:
    """Per run (variant, seed, split): predicted and ground-truth scale and their ratio."""
    header = ["variant", "seed", "split", "pred scale", "GT scale", "scale pred/GT"]
    rows = []
    for r in sorted(records, key=lambda r: (r.split, r.variant, r.seed)):
        values = [r.metrics.get(k, math.nan) for k in ("pred_scale", "gt_scale", "scale_ratio")]
        rows.append([r.variant, str(r.seed), r.split] + ["n/a" if math.isnan(v) else f"{v:.3f}" for v in values])
    return header, rows


def _table(table: tuple[list[str], list[list[str]]]) -> str:
    header, rows = table
    return markdown_table(rows, header)


def write_results_csv(records: list[RunRecord], path: Path) -> None:
    """``results.csv``: one row per run (variant, seed, split), the report's metrics first, then
    every other averaged column (sorted); NaN where a run lacks a column."""
    keys = [key for key, _, _ in METRICS]
    extra = sorted({k for r in records for k in r.metrics} - set(keys))
    rows = [
        {"variant": r.variant, "seed": r.seed, "split": r.split, **{k: r.metrics.get(k, math.nan) for k in keys + extra}}
        for r in records
    ]
    write_csv(rows, path, columns=["variant", "seed", "split"] + keys + extra)


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
    if inputs.recipe or inputs.recipe_source:
        parts.append("## Recipe: what differs between the two runs")
        parts.append("")
        if inputs.recipe_source:
            parts.append(inputs.recipe_source)
            parts.append("")
        if inputs.recipe:
            parts.append(markdown_table([[f"`{k}`", a, b] for k, a, b in inputs.recipe], ["key", "baseline", "+ PM-Loss"]))
        else:
            parts.append("(no difference found)")
        parts.append("")
    splits = sorted({r.split for r in inputs.records})
    for split in splits:
        parts.append(f"## Results: {split}")
        parts.append("")
        parts.append(_table(summary_table(inputs.records, split)))
        parts.append("")
    parts.append(
        "Metrics: per target view, then averaged per scene, then over scenes (upstream rule); mean ± standard "
        "deviation over seeds. PSNR/SSIM/LPIPS as upstream (PSNR clips, SSIM/LPIPS do not). Geometry columns: "
        "see `pmsplat.evaluation.scene_metrics` (scene units; lower is better). " + SPREAD_RULE
    )
    parts.append("")
    if any("psnr_uncovered" in r.metrics for r in inputs.records):
        parts.append("## Where the PSNR is lost")
        parts.append("")
        for split in splits:
            parts.append(f"**{split}**")
            parts.append("")
            parts.append(_table(regions_table(inputs.records, split)))
            parts.append("")
        parts.append(
            "PSNR over pixel subsets of the target views: away from / inside the band around ground-truth depth "
            "edges, and pixels whose surface point lies inside / outside every context view's frustum (occlusion "
            "ignored); the last column is the share of target pixels outside."
        )
        parts.append("")
    if any("scale_ratio" in r.metrics for r in inputs.records):
        parts.append("## Collapse diagnostic")
        parts.append("")
        parts.append(_table(collapse_table(inputs.records)))
        parts.append("")
        parts.append(COLLAPSE_NOTE)
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
