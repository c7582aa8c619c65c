"""The ablation's outputs: ``ablation.md`` (one table: every variant x split, mean ± std over seeds,
its PSNR and geometry gain over the matching baseline with the seed-spread verdict), ``ablation.csv``
(the same numbers, one row per variant x split), ``ablation_runs.csv`` (one row per run) and
``ablation.png`` (PSNR gain vs geometry gain per variant, one panel per split). The Markdown also
says where in the image the PSNR changes and how the PM term evolved during each fine-tune.

Gains are against the variant's reference (:attr:`AblationVariant.reference`: the baseline
fine-tuned for the same number of steps from the same base with the same seed and data order):

- PSNR gain = PSNR(variant) − PSNR(reference), dB;
- geometry gain = point-to-surface reduction, 100 · (p2s(reference) − p2s(variant)) / p2s(reference), %;

each as the mean over seeds of the per-seed (paired) differences, ± their std over seeds in the
figure. The verdicts use the report's rule (:func:`pmsplat.reproduce.report.compare`).
"""

from __future__ import annotations

import math
from pathlib import Path

from pmsplat.evaluation.tables import markdown_table, write_csv

from .protocol import AblationVariant, Plan
from .report import SPREAD_RULE, RunRecord, compare, machine_description, spread, verdict

# (key, label, higher is better)
ABLATION_METRICS: list[tuple[str, str, bool]] = [
    ("psnr", "PSNR", True),
    ("ssim", "SSIM", True),
    ("lpips", "LPIPS", False),
    ("psnr_boundary", "PSNR edges", True),
    ("depth_abs_rel", "depth AbsRel", False),
    ("p2s_mean", "point-to-surface", False),
    ("floating_fraction", "floaters", False),
    ("scale_ratio", "scale pred/GT", True),
]
REGION_KEYS = [("psnr_interior", "away from edges"), ("psnr_boundary", "edge band"),
               ("psnr_covered", "seen by context"), ("psnr_uncovered", "outside context")]


def _per_seed(records: list[RunRecord], variant: str, split: str, key: str) -> dict[int, float]:
    return {r.seed: r.metrics.get(key, math.nan) for r in records if r.variant == variant and r.split == split}


def paired_gain(records: list[RunRecord], variant: str, reference: str, split: str, key: str,
                relative: bool = False, higher_is_better: bool = True) -> tuple[float, float, int]:
    """Mean, std and count over the seeds both runs have of the per-seed gain of ``variant`` over
    ``reference`` in ``key``: the difference signed so that positive is better, or with
    ``relative`` the improvement in per cent of the reference value."""
    ours, theirs = _per_seed(records, variant, split, key), _per_seed(records, reference, split, key)
    gains = []
    for seed in sorted(set(ours) & set(theirs)):
        a, b = theirs[seed], ours[seed]
        if math.isnan(a) or math.isnan(b):
            continue
        gain = (b - a) if higher_is_better else (a - b)
        if relative:
            gain = 100.0 * gain / abs(a) if a != 0 else math.nan
        gains.append(gain)
    return spread(gains)


def ablation_rows(plan: Plan, records: list[RunRecord]) -> list[dict]:
    """One dict per variant x split: metrics mean/std over seeds, the gains and verdicts."""
    rows = []
    steps = {v.name: plan.schedule.finetune_steps * v.length for v in plan.variants}
    for split in plan.splits:
        for variant in plan.variants:
            seeds = sorted(_per_seed(records, variant.name, split, "psnr"))
            if not seeds:
                continue
            row: dict = {"variant": variant.name, "split": split, "steps": steps[variant.name], "seeds": len(seeds),
                         "reference": variant.reference or ""}
            extra = [(k, "", True) for k, _ in REGION_KEYS if k != "psnr_boundary"] + [("uncovered_fraction", "", False)]
            for key, _, _ in ABLATION_METRICS + extra:
                mean, std, _ = spread(list(_per_seed(records, variant.name, split, key).values()))
                row[f"{key}_mean"], row[f"{key}_std"] = mean, std
            if variant.reference:
                ref = variant.reference
                psnr = compare(list(_per_seed(records, ref, split, "psnr").values()),
                               list(_per_seed(records, variant.name, split, "psnr").values()), True)
                p2s = compare(list(_per_seed(records, ref, split, "p2s_mean").values()),
                              list(_per_seed(records, variant.name, split, "p2s_mean").values()), False)
                row["psnr_gain_mean"], row["psnr_gain_std"], _ = paired_gain(records, variant.name, ref, split, "psnr")
                row["psnr_verdict"] = verdict(psnr)
                row["geometry_gain_pct_mean"], row["geometry_gain_pct_std"], _ = paired_gain(
                    records, variant.name, ref, split, "p2s_mean", relative=True, higher_is_better=False)
                row["p2s_verdict"] = verdict(p2s)
                for key, _ in REGION_KEYS:
                    row[f"{key}_gain_mean"], _, _ = paired_gain(records, variant.name, ref, split, key)
            rows.append(row)
    return rows


def _fmt(mean: float, std: float | None = None, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _signed(mean: float, digits: int) -> str:
    return "n/a" if mean is None or math.isnan(mean) else f"{mean:+.{digits}f}"


def ablation_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "split", "steps", "seeds"] + [label for _, label, _ in ABLATION_METRICS] + [
        "PSNR gain (dB)", "geometry gain (p2s, %)"]
    body = []
    for row in rows:
        cells = [row["variant"], row["split"], str(row["steps"]), str(row["seeds"])]
        cells += [_fmt(row[f"{key}_mean"], row[f"{key}_std"]) for key, _, _ in ABLATION_METRICS]
        if row["reference"]:
            cells.append(f"{_signed(row['psnr_gain_mean'], 2)} ({row['psnr_verdict']})")
            cells.append(f"{_signed(row['geometry_gain_pct_mean'], 1)} ({row['p2s_verdict']})")
        else:
            cells += ["reference", "reference"]
        body.append(cells)
    return header, body


def regions_gain_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "split"] + [f"ΔPSNR {label}" for _, label in REGION_KEYS] + ["ΔPSNR all", "outside fraction"]
    body = []
    for row in rows:
        if not row["reference"]:
            continue
        cells = [row["variant"], row["split"]] + [_signed(row.get(f"{key}_gain_mean", math.nan), 2) for key, _ in REGION_KEYS]
        cells += [_signed(row["psnr_gain_mean"], 2), _fmt(row.get("uncovered_fraction_mean", math.nan), digits=2)]
        body.append(cells)
    return header, body


PM_RAW_KEY = "loss/pm/raw_mean"  # the Chamfer distance before the weight, logged by the PM-Loss term


def pm_term_rows(plan: Plan, results: dict[str, dict]) -> list[dict]:
    """How the PM term behaved during each PM-Loss fine-tune, from the training histories: the raw
    Chamfer distance (``loss/pm/raw_mean``, before the weight; scale-invariant variants log it over
    the prediction's squared scale) averaged over the first and the last tenth of the steps where
    it was logged, their ratio, and the weighted PM term over the photometric loss (total − PM) in
    the last tenth. Mean ± std over seeds; runs without a logged PM term are left out."""
    rows = []
    for variant in plan.variants:
        if not variant.pm:
            continue
        start, end, ratio, share = [], [], [], []
        for spec in plan.runs:
            if spec.kind != "train" or spec.variant != variant.name:
                continue
            history = [r for r in results.get(spec.name, {}).get("history") or []
                       if PM_RAW_KEY in r and "loss/pm" in r and "loss/total" in r]
            if not history:
                continue
            tenth = max(1, len(history) // 10)
            first, last = history[:tenth], history[-tenth:]
            a = math.fsum(r[PM_RAW_KEY] for r in first) / len(first)
            b = math.fsum(r[PM_RAW_KEY] for r in last) / len(last)
            pm = math.fsum(r["loss/pm"] for r in last) / len(last)
            photometric = math.fsum(r["loss/total"] - r["loss/pm"] for r in last) / len(last)
            start.append(a)
            end.append(b)
            ratio.append(b / a if a > 0 else math.nan)
            share.append(pm / photometric if photometric > 0 else math.nan)
        if start:
            rows.append({"variant": variant.name, "seeds": len(start), "raw_start": spread(start)[:2],
                         "raw_end": spread(end)[:2], "end_over_start": spread(ratio)[:2],
                         "pm_over_photometric": spread(share)[:2]})
    return rows


def pm_term_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "seeds", "raw Chamfer, first tenth", "raw Chamfer, last tenth", "last / first",
              "PM term / photometric loss, last tenth"]
    body = [[row["variant"], str(row["seeds"]), _fmt(*row["raw_start"]), _fmt(*row["raw_end"]),
             _fmt(*row["end_over_start"], digits=2), _fmt(*row["pm_over_photometric"], digits=2)] for row in rows]
    return header, body


def _variant_lines(plan: Plan) -> list[list[str]]:
    lines = []
    for variant in plan.variants:
        steps = plan.schedule.finetune_steps * variant.length
        extra = list(variant.overrides)
        if variant.pm:
            weight = plan.schedule.pm_weight if variant.pm_weight is None else variant.pm_weight
            extra = [f"loss.pm.weight={weight}"] + extra
        preset = f"pmloss_{plan.baseline}_synthetic_cpu" if variant.pm else f"{plan.baseline}_synthetic_cpu"
        lines.append([variant.name, variant.description, str(steps), f"`{preset}` " + " ".join(f"`{o}`" for o in extra),
                      variant.reference or "—"])
    return lines


def cut_note(plan: Plan, every: list[AblationVariant]) -> str:
    """What was cut to fit the time budget, from the plan itself."""
    from .protocol import estimate_seconds

    s = plan.schedule
    chosen = {v.name for v in plan.variants}
    skipped = [v.name for v in every if v.name not in chosen]
    estimate = estimate_seconds(plan)
    long_cut = "" if s.long_factor >= 4 else " rather than 4x: it is the comparison's own fine-tune, reused"
    text = (
        "The default MVSplat schedule is sized to fit in 60 minutes on 2 CPU cores; to fit, every short variant is "
        f"fine-tuned {s.finetune_steps} steps from {_base_words(plan)} (the long variant "
        f"{s.long_factor * s.finetune_steps} steps, {s.long_factor}x{long_cut}), {len(s.seeds)} seeds each, with one "
        "warm-up form (PM-Loss off for "
        "the first half, no ramp), one robust kernel (Huber; the trimmed mean is not run), and teacher quality only "
        "through the synthetic teacher's degradations."
    )
    if estimate is not None:
        text += f" This plan's estimated time from scratch on 2 quiet CPU cores: {estimate / 60:.0f} min."
    if skipped:
        text += f" Not run in this call (`--variants`): {', '.join(skipped)}."
    return text


def _base_words(plan: Plan, long: bool = False) -> str:
    """The base every variant starts from: the shipped synthetic base or a base trained first."""
    if plan.base_sha256 is not None and not plan.from_scratch:
        from .bases import shipped_base_summary

        return f"the shipped base {shipped_base_summary(plan.base_checkpoint, plan.base_sha256)}" if long else "the same shipped base"
    if plan.base_checkpoint is not None:
        return f"the base checkpoint `{plan.base_checkpoint}`" if long else "the same base checkpoint"
    steps = plan.schedule.base_steps
    return f"{steps} steps of the baseline from scratch (seed 0)" if long else f"the same {steps}-step base"


def write_ablation(plan: Plan, out: Path, results: dict[str, dict], timings: dict[str, float]) -> Path:
    """ablation.md / .csv / _runs.csv / .png for an ablation plan; returns the Markdown path."""
    from pmsplat.evaluation.figures import GainPoint, plot_gain_scatter

    from .protocol import ablation_variants

    records = [
        RunRecord(spec.variant, spec.seed, spec.split, dict(results[spec.name]["averages"]))
        for spec in plan.runs if spec.kind == "evaluate"
    ]
    rows = ablation_rows(plan, records)
    write_csv(rows, out / "ablation.csv")
    run_rows = [{"variant": r.variant, "seed": r.seed, "split": r.split, **r.metrics} for r in records]
    write_csv(run_rows, out / "ablation_runs.csv")
    panels = {}
    for split in plan.splits:
        panels[split] = [
            GainPoint(row["variant"], row["geometry_gain_pct_mean"], row["geometry_gain_pct_std"],
                      row["psnr_gain_mean"], row["psnr_gain_std"])
            for row in rows if row["split"] == split and row["reference"]
        ]
    figure = None
    if any(panels.values()):
        figure = plot_gain_scatter(
            {f"{split} (vs the same-length baseline)": points for split, points in panels.items()}, out / "ablation.png",
            xlabel="geometry gain: point-to-surface reduction (%)", ylabel="PSNR gain (dB)",
            title=f"PM-Loss variants on {plan.baseline}, synthetic benchmark: mean ± std over seeds {list(plan.schedule.seeds)}",
        )
    s = plan.schedule
    parts = [f"# PM-Loss ablation: {plan.baseline} on the synthetic benchmark", ""]
    parts.append(f"Machine: {machine_description()}.")
    parts.append("")
    parts.append(
        f"Base: {_base_words(plan, long=True)}. Every variant is fine-tuned from it per seed "
        f"{list(s.seeds)} (same seed, data order and start for all variants), then evaluated on "
        + ", ".join(f"{split} (`{path}`)" for split, path in plan.splits.items())
        + (f", first {s.max_eval_scenes} scene(s) only" if s.max_eval_scenes else "") + "."
    )
    parts.append("")
    parts.append(cut_note(plan, ablation_variants(s)))
    parts.append("")
    parts.append("## Variants")
    parts.append("")
    parts.append(markdown_table(_variant_lines(plan), ["variant", "what", "steps", "preset + overrides", "compared with"]))
    parts.append("")
    parts.append("## Results")
    parts.append("")
    header, body = ablation_table(rows)
    parts.append(markdown_table(body, header))
    parts.append("")
    parts.append(
        "Mean ± std over seeds. PSNR gain: PSNR minus the reference's (same steps, same seed), dB; geometry gain: "
        "point-to-surface reduction relative to the reference, % (positive = better for both). "
        + SPREAD_RULE + " scale pred/GT is the collapse diagnostic (1 = right size)."
    )
    parts.append("")
    parts.append("## Where the PSNR changes")
    parts.append("")
    header, body = regions_gain_table(rows)
    parts.append(markdown_table(body, header))
    parts.append("")
    parts.append(
        "ΔPSNR (dB, vs the reference, mean over seeds of the paired differences) over pixel subsets of the target "
        "views: away from / inside the band around the ground-truth depth edges, and pixels whose surface point "
        "lies inside / outside every context view's frustum (the last column is the share of pixels outside)."
    )
    parts.append("")
    pm_rows = pm_term_rows(plan, results)
    if pm_rows:
        parts += ["## The PM term during fine-tuning", ""]
        header, body = pm_term_table(pm_rows)
        parts += [markdown_table(body, header), ""]
        parts.append(
            "From the training histories: the raw Chamfer distance (before the weight; squared scene units of the "
            "prediction, divided by the prediction's squared scale for the scale-invariant variant, through the kernel "
            "for the robust one) averaged over the "
            "first and the last tenth of the steps where the PM term was on, and the weighted PM term over the "
            "photometric loss (MSE + LPIPS) in the last tenth. A ratio last / first near 1 means the fine-tune did "
            "not reduce the PM term; a PM term / photometric above 1 means the PM term is the larger part of the loss.")
        parts.append("")
    if figure is not None:
        parts += ["## Figure", "", "![PSNR gain vs geometry gain](ablation.png)", "",
                  "*PSNR gain vs geometry gain per variant (error bars: std over seeds of the paired gains); "
                  "upper right = better on both.*", ""]
    parts.append("## Timings")
    train = sum(v for k, v in timings.items() if not k.startswith("eval_"))
    evaluation = sum(v for k, v in timings.items() if k.startswith("eval_"))
    parts.append(f"- training (incl. the base and data generation): {train / 60:.1f} min; evaluation: {evaluation / 60:.1f} min; "
                 f"total {(train + evaluation) / 60:.1f} min (stages reused from earlier calls count with their "
                 "original time).")
    parts.append("")
    path = out / "ablation.md"
    path.write_text("\n".join(parts) + "\n")
    return path
