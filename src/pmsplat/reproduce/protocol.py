"""What ``pmsplat reproduce`` runs: the plan of training and evaluation runs per baseline and data.

The comparison mirrors the paper's protocol: one **base** model (the released checkpoint on real
data; a short baseline training on the synthetic benchmark), then two fine-tunes from it that
differ only in the loss — the baseline (``loss=[mse,lpips]``, the paper's
``ori_depthsplat_tuned``) and the baseline + PM-Loss (``loss=[mse,lpips,pm]``) — with the same seed,
schedule and data, for each seed; each fine-tune is evaluated on the interpolation and the
extrapolation (bound-aware) evaluation indices.

On the synthetic benchmark (the embedded default: no data, no GPU) every run uses the CPU presets
``+experiment=<baseline>_synthetic_cpu`` (tiny encoders, 64x64, no LPIPS: its VGG weights cannot be
downloaded here) and the synthetic teacher. With ``data=re10k|dl3dv`` the presets are the paper's
(``+experiment=pmloss_<baseline>_<data>`` and the matching ``<baseline>_<data>_finetune``), the
teacher is VGGT by default and the base is the official checkpoint given by ``base_checkpoint``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

BASELINES = ("mvsplat", "depthsplat")
DATASETS = ("synthetic", "re10k", "dl3dv")
TEACHERS = ("synthetic", "vggt", "dust3r", "da3", "cache")

# Evaluation index file names: synthetic (written by `pmsplat data synth`) and the published ones.
SYNTHETIC_SPLITS = {
    "interpolation": "evaluation_index_interpolation.json",
    "extrapolation": "evaluation_index_extrapolation.json",
}
REAL_SPLITS = {
    "re10k": {"interpolation": "evaluation_index_re10k.json", "extrapolation": "re10k_bound_aware.json"},
    "dl3dv": {"interpolation": "dl3dv_depthsplat_offical.json", "extrapolation": "dl3dv_bound_aware.json"},
}
# The paper's base checkpoints (upstream-facts §10), expected under checkpoints/ unless given.
OFFICIAL_BASES = {
    ("mvsplat", "re10k"): "checkpoints/re10k.ckpt",
    ("depthsplat", "dl3dv"): "checkpoints/depthsplat-gs-base-dl3dv-256x448-75cc0183.pth",
    ("depthsplat", "re10k"): "checkpoints/depthsplat-gs-base-dl3dv-256x448-75cc0183.pth",
}


@dataclass
class Schedule:
    """Steps of the base training and of each fine-tune, and the seeds of the fine-tunes."""

    base_steps: int
    finetune_steps: int
    seeds: tuple[int, ...]
    pm_weight: float
    max_eval_scenes: int | None = None


# CPU sizes: the whole synthetic comparison (1 base + 2 x 2 fine-tunes + 10 evaluations) in
# <= 20 minutes on 2 cores; the smoke schedule is for the test suite.
# DepthSplat's CPU preset (ViT-S, 37 M parameters) costs about 4x MVSplat's per step.
SYNTHETIC_SCHEDULES = {
    "default": {
        "mvsplat": Schedule(base_steps=800, finetune_steps=400, seeds=(0, 1), pm_weight=0.005),
        "depthsplat": Schedule(base_steps=240, finetune_steps=120, seeds=(0, 1), pm_weight=0.005),
    },
    "smoke": {
        baseline: Schedule(base_steps=2, finetune_steps=2, seeds=(0, 1), pm_weight=0.005, max_eval_scenes=1)
        for baseline in ("mvsplat", "depthsplat")
    },
}
PAPER_SCHEDULE = Schedule(base_steps=0, finetune_steps=100_001, seeds=(0,), pm_weight=0.005)


@dataclass
class RunSpec:
    """One training (``kind="train"``) or evaluation (``kind="evaluate"``) run."""

    name: str
    kind: str
    overrides: list[str]
    variant: str = "base"  # base | baseline | pmloss
    seed: int = 0
    split: str | None = None
    start_from: str | None = None  # name of the run whose checkpoint this one starts from / scores


@dataclass
class Plan:
    baseline: str
    data: str
    root: Path
    teacher: str
    schedule: Schedule
    runs: list[RunSpec] = field(default_factory=list)
    splits: dict[str, Path] = field(default_factory=dict)
    base_checkpoint: Path | None = None  # real data: the official checkpoint


def evaluation_overrides(index_path: Path | str, ground_truth: bool) -> list[str]:
    """Hydra overrides that turn a training config into the evaluation protocol on an index."""
    overrides = [
        "mode=test", "dataset/view_sampler=evaluation", f"dataset.view_sampler.index_path={index_path}",
        "data_loader.test.batch_size=1",
    ]
    if ground_truth:
        overrides += ["dataset.load_depth=true", "dataset.load_pointmap=true"]
    return overrides


def _experiments(baseline: str, data: str) -> tuple[str, str]:
    """(baseline experiment, PM-Loss experiment) presets."""
    if data == "synthetic":
        return f"+experiment={baseline}_synthetic_cpu", f"+experiment=pmloss_{baseline}_synthetic_cpu"
    return f"+experiment={baseline}_{data}_finetune", f"+experiment=pmloss_{baseline}_{data}"


def make_plan(
    baseline: str,
    data: str = "synthetic",
    root: Path | None = None,
    teacher: str | None = None,
    schedule: Schedule | None = None,
    gpus: int | None = None,
    base_checkpoint: Path | None = None,
    index_dir: Path | None = None,
    extra_overrides: list[str] | None = None,
) -> Plan:
    """The list of runs for a baseline on a dataset. Raises ValueError on a bad combination."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; choose one of {BASELINES}.")
    if data not in DATASETS:
        raise ValueError(f"unknown data {data!r}; choose one of {DATASETS}.")
    synthetic = data == "synthetic"
    teacher = teacher or ("synthetic" if synthetic else "vggt")
    if teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}; choose one of {TEACHERS}.")
    if teacher == "synthetic" and not synthetic:
        raise ValueError("teacher=synthetic needs ground-truth pointmaps; only data=synthetic has them.")
    root = Path(root) if root else Path("datasets") / data
    schedule = schedule or (SYNTHETIC_SCHEDULES["default"][baseline] if synthetic else PAPER_SCHEDULE)
    if synthetic:
        splits = {split: root / name for split, name in SYNTHETIC_SPLITS.items()}
    else:
        folder = Path(index_dir) if index_dir else Path("assets")
        splits = {split: folder / name for split, name in REAL_SPLITS[data].items()}
    plain, pm = _experiments(baseline, data)
    common = [f"dataset.roots=[{root}]"] + (extra_overrides or [])
    if gpus:
        common += ["trainer.accelerator=gpu", f"trainer.devices={gpus}"]
    pm_extra = [f"teacher={teacher}", f"loss.pm.weight={schedule.pm_weight}"]
    plan = Plan(baseline, data, root, teacher, schedule, splits=splits)
    runs: list[RunSpec] = []
    if synthetic:
        runs.append(RunSpec("base", "train", [plain, *common, f"trainer.max_steps={schedule.base_steps}", "seed=0"]))
        start = "base"
    else:
        plan.base_checkpoint = Path(base_checkpoint or OFFICIAL_BASES.get((baseline, data), "checkpoints/base.ckpt"))
        start = None
    for seed in schedule.seeds:
        for variant, preset, extra in (("baseline", plain, []), ("pmloss", pm, pm_extra)):
            name = f"{variant}_seed{seed}"
            overrides = [preset, *common, *extra, f"trainer.max_steps={schedule.finetune_steps}", f"seed={seed}",
                         f"data_loader.train.seed={1234 + seed}"]
            runs.append(RunSpec(name, "train", overrides, variant=variant, seed=seed, start_from=start))
    trained = [r for r in runs if r.kind == "train" and r.variant != "base"]
    for run in list(trained):
        for split, index_path in splits.items():
            overrides = [run.overrides[0], *common, *evaluation_overrides(index_path, ground_truth=synthetic)]
            runs.append(RunSpec(f"eval_{run.name}_{split}", "evaluate", overrides, run.variant, run.seed, split, run.name))
    plan.runs = runs
    return plan
