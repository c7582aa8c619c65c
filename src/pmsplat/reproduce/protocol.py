"""What ``pmsplat reproduce`` runs: the plan of training and evaluation runs per baseline and data.

The comparison mirrors the paper's protocol: one **base** model (the released checkpoint on real
data; a short baseline training on the synthetic benchmark), then two fine-tunes from it that
differ only in the loss — the baseline (``loss=[mse,lpips]``, the paper's
``ori_depthsplat_tuned``) and the baseline + PM-Loss (``loss=[mse,lpips,pm]``) — with the same seed,
schedule and data, for each seed; each fine-tune is evaluated on the interpolation and the
extrapolation (bound-aware) evaluation indices.

On the synthetic benchmark (the embedded default: no data, no GPU) every run uses the CPU presets
``+experiment=<baseline>_synthetic_cpu`` / ``+experiment=pmloss_<baseline>_synthetic_cpu`` (tiny
encoders, 64x64, the paper's photometric loss) and the synthetic teacher. The plan adds no loss
override: the recipe is the presets' (for DepthSplat the PM preset carries the PM-Loss fork's
settings, the baseline preset DepthSplat's released ones, as in the paper's ``pmloss`` vs
``ori_depthsplat_tuned`` pair); the report lists the keys in which the two resolved configs differ.
With ``data=re10k|dl3dv`` the presets are the paper's (``+experiment=pmloss_<baseline>_<data>`` and
the matching ``<baseline>_<data>_finetune``), the teacher is VGGT by default and the base is the
official checkpoint given by ``base_checkpoint``.

:func:`make_ablation_plan` (``pmsplat reproduce --ablation``, synthetic data only) adds PM-Loss
variants fine-tuned from the same base: see :data:`ABLATION_VARIANTS` and :func:`ablation_variants`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from pmsplat.errors import InputError
from pmsplat.loss import PM_WEIGHT

from .bases import checked_base

DEFAULT_REAL_TEACHER = "vggt"  # the paper's teacher (synthetic data: the synthetic teacher)

# Evaluation index file names: synthetic (written by `pmsplat data synth`) and the published ones.
SYNTHETIC_SPLITS = {
    "interpolation": "evaluation_index_interpolation.json",
    "extrapolation": "evaluation_index_extrapolation.json",
}
REAL_SPLITS = {
    "re10k": {"interpolation": "evaluation_index_re10k.json", "extrapolation": "re10k_bound_aware.json"},
    "dl3dv": {"interpolation": "dl3dv_depthsplat_offical.json", "extrapolation": "dl3dv_bound_aware.json"},
}
DATASETS = ("synthetic", *REAL_SPLITS)


def baselines() -> list[str]:
    """The baselines a plan can use: the config tree's ``baseline/`` options (their packages
    register their encoders in ``splatcore.registry``)."""
    from splatcore.config_dir import available_baselines

    return available_baselines()


def teachers() -> list[str]:
    """The teachers a plan can use: registered teachers with a ``config/teacher/<name>.yaml``."""
    from pmsplat.teachers.registry import configurable_teachers

    return configurable_teachers()
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
    pm_weight: float = PM_WEIGHT
    max_eval_scenes: int | None = None


class EveryBaseline(dict):
    """A schedule table that gives the same schedule for every baseline (the smoke sizes)."""

    def __init__(self, schedule) -> None:
        super().__init__()
        self.schedule = schedule

    def __missing__(self, baseline: str):
        return self.schedule


# CPU sizes of the synthetic comparison. By default both fine-tunes of every seed start from the
# shipped synthetic base (checkpoints/synthetic/, `make pretrain-synthetic`; the paper's protocol:
# fine-tune a converged checkpoint with and without PM-Loss), so ``base_steps`` is 0. MVSplat's
# default (3 seeds x 2 fine-tunes + 12 evaluations) is sized to stay under 15 min on 2 quiet cores
# with the paper's photometric loss (`--dry-run` prints the estimate from CPU_COSTS); the smoke
# schedule is for the test suite. DepthSplat's CPU preset costs about 2-4x MVSplat's per step.
SYNTHETIC_SCHEDULES = {
    "default": {
        "mvsplat": Schedule(base_steps=0, finetune_steps=200, seeds=(0, 1, 2)),
        "depthsplat": Schedule(base_steps=0, finetune_steps=100, seeds=(0, 1, 2)),
    },
    # A 3x longer fine-tune (MVSplat ~35 min on 2 quiet cores).
    "long": {
        "mvsplat": Schedule(base_steps=0, finetune_steps=600, seeds=(0, 1, 2)),
        "depthsplat": Schedule(base_steps=0, finetune_steps=300, seeds=(0, 1, 2)),
    },
    "smoke": EveryBaseline(Schedule(base_steps=0, finetune_steps=2, seeds=(0, 1), max_eval_scenes=1)),
}
# ``--from-scratch`` (the pipeline before the shipped bases): a short base of ``base_steps`` is
# trained first, the fine-tunes start from it at the presets' learning rate.
SCRATCH_SCHEDULES = {
    "default": {
        "mvsplat": Schedule(base_steps=480, finetune_steps=240, seeds=(0, 1)),
        "depthsplat": Schedule(base_steps=240, finetune_steps=120, seeds=(0, 1)),
    },
    "long": {
        "mvsplat": Schedule(base_steps=600, finetune_steps=300, seeds=(0, 1)),
        "depthsplat": Schedule(base_steps=300, finetune_steps=150, seeds=(0, 1)),
    },
    "smoke": EveryBaseline(Schedule(base_steps=2, finetune_steps=2, seeds=(0, 1), max_eval_scenes=1)),
}


def synthetic_schedule(name: str, baseline: str, from_scratch: bool = False) -> Schedule:
    """The named synthetic schedule (``default``, ``long``, ``smoke``) of ``baseline``."""
    return (SCRATCH_SCHEDULES if from_scratch else SYNTHETIC_SCHEDULES)[name][baseline]


# The fine-tunes' peak learning rate from a shipped base (both variants): upstream MVSplat's 2e-4,
# a fifth of the CPU presets' pretraining lr (1e-3), as a fine-tune of a converged model.
FINETUNE_LR = 2.0e-4
PAPER_SCHEDULE = Schedule(base_steps=0, finetune_steps=100_001, seeds=(0,))


@dataclass
class RunSpec:
    """One training (``kind="train"``) or evaluation (``kind="evaluate"``) run."""

    name: str
    kind: str
    overrides: list[str]
    variant: str = "base"  # base | baseline | pmloss (main comparison) | an ablation variant name
    seed: int = 0
    split: str | None = None
    start_from: str | None = None  # name of the run whose checkpoint this one starts from / scores


@dataclass
class AblationSchedule:
    """Sizes of ``pmsplat reproduce --ablation``: the base, the (short) fine-tune of every variant,
    the factor of the long fine-tune, the seeds and the paper's PM-Loss weight."""

    base_steps: int
    finetune_steps: int
    long_factor: int
    seeds: tuple[int, ...]
    pm_weight: float = PM_WEIGHT
    max_eval_scenes: int | None = None

    def __post_init__(self) -> None:
        if self.finetune_steps < 2 or self.long_factor < 1 or len(self.seeds) < 1:
            raise ValueError("AblationSchedule needs finetune_steps >= 2, long_factor >= 1 and at least one seed.")


@dataclass(frozen=True)
class AblationVariant:
    """One row of the ablation: ``pm`` selects the PM-Loss preset (else the baseline preset),
    ``overrides`` are added to it, ``pm_weight`` replaces the schedule's PM-Loss weight,
    ``length`` multiplies the fine-tune steps and ``reference`` names the variant it is compared
    with (same length, same seed)."""

    name: str
    description: str
    pm: bool
    overrides: tuple[str, ...] = ()
    length: int = 1
    reference: str | None = "baseline"
    pm_weight: float | None = None


@dataclass
class Plan:
    baseline: str
    data: str
    root: Path
    teacher: str
    schedule: Schedule | AblationSchedule
    runs: list[RunSpec] = field(default_factory=list)
    splits: dict[str, Path] = field(default_factory=dict)
    base_checkpoint: Path | None = None  # the official checkpoint (real data) or the shipped synthetic base
    base_sha256: str | None = None  # the shipped synthetic base's sha256 (its identity for resume)
    from_scratch: bool = False  # synthetic: a short base is trained first instead of the shipped one
    variants: list[AblationVariant] = field(default_factory=list)  # ablation plans only
    run_names: dict[tuple[str, int], str] = field(default_factory=dict)  # (variant, seed) -> train run


def evaluation_overrides(index_path: Path | str, ground_truth: bool) -> list[str]:
    """Hydra overrides that turn a training config into the evaluation protocol on an index."""
    from splatcore.overrides import path_override

    overrides = [
        "mode=test", "dataset/view_sampler=evaluation", path_override("dataset.view_sampler.index_path", index_path),
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
    from_scratch: bool = False,
) -> Plan:
    """The list of runs for a baseline on a dataset. Raises InputError on a bad combination.

    Synthetic data: every fine-tune starts from the shipped base (:mod:`pmsplat.reproduce.bases`;
    a missing or corrupt one is a DataError naming ``make pretrain-synthetic``), or, with
    ``from_scratch``, from a base of ``schedule.base_steps`` trained first."""
    if baseline not in baselines():
        raise InputError(f"unknown baseline {baseline!r}; choose one of {tuple(baselines())}.")
    if data not in DATASETS:
        raise InputError(f"unknown data {data!r}; choose one of {DATASETS}.")
    synthetic = data == "synthetic"
    teacher = teacher or ("synthetic" if synthetic else DEFAULT_REAL_TEACHER)
    if teacher not in teachers():
        raise InputError(f"unknown teacher {teacher!r}; choose one of {tuple(teachers())}.")
    from pmsplat.teachers.registry import TEACHERS

    if TEACHERS[teacher].needs_pointmap and not synthetic:
        raise InputError(f"teacher={teacher} needs ground-truth pointmaps; only data=synthetic has them.")
    root = Path(root) if root else Path("datasets") / data
    schedule = schedule or (synthetic_schedule("default", baseline, from_scratch) if synthetic else PAPER_SCHEDULE)
    if synthetic:
        splits = {split: root / name for split, name in SYNTHETIC_SPLITS.items()}
    else:
        folder = Path(index_dir) if index_dir else Path("assets")
        splits = {split: folder / name for split, name in REAL_SPLITS[data].items()}
    plain, pm = _experiments(baseline, data)
    common = _common_overrides(root, extra_overrides, gpus)
    plan = Plan(baseline, data, root, teacher, schedule, splits=splits, from_scratch=synthetic and from_scratch)
    runs: list[RunSpec] = []
    if synthetic and from_scratch:
        runs.append(_base_run(plain, common, schedule.base_steps))
        start = "base"
    elif synthetic:
        plan.base_checkpoint, record = checked_base(baseline)
        plan.base_sha256 = record["sha256"]
        start = None
    else:
        plan.base_checkpoint = Path(base_checkpoint or OFFICIAL_BASES.get((baseline, data), "checkpoints/base.ckpt"))
        start = None
    tune = _finetune_lr(synthetic and not from_scratch)
    for seed in schedule.seeds:
        for variant, preset, extra in (("baseline", plain, tune), ("pmloss", pm, [*_pm_overrides(teacher, schedule.pm_weight), *tune])):
            name = f"{variant}_seed{seed}"
            runs.append(RunSpec(name, "train", _finetune_overrides(preset, common, extra, schedule.finetune_steps, seed),
                                variant=variant, seed=seed, start_from=start))
            plan.run_names[(variant, seed)] = name
    runs += _evaluations(runs, common, splits, synthetic)
    plan.runs = runs
    return plan


def _common_overrides(root: Path, extra_overrides: list[str] | None, gpus: int | None) -> list[str]:
    from splatcore.overrides import list_override

    common = [list_override("dataset.roots", [root])] + list(extra_overrides or [])
    if gpus:
        common += ["trainer.accelerator=gpu", f"trainer.devices={gpus}"]
    return common


def _finetune_lr(from_shipped_base: bool) -> list[str]:
    """The fine-tunes' learning rate override: :data:`FINETUNE_LR` from a shipped synthetic base
    (the CPU presets' 1e-3 is a pretraining lr); none otherwise (the real-data presets carry
    their own, ``--from-scratch`` keeps the presets')."""
    return [f"optimizer.lr={FINETUNE_LR}"] if from_shipped_base else []


def _base_run(preset: str, common: list[str], steps: int) -> RunSpec:
    return RunSpec("base", "train", [preset, *common, f"trainer.max_steps={steps}", "seed=0"])


def _pm_overrides(teacher: str, weight: float) -> list[str]:
    return [f"teacher={teacher}", f"loss.pm.weight={weight}"]


def _finetune_overrides(preset: str, common: list[str], extra: list[str], steps: int, seed: int) -> list[str]:
    """Same data order (``data_loader.train.seed``), start, schedule and seed for every variant."""
    return [preset, *common, *extra, f"trainer.max_steps={steps}", f"seed={seed}", f"data_loader.train.seed={1234 + seed}"]


def _evaluations(runs: list[RunSpec], common: list[str], splits: dict[str, Path], ground_truth: bool) -> list[RunSpec]:
    """One evaluation per fine-tune and split (the base is not evaluated)."""
    out = []
    for run in runs:
        if run.kind != "train" or run.variant == "base":
            continue
        for split, index_path in splits.items():
            overrides = [run.overrides[0], *common, *evaluation_overrides(index_path, ground_truth=ground_truth)]
            out.append(RunSpec(f"eval_{run.name}_{split}", "evaluate", overrides, run.variant, run.seed, split, run.name))
    return out


# ----------------------------------------------------------------------------------- ablation

# Synthetic-teacher knobs that degrade the ground truth (pmsplat.teachers.synthetic): 0 = a perfect
# teacher (an exact similarity copy of the ground truth), the defaults, or twice the defaults.
TEACHER_DEGRADATIONS = ("edge_blur_px", "distortion", "view_misalignment_deg", "view_misalignment_shift", "noise_std")

# Sized for <= 60 min on 2 CPU cores for MVSplat (`--dry-run` prints the estimate from the
# measured CPU_COSTS). The long variant (2 x 100 = 200 steps from the shipped base; from scratch
# 3 x 80 = 240) is the main comparison's fine-tune, so its runs (and the base) are shared with
# `make reproduce-mvsplat`. Cut to fit: the short fine-tunes are half (a third) of the comparison's.
def sharing_ablation(main: Schedule, finetune_steps: int) -> AblationSchedule:
    """An ablation schedule that shares the comparison's base (same steps and seeds) and whose long
    variant is the comparison's fine-tune (``long_factor * finetune_steps == main.finetune_steps``),
    so those runs are reused, not redone; the short fine-tunes take ``finetune_steps``."""
    if main.finetune_steps % finetune_steps:
        raise ValueError(f"finetune_steps={finetune_steps} must divide the comparison's {main.finetune_steps}.")
    return AblationSchedule(base_steps=main.base_steps, finetune_steps=finetune_steps,
                            long_factor=main.finetune_steps // finetune_steps, seeds=main.seeds)


ABLATION_SCHEDULES = {
    "default": {
        "mvsplat": sharing_ablation(SYNTHETIC_SCHEDULES["default"]["mvsplat"], finetune_steps=100),
        "depthsplat": sharing_ablation(SYNTHETIC_SCHEDULES["default"]["depthsplat"], finetune_steps=50),
    },
    "long": {
        "mvsplat": sharing_ablation(SYNTHETIC_SCHEDULES["long"]["mvsplat"], finetune_steps=200),
        "depthsplat": sharing_ablation(SYNTHETIC_SCHEDULES["long"]["depthsplat"], finetune_steps=100),
    },
    "smoke": EveryBaseline(AblationSchedule(base_steps=0, finetune_steps=2, long_factor=2, seeds=(0, 1), max_eval_scenes=1)),
}
SCRATCH_ABLATION_SCHEDULES = {
    "default": {
        "mvsplat": sharing_ablation(SCRATCH_SCHEDULES["default"]["mvsplat"], finetune_steps=80),
        "depthsplat": sharing_ablation(SCRATCH_SCHEDULES["default"]["depthsplat"], finetune_steps=30),
    },
    "long": {
        "mvsplat": sharing_ablation(SCRATCH_SCHEDULES["long"]["mvsplat"], finetune_steps=100),
        "depthsplat": sharing_ablation(SCRATCH_SCHEDULES["long"]["depthsplat"], finetune_steps=50),
    },
    "smoke": EveryBaseline(AblationSchedule(base_steps=1, finetune_steps=2, long_factor=2, seeds=(0, 1), max_eval_scenes=1)),
}


def ablation_schedule(name: str, baseline: str, from_scratch: bool = False) -> AblationSchedule:
    """The named ablation schedule of ``baseline`` (sharing the comparison's runs of that name)."""
    return (SCRATCH_ABLATION_SCHEDULES if from_scratch else ABLATION_SCHEDULES)[name][baseline]


def ablation_variants(schedule: AblationSchedule) -> list[AblationVariant]:
    """The ablation's variants, in table order. Values derived from the schedule and from the
    synthetic teacher's defaults (never restated here)."""
    from pmsplat.teachers.synthetic import SyntheticTeacherCfg

    defaults = SyntheticTeacherCfg()
    knobs = {f.name for f in fields(SyntheticTeacherCfg)}
    missing = [k for k in TEACHER_DEGRADATIONS if k not in knobs]
    if missing:
        raise ValueError(f"the synthetic teacher has no knob(s) {missing}; update TEACHER_DEGRADATIONS.")
    perfect = tuple(f"teacher.{k}=0" for k in TEACHER_DEGRADATIONS)
    doubled = tuple(f"teacher.{k}={2 * getattr(defaults, k)}" for k in TEACHER_DEGRADATIONS)
    w = schedule.pm_weight
    warm = schedule.finetune_steps // 2
    long = schedule.long_factor
    return [
        AblationVariant("baseline", "no PM-Loss (the reference of every short variant)", pm=False, reference=None),
        AblationVariant("pmloss", f"PM-Loss, paper defaults (weight {w}, synthetic teacher defaults)", pm=True),
        AblationVariant("weight_0.001", "PM-Loss weight 0.001", pm=True, pm_weight=0.001),
        AblationVariant("weight_0.02", "PM-Loss weight 0.02", pm=True, pm_weight=0.02),
        AblationVariant("warmup", f"PM-Loss off for the first {warm} of {schedule.finetune_steps} steps",
                        pm=True, overrides=(f"loss.pm.apply_after_step={warm}",)),
        AblationVariant("confidence", "teacher-confidence weighting", pm=True, overrides=("loss.pm.confidence_weighting=true",)),
        AblationVariant("huber", "robust: Huber on the distance (delta 0.1 scene units)", pm=True, overrides=("loss.pm.robust=huber",)),
        AblationVariant("bidirectional", "bidirectional Chamfer", pm=True, overrides=("loss.pm.bidirectional=true",)),
        AblationVariant("stop_gradient", "no gradient through the alignment", pm=True,
                        overrides=("loss.pm.stop_gradient_alignment=true",)),
        AblationVariant("scale_invariant", "scale-invariant PM-Loss (distances over the prediction's scale)", pm=True,
                        overrides=("loss.pm.scale_invariant=true",)),
        # The normalised distance is ~40x smaller than the raw one on the synthetic benchmark (the
        # ablation report's PM-term table), so at the paper's weight the scale-invariant term is
        # nearly off; 0.2 = 40 x 0.005 starts it at about the default term's size.
        AblationVariant("scale_invariant_0.2", "scale-invariant PM-Loss at weight 0.2 (its term starts about as large "
                        "as the default's)", pm=True, pm_weight=0.2, overrides=("loss.pm.scale_invariant=true",)),
        AblationVariant("teacher_perfect", "synthetic teacher without degradations (exact up to a similarity)", pm=True,
                        overrides=perfect),
        AblationVariant("teacher_doubled", "synthetic teacher with every degradation doubled", pm=True, overrides=doubled),
        AblationVariant(f"baseline_x{long}", f"no PM-Loss, {long}x longer fine-tune", pm=False, length=long, reference=None),
        AblationVariant(f"pmloss_x{long}", f"PM-Loss paper defaults, {long}x longer fine-tune", pm=True, length=long,
                        reference=f"baseline_x{long}"),
    ]


def make_ablation_plan(
    baseline: str,
    root: Path | None = None,
    schedule: AblationSchedule | None = None,
    variants: list[str] | None = None,
    extra_overrides: list[str] | None = None,
    main_schedule: Schedule | None = None,
    from_scratch: bool = False,
) -> Plan:
    """The ablation's runs on the synthetic benchmark: the base, then per seed one fine-tune per
    variant from it, each evaluated on both splits. ``variants`` selects a subset (the references
    they need are added). Runs identical to the main comparison's (``main_schedule``, default the
    synthetic default schedule) keep its names, so its finished runs are reused and not redone."""
    if baseline not in baselines():
        raise InputError(f"unknown baseline {baseline!r}; choose one of {tuple(baselines())}.")
    schedule = schedule or ablation_schedule("default", baseline, from_scratch)
    root = Path(root) if root else Path("datasets") / "synthetic"
    every = ablation_variants(schedule)
    by_name = {v.name: v for v in every}
    if variants:
        unknown = sorted(set(variants) - set(by_name))
        if unknown:
            raise InputError(f"unknown ablation variant(s) {unknown}; choose from {list(by_name)}.")
        chosen = set(variants)
        chosen |= {by_name[v].reference for v in variants if by_name[v].reference}
        every = [v for v in every if v.name in chosen]
    main_schedule = main_schedule or synthetic_schedule("default", baseline, from_scratch)
    main = make_plan(baseline, "synthetic", root, "synthetic", main_schedule, extra_overrides=extra_overrides,
                     from_scratch=from_scratch)
    main_runs = {tuple(r.overrides): r.name for r in main.runs if r.kind == "train"}
    plain, pm = _experiments(baseline, "synthetic")
    common = _common_overrides(root, extra_overrides, None)
    plan = Plan(baseline, "synthetic", root, "synthetic", schedule, splits=main.splits, variants=every,
                base_checkpoint=main.base_checkpoint, base_sha256=main.base_sha256, from_scratch=from_scratch)
    runs = [_base_run(plain, common, schedule.base_steps)] if from_scratch else []
    tune = _finetune_lr(not from_scratch)
    for seed in schedule.seeds:
        for variant in every:
            weight = schedule.pm_weight if variant.pm_weight is None else variant.pm_weight
            extra = [*_pm_overrides("synthetic", weight), *variant.overrides] if variant.pm else list(variant.overrides)
            overrides = _finetune_overrides(pm if variant.pm else plain, common, [*extra, *tune],
                                            schedule.finetune_steps * variant.length, seed)
            name = main_runs.get(tuple(overrides), f"ablation_{variant.name}_seed{seed}")
            runs.append(RunSpec(name, "train", overrides, variant=variant.name, seed=seed,
                                start_from="base" if from_scratch else None))
            plan.run_names[(variant.name, seed)] = name
    runs += _evaluations(runs, common, plan.splits, ground_truth=True)
    plan.runs = runs
    return plan


# ------------------------------------------------------------------------------- time budget


@dataclass(frozen=True)
class CpuCosts:
    """Seconds on 2 quiet CPU cores for the synthetic CPU presets (benchmarks/bench_reproduce_budget.py,
    results in benchmarks/results/reproduce_budget_<baseline>.md): one training step of the base
    (from scratch), one fine-tuning step without / with the PM-Loss term, one evaluated scene per
    split, and the fixed cost of starting a run."""

    base_step: float
    step: float
    pm_step: float
    eval_scene: dict[str, float]
    startup: float


# mvsplat: medians of a quiet run; depthsplat: means from the run walls (its first steps are slower).
CPU_COSTS = {
    "mvsplat": CpuCosts(base_step=0.60, step=0.52, pm_step=0.55, eval_scene={"interpolation": 0.39, "extrapolation": 0.66}, startup=1.5),
    "depthsplat": CpuCosts(base_step=1.3, step=1.15, pm_step=1.2, eval_scene={"interpolation": 0.54, "extrapolation": 0.82}, startup=4.0),
}


def _override_value(overrides: list[str], key: str) -> str | None:
    values = [item.split("=", 1)[1] for item in overrides if item.split("=", 1)[0] == key]
    return values[-1] if values else None


def _scene_count(index_path: Path, limit: int | None) -> int:
    import json

    try:
        count = sum(1 for entry in json.loads(Path(index_path).read_text()).values() if entry)
    except (OSError, ValueError, AttributeError):
        count = 8  # the synthetic benchmark's default test split
    return min(count, limit) if limit else count


def estimate_seconds(plan: Plan, costs: CpuCosts | None = None) -> float | None:
    """Estimated CPU time of ``plan`` from scratch (synthetic benchmark only; None otherwise):
    steps x per-step cost (PM steps after ``loss.pm.apply_after_step``), evaluated scenes x
    per-scene cost, plus a start-up cost per run."""
    if plan.data != "synthetic":
        return None
    costs = costs or CPU_COSTS.get(plan.baseline)
    if costs is None:
        return None
    total = 0.0
    for spec in plan.runs:
        total += costs.startup
        if spec.kind == "train":
            steps = int(_override_value(spec.overrides, "trainer.max_steps") or 0)
            if spec.variant == "base":
                total += steps * costs.base_step
            elif spec.overrides[0].startswith("+experiment=pmloss_"):
                plain = min(steps, int(_override_value(spec.overrides, "loss.pm.apply_after_step") or 0))
                total += plain * costs.step + (steps - plain) * costs.pm_step
            else:
                total += steps * costs.step
        else:
            scenes = _scene_count(plan.splits[spec.split], plan.schedule.max_eval_scenes)
            total += scenes * costs.eval_scene.get(spec.split, max(costs.eval_scene.values()))
    return total
