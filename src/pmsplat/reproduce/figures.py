"""The reproduction figures: renders with error maps on the most boundary-heavy views, point
clouds (baseline vs PM-Loss vs teacher vs ground truth), and the training-loss curves."""

from __future__ import annotations

from pathlib import Path

import torch

from .protocol import Plan


def _samples(out: Path, run_name: str) -> list:
    path = out / "runs" / run_name / "samples.pt"
    return torch.load(path, weights_only=False) if path.is_file() else []


def _paired_sample(out: Path, split: str, seed: int):
    """The most boundary-heavy scene evaluated by both variants (same scene, same views)."""
    baseline = {s.scene: s for s in _samples(out, f"eval_baseline_seed{seed}_{split}")}
    for sample in _samples(out, f"eval_pmloss_seed{seed}_{split}"):
        if sample.scene in baseline:
            return baseline[sample.scene], sample
    return None


def _teacher_points(plan: Plan, sample) -> torch.Tensor | None:
    """The teacher's pointmap of the sample's context views, aligned onto the ground truth."""
    if sample.gt_points is None:
        return None
    from pmsplat.align import similarity_align
    from pmsplat.teachers.registry import build_teacher

    if plan.teacher != "synthetic":
        return None  # a real teacher would need its weights here; the panel says "not available"
    context = sample.context
    output = build_teacher({"name": plan.teacher})(context["image"], context)
    points = output.points.reshape(1, -1, 3).double()
    aligned, _ = similarity_align(points, sample.gt_points[None].double())
    return aligned[0].float()


def make_figures(plan: Plan, out: Path, results: dict) -> list[tuple[str, str]]:
    from pmsplat.evaluation import plot_loss_curves, plot_point_clouds, plot_render_comparison

    figures: list[tuple[str, str]] = []
    seed = plan.schedule.seeds[0]
    for split in plan.splits:
        pair = _paired_sample(out, split, seed)
        if pair is None:
            continue
        base, pm = pair
        name = f"renders_{split}.png"
        plot_render_comparison(base.target, base.render, pm.render, out / name)
        figures.append((name, f"{split}, scene {base.scene} (the most depth-edge-heavy evaluated scene), seed {seed}: "
                              "target | baseline | + PM-Loss | baseline error | PM-Loss error"))
        if split == "extrapolation" or len(plan.splits) == 1:
            name = "point_clouds.png"
            plot_point_clouds(base.means, pm.means, _teacher_points(plan, pm), base.gt_points, out / name)
            figures.append((name, f"context-view Gaussian centres of scene {base.scene}: baseline, + PM-Loss, the teacher "
                                  "(similarity-aligned to the ground truth) and the ground-truth surface"))
    curves = {}
    for variant in ("baseline", "pmloss"):
        history = results.get(f"{variant}_seed{seed}", {}).get("history") or []
        rows = [row for row in history if "loss/total" in row]
        if rows:
            curves[f"{variant}: total"] = ([r["step"] for r in rows], [r["loss/total"] for r in rows])
        pm_rows = [row for row in history if "loss/pm" in row]
        if pm_rows:
            curves[f"{variant}: PM-Loss term"] = ([r["step"] for r in pm_rows], [r["loss/pm"] for r in pm_rows])
    if curves:
        plot_loss_curves(curves, out / "loss_curves.png", title=f"fine-tuning loss, seed {seed}")
        figures.append(("loss_curves.png", "training loss of the two fine-tunes (weighted terms)"))
    return figures
