"""``pmsplat pretrain``: train the CPU-sized synthetic base until it has converged, resumably.

One run folder (``--out``, default ``outputs/pretrain/<baseline>``) holds::

    run.json             the run's settings (baseline, overrides, budget, validation, data hash)
    checkpoints/*.ckpt   Lightning step checkpoints (the latest one is resumed after a kill)
    train_history.csv    one row per training step (splatcore.history), continued on resume
    validation.csv       step, PSNR / SSIM / LPIPS ... on the fixed validation subset
    curves.png           training loss and validation PSNR against the step
    report.md            why training stopped (stopping rule or budget) and the final metrics
    state.json           written when training ended ("trained"), then "exported"; a later call only exports again

Training is the one ``pmsplat train`` runs (``splatcore.main.compose_config`` of
``+experiment=<baseline>_synthetic_cpu`` + overrides, the same model, data module, checkpoint and
history callbacks and Lightning trainer settings as :func:`splatcore.main.run`), with the LR
schedule sized to the step budget, plus one callback: every ``val_every`` steps it scores the
weights on the fixed validation subset (the first ``val_scenes`` scenes of the synthetic test
split's interpolation index; the synthetic set has no separate validation split) with the
reproduction's evaluation loop (:mod:`pmsplat.reproduce.evaluate`) and applies
:func:`stopping_decision`.

Resume: a run folder with the same settings and no ``state.json`` is continued from its latest
step checkpoint (Lightning's ``ckpt_path``: weights, optimizer, LR schedule and step count), the
history and validation rows after that step are dropped (those steps are run again). The data
order after a resume is not the one of an uninterrupted run (the loaders restart their seed).

Export (:func:`export_weights`): the final ``encoder.*`` weights as float16 safetensors plus
``<name>.provenance.json``; :func:`load_exported` checks the sha256 and loads them strictly.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pmsplat.errors import DataError, InputError

from .bases import file_sha256, provenance_path, read_provenance
from .protocol import SYNTHETIC_SPLITS, evaluation_overrides
from .stages import step_checkpoint

BASELINES = ("mvsplat", "depthsplat")
# Default step budgets (also the LR schedule's length, so the lr has annealed when the budget is
# reached): MVSplat's CPU preset runs ~2.2 steps/s on 2 quiet cores (4000 steps ~35 min with the
# validations), DepthSplat's about 4x slower.
DEFAULT_BUDGET = {"mvsplat": 4000, "depthsplat": 2000}
DEFAULT_SCENES = 32  # the default synthetic set of `pmsplat data synth` (datasets/synthetic)
PRETRAIN_SCENES = 128  # the shipped bases' training scenes (datasets/synthetic-train128, generated)
PRETRAIN_VAL_SCENES = 8
PLATEAU_FRACTION = 0.2  # the last 20 % of the steps
PLATEAU_MIN_GAIN_DB = 0.1
CHECK_SET, CHECK_SCENES = "check_2_scenes", 2  # the metrics the test suite reproduces on the shipped base
MIN_VALIDATIONS = 5  # the rule is evaluated from step 5 x val_every on (the window then holds a point)
RUN_FILE, STATE_FILE, VALIDATION_FILE, REPORT_FILE, CURVES_FILE = (
    "run.json", "state.json", "validation.csv", "report.md", "curves.png")


# ------------------------------------------------------------------------------------ stopping rule


@dataclass
class StopDecision:
    """The stopping rule at one validation point. ``stop`` is True when it fired; ``reason`` is
    ``"plateau"`` (gain below the threshold), ``"budget"`` (step budget reached) or None;
    ``gain_db`` = best PSNR of the last ``fraction`` of the steps (at ``best_step``) minus the
    best PSNR before them (at ``reference_step``, at or before ``(1 - fraction) * step``); None
    while there is not enough history. Best, not last: one noisy validation (a few scenes, a high
    learning rate) does not end the run, a flat or falling curve does."""

    stop: bool
    reason: str | None
    step: int
    psnr: float
    reference_step: int | None = None
    reference_psnr: float | None = None
    gain_db: float | None = None
    best_step: int | None = None
    best_psnr: float | None = None
    threshold_db: float = PLATEAU_MIN_GAIN_DB
    fraction: float = PLATEAU_FRACTION

    def describe(self) -> str:
        """One sentence for the log and the report."""
        if self.reason == "plateau":
            return (f"stopping rule: best validation PSNR of the last {self.fraction:.0%} of steps "
                    f"(step {self.best_step}: {self.best_psnr:.3f} dB) gains {self.gain_db:+.3f} dB over the best "
                    f"before them (step {self.reference_step}: {self.reference_psnr:.3f} dB), < {self.threshold_db} dB")
        if self.reason == "budget":
            gain = "" if self.gain_db is None else (
                f"; last gain over {self.fraction:.0%} of steps {self.gain_db:+.3f} dB (step {self.reference_step} -> {self.step})")
            return f"step budget reached at step {self.step} (validation PSNR {self.psnr:.3f} dB{gain})"
        if self.gain_db is None:
            return f"step {self.step}: PSNR {self.psnr:.3f} dB (not enough history for the stopping rule yet)"
        return f"step {self.step}: PSNR {self.psnr:.3f} dB, gain over the last {self.fraction:.0%} {self.gain_db:+.3f} dB"


def stopping_decision(
    points: Sequence[tuple[int | float, int | float]],
    budget: int,
    *,
    val_every: int,
    threshold_db: float = PLATEAU_MIN_GAIN_DB,
    fraction: float = PLATEAU_FRACTION,
    min_validations: int = MIN_VALIDATIONS,
) -> StopDecision:
    """The rule at the last of ``points`` ((step, validation PSNR), increasing steps): stop with
    ``"plateau"`` when step >= ``min_validations * val_every`` and the best PSNR after
    ``(1 - fraction) * step`` gains less than ``threshold_db`` over the best PSNR at or before it;
    else stop with ``"budget"`` when step >= ``budget``; else continue. Raises InputError on empty,
    unordered or non-finite points or bad parameters."""
    if not points:
        raise InputError("stopping_decision needs at least one (step, PSNR) validation point")
    if budget < 1 or val_every < 1 or not 0 < fraction < 1 or min_validations < 1:
        raise InputError(f"stopping_decision: need budget >= 1, val_every >= 1, 0 < fraction < 1, min_validations >= 1 "
                         f"(got {budget}, {val_every}, {fraction}, {min_validations})")
    steps = [int(s) for s, _ in points]
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise InputError(f"stopping_decision: validation steps must increase, got {steps}")
    step, psnr = steps[-1], float(points[-1][1])
    if not math.isfinite(psnr):
        raise InputError(f"stopping_decision: validation PSNR at step {step} is {psnr}")
    decision = StopDecision(False, None, step, psnr, threshold_db=threshold_db, fraction=fraction)
    if step >= min_validations * val_every:
        horizon = (1.0 - fraction) * step
        earlier = [(float(p), s) for s, p in points[:-1] if s <= horizon]
        window = [(float(p), s) for s, p in points if s > horizon]
        if earlier:
            decision.reference_psnr, decision.reference_step = max(earlier)
            decision.best_psnr, decision.best_step = max(window)
            decision.gain_db = decision.best_psnr - decision.reference_psnr
            if decision.gain_db < threshold_db:
                decision.stop, decision.reason = True, "plateau"
                return decision
    if step >= budget:
        decision.stop, decision.reason = True, "budget"
    return decision


# ------------------------------------------------------------------------------------ settings


@dataclass
class PretrainConfig:
    """What ``pmsplat pretrain`` is asked: baseline, run folder, step budget (default
    :data:`DEFAULT_BUDGET`), training scenes
    (data root: ``data``, default ``datasets/synthetic`` for 32 scenes, else
    ``datasets/synthetic-train<N>``), validation interval / subset size, extra Hydra overrides,
    and where the weights are exported (default ``checkpoints/synthetic/<baseline>_base.safetensors``)."""

    baseline: str
    out: Path | None = None
    max_steps: int | None = None  # None: DEFAULT_BUDGET[baseline]
    scenes: int = PRETRAIN_SCENES
    data: Path | None = None
    val_every: int = 250
    val_scenes: int = PRETRAIN_VAL_SCENES
    checkpoint_every: int = 100
    overrides: list[str] = field(default_factory=list)
    export: Path | None = None
    command: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.baseline not in BASELINES:
            problems.append(f"--baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        if self.max_steps is None:
            self.max_steps = DEFAULT_BUDGET.get(self.baseline, 1)
        for name in ("max_steps", "scenes", "val_every", "val_scenes", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for item in self.overrides:
            key = item.split("=", 1)[0].lstrip("+~")
            if "=" not in item or key in ("trainer.max_steps", "output_dir", "mode", "checkpointing.load", "checkpointing.resume"):
                problems.append(f"override {item!r} is not allowed here (a key=value Hydra override other than "
                                "trainer.max_steps / output_dir / mode / checkpointing.load|resume: use --max-steps / --out)")
        if problems:
            raise InputError("pmsplat pretrain: " + "; ".join(problems) + ".")
        self.out = Path(self.out) if self.out is not None else Path("outputs/pretrain") / self.baseline
        if self.data is None:
            self.data = Path("datasets/synthetic") if self.scenes == DEFAULT_SCENES else Path(f"datasets/synthetic-train{self.scenes}")
        self.data = Path(self.data)
        self.export = Path(self.export) if self.export is not None else Path("checkpoints/synthetic") / f"{self.baseline}_base.safetensors"
        if self.export.suffix != ".safetensors":
            raise InputError(f"pmsplat pretrain: --export must end in .safetensors, got {self.export}.")

    def identity(self, data_hash: str) -> dict[str, Any]:
        """What a resumed run must share with the folder's first run."""
        return {"baseline": self.baseline, "max_steps": self.max_steps, "scenes": self.scenes, "val_every": self.val_every,
                "val_scenes": self.val_scenes, "checkpoint_every": self.checkpoint_every, "overrides": list(self.overrides),
                "data_hash": data_hash}


def training_overrides(cfg: PretrainConfig) -> list[str]:
    """The Hydra overrides of the training (the preset, data root, budget, checkpoints; Lightning's
    own one-batch validation off: the validation callback replaces it), then the user's."""
    from splatcore.overrides import list_override, path_override, quote_path_overrides

    return [f"+experiment={cfg.baseline}_synthetic_cpu", list_override("dataset.roots", [cfg.data.resolve()]),
            f"trainer.max_steps={cfg.max_steps}", f"checkpointing.every_n_train_steps={cfg.checkpoint_every}",
            "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false", path_override("output_dir", cfg.out.resolve()),
            f"wandb.name={cfg.baseline}_pretrain", *quote_path_overrides(cfg.overrides)]


def validation_overrides(cfg: PretrainConfig, split: str = "interpolation") -> list[str]:
    """The training overrides turned into the evaluation protocol on a synthetic test index."""
    return training_overrides(cfg) + evaluation_overrides(cfg.data.resolve() / SYNTHETIC_SPLITS[split], ground_truth=True)


# ------------------------------------------------------------------------------------ data


def ensure_data(cfg: PretrainConfig, log: Callable[[str], None] = print) -> None:
    """Generate the synthetic set (``cfg.scenes`` training scenes, default settings otherwise) at
    ``cfg.data`` when absent; raise DataError when one is there with another training-scene count."""
    from pmsplat.synthetic import SynthConfig, generate

    index = cfg.data / "train" / "index.json"
    if (cfg.data / "synthetic.json").is_file() and index.is_file():
        count = len(json.loads(index.read_text()))
        if count != cfg.scenes:
            raise DataError(f"{cfg.data} holds {count} training scenes, --scenes asks {cfg.scenes}: "
                            "give another --data folder or the matching --scenes")
        return
    log(f"generating the synthetic benchmark with {cfg.scenes} training scenes in {cfg.data}")
    generate(SynthConfig(out=cfg.data, train_scenes=cfg.scenes, workers=min(2, os.cpu_count() or 1)))


def data_hash(root: Path) -> str:
    """sha256 over every file of the data folder (relative path and bytes, in path order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ resume


def _read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _number(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def kept_history(path: Path, last_step: int) -> list[dict[str, float]]:
    """The rows of a history / validation CSV with step <= ``last_step`` (numbers as floats)."""
    return [{k: _number(v) for k, v in row.items()} for row in _read_csv(path) if _number(row.get("step")) <= last_step]


# ------------------------------------------------------------------------------------ training


def _validation_batches(cfg: PretrainConfig) -> list:
    """The fixed validation subset: the first ``val_scenes`` scenes of the interpolation index."""
    from splatcore.dataset import DataModule
    from splatcore.main import compose_config, typed_config

    run_cfg = typed_config(compose_config(validation_overrides(cfg)))
    batches = []
    for batch in DataModule(run_cfg.dataset, run_cfg.data_loader).test_dataloader():
        batches.append(batch)
        if len(batches) >= cfg.val_scenes:
            break
    if not batches:
        raise DataError(f"the validation index {cfg.data / SYNTHETIC_SPLITS['interpolation']} holds no scene")
    return batches


def score(model, batches: list, max_scenes: int | None = None) -> dict[str, float]:
    """Mean metrics of ``model`` (a ModelWrapper) on ``batches`` with the reproduction's loop
    (:func:`pmsplat.reproduce.evaluate.evaluate`); the torch RNG state and every module's train /
    eval mode are restored, so validation leaves the training unchanged."""
    import torch

    from .evaluate import EvaluationConfig, evaluate

    state = torch.get_rng_state()
    modes = {module: module.training for module in model.modules()}  # frozen parts stay in eval mode
    try:
        result = evaluate(model.encoder, model.decoder, batches, data_shim=model.encoder.get_data_shim(),
                          device=model.device, cfg=EvaluationConfig(samples_to_keep=0, max_scenes=max_scenes))
    finally:
        torch.set_rng_state(state)
        for module, training in modes.items():
            module.training = training
    return {k: float(v) for k, v in result.averages().items()}


def _validation_callback(cfg: PretrainConfig, batches: list, rows: list[dict[str, float]], log: Callable[[str], None]):
    from lightning.pytorch import Callback

    class Validation(Callback):
        """Every ``val_every`` steps (and at step 0): scores the fixed subset, appends a row to
        validation.csv, applies the stopping rule and stops the trainer when it fires."""

        def __init__(self) -> None:
            self.decision: StopDecision | None = None
            self.started, self.first_step = time.perf_counter(), 0

        def _validate(self, trainer, model) -> None:
            step = int(trainer.global_step)
            if not rows or int(rows[-1]["step"]) < step:  # else: scored before a kill, kept on resume
                metrics = score(model, batches)
                rows.append({"step": step, **{k: v for k, v in metrics.items() if k != "scenes"}})
                _write_csv(cfg.out / VALIDATION_FILE, rows)
            points = [(int(r["step"]), float(r["psnr"])) for r in rows]
            self.decision = stopping_decision(points, cfg.max_steps, val_every=cfg.val_every)
            elapsed = time.perf_counter() - self.started
            log(f"[{step}/{cfg.max_steps}] {self.decision.describe()} ({elapsed:.0f} s this session)")
            if self.decision.stop:
                trainer.should_stop = True

        def on_train_start(self, trainer, model) -> None:
            self.first_step, self.started = int(trainer.global_step), time.perf_counter()
            if trainer.global_step == 0:
                self._validate(trainer, model)

        def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx) -> None:
            step = int(trainer.global_step)
            if step % cfg.val_every == 0 or step >= cfg.max_steps:
                self._validate(trainer, model)
            elif step % max(1, cfg.val_every // 10) == 0 and model.last_train_record:
                rate = (step - self.first_step) / max(time.perf_counter() - self.started, 1e-9)
                log(f"[{step}/{cfg.max_steps}] loss {model.last_train_record.get('loss/total', float('nan')):.5f} "
                    f"({rate:.2f} steps/s, at most {(cfg.max_steps - step) / max(rate, 1e-9) / 60:.0f} min left)")

    return Validation()


def train(cfg: PretrainConfig, extra_callbacks: Sequence[Any] = (), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or continue) the run in ``cfg.out``; see the module docstring. Returns
    {"checkpoint": last.ckpt, "decision": StopDecision as dict, "steps", "seconds" (this session),
    "resumed_from": step or None}. ``extra_callbacks`` are added to the trainer (tests)."""
    import torch
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from omegaconf import OmegaConf
    from splatcore.dataset import DataModule, SkipReportCallback, StepTracker
    from splatcore.main import HISTORY_FILE, HistoryWriter, _trainer_kwargs, build_model, compose_config, load_pretrained, typed_config

    out = cfg.out.resolve()
    composed = compose_config(training_overrides(cfg))
    run_cfg = typed_config(composed)
    resume = step_checkpoint(out)
    resumed_from = resume[1] if resume else None
    last_step = resumed_from if resume else -1
    history = HistoryWriter(out / HISTORY_FILE)
    # a history row's "step" is the step index during the step (0 for the first one), so a
    # checkpoint after S steps covers the rows 0 .. S-1; validation rows use the steps done (S)
    history.rows = kept_history(out / HISTORY_FILE, last_step - 1)
    if history.rows:
        history.columns = ["step"] + sorted(k for k in set().union(*history.rows) if k != "step")
        _write_csv(out / HISTORY_FILE, [{c: r.get(c, "") for c in history.columns} for r in history.rows])
    validation_rows = kept_history(out / VALIDATION_FILE, max(last_step, 0) if resume else -1)
    if resume:
        log(f"resuming {out} from {resume[0].name} (step {resumed_from})")

    torch.set_float32_matmul_precision("high")
    torch.manual_seed(run_cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(composed, resolve=True))
    step_tracker = StepTracker()
    model = build_model(run_cfg, step_tracker=step_tracker)
    data_module = DataModule(run_cfg.dataset, run_cfg.data_loader, step_tracker, global_rank=0)
    validation = _validation_callback(cfg, _validation_batches(cfg), validation_rows, log)
    ModelCheckpoint.CHECKPOINT_EQUALS_CHAR = "_"
    checkpoints = ModelCheckpoint(dirpath=out / "checkpoints", every_n_train_steps=run_cfg.checkpointing.every_n_train_steps,
                                  save_top_k=run_cfg.checkpointing.save_top_k, monitor="info/global_step", mode="max")
    trainer = Trainer(logger=CSVLogger(out, name="logs"), default_root_dir=out,
                      callbacks=[checkpoints, SkipReportCallback(data_module), history, validation, *extra_callbacks],
                      **_trainer_kwargs(run_cfg))
    load_pretrained(model, run_cfg)
    start = time.perf_counter()
    trainer.fit(model, datamodule=data_module, ckpt_path=str(resume[0]) if resume else None)
    last = out / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(last)
    decision = validation.decision
    if decision is None or int(trainer.global_step) != decision.step:
        # the loop ended without a validation at its last step (e.g. resumed at the budget)
        validation._validate(trainer, model)
        decision = validation.decision
    return {"checkpoint": last, "decision": asdict(decision), "steps": int(trainer.global_step),
            "seconds": time.perf_counter() - start, "resumed_from": resumed_from}


# ------------------------------------------------------------------------------------ export


def export_weights(checkpoint: Path, target: Path) -> str:
    """Write the ``encoder.*`` weights of a Lightning checkpoint as float16 safetensors (floating
    tensors cast, others kept) at ``target``; returns the file's sha256."""
    import torch
    from safetensors.torch import save_file
    from splatcore.model.checkpoints import read_state_dict

    state = read_state_dict(checkpoint, "state_dict", what="pretraining checkpoint")
    tensors = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in sorted(state.items())}
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    save_file(tensors, str(temporary), metadata={"format": "pmsplat-synthetic-base", "dtype": "float16"})
    os.chmod(temporary, 0o644)
    os.replace(temporary, target)
    return file_sha256(target)


def load_exported(weights: Path, model) -> dict[str, Any]:
    """Check ``weights`` against its provenance file (sha256) and load it strictly into ``model``
    (a ModelWrapper of the preset: every ``encoder.*`` key, same shapes, cast to the model's
    dtype). Returns the provenance. Raises DataError on a missing file, a sha256 mismatch or a
    key / shape mismatch."""
    from safetensors.torch import load_file

    weights = Path(weights)
    record = read_provenance(weights, "make pretrain-synthetic writes it")
    state = load_file(str(weights))
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in state if k in own and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise DataError(f"{weights} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
                        f"other shapes {shapes[:3]}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    return record


def _git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """Platform, CPU count, Python and torch versions, CUDA device (if any)."""
    import torch

    return {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def final_metrics(cfg: PretrainConfig, weights: Path) -> dict[str, dict[str, float]]:
    """Metrics of the exported (float16) weights: the validation subset, the first
    :data:`CHECK_SCENES` interpolation scenes (``CHECK_SET``: what the test suite re-measures)
    and every scene of the interpolation and extrapolation test indices (PSNR, SSIM, LPIPS, depth AbsRel,
    point-to-surface, floating fraction, scale pred/GT, ...: the reproduction's columns)."""
    from splatcore.dataset import DataModule
    from splatcore.main import build_model, compose_config, typed_config

    results: dict[str, dict[str, float]] = {}
    for split in SYNTHETIC_SPLITS:
        run_cfg = typed_config(compose_config(validation_overrides(cfg, split)))
        model = build_model(run_cfg)
        load_exported(weights, model)
        batches = list(DataModule(run_cfg.dataset, run_cfg.data_loader).test_dataloader())
        if split == "interpolation":
            results["validation"] = score(model, batches[: cfg.val_scenes])
            results[CHECK_SET] = score(model, batches[:CHECK_SCENES])
        results[split] = score(model, batches)
    return results


def check_metrics(baseline: str, weights: Path, data: Path) -> dict[str, float]:
    """The metrics of ``CHECK_SET`` (the first :data:`CHECK_SCENES` scenes of the interpolation
    index of the synthetic set at ``data``) for the exported ``weights``: the test suite's check
    that a shipped base still scores what its provenance records."""
    from splatcore.dataset import DataModule
    from splatcore.main import build_model, compose_config, typed_config

    cfg = PretrainConfig(baseline=baseline, data=Path(data), out=Path(data) / "unused")
    run_cfg = typed_config(compose_config(validation_overrides(cfg, "interpolation")))
    model = build_model(run_cfg)
    load_exported(weights, model)
    batches = []
    for batch in DataModule(run_cfg.dataset, run_cfg.data_loader).test_dataloader():
        batches.append(batch)
        if len(batches) == CHECK_SCENES:
            break
    return score(model, batches)


# ------------------------------------------------------------------------------------ report


def write_curves(out: Path) -> Path | None:
    """curves.png: training loss (per step and a running mean) and validation PSNR vs step."""
    history, validation = _read_csv(out / "train_history.csv"), _read_csv(out / VALIDATION_FILE)
    if not history and not validation:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if history:
        steps = [_number(r["step"]) for r in history]
        loss = [_number(r.get("loss/total")) for r in history]
        width = max(1, len(loss) // 50)
        mean = [sum(loss[max(0, i - width + 1): i + 1]) / len(loss[max(0, i - width + 1): i + 1]) for i in range(len(loss))]
        left.plot(steps, loss, color="0.75", linewidth=0.6, label="loss/total")
        left.plot(steps, mean, color="C0", label=f"running mean ({width})")
        left.set_yscale("log")
        left.set_xlabel("step")
        left.set_title("training loss")
        left.legend()
    if validation:
        right.plot([_number(r["step"]) for r in validation], [_number(r["psnr"]) for r in validation], "o-", color="C1")
        right.set_xlabel("step")
        right.set_ylabel("PSNR (dB)")
        right.set_title("validation PSNR (fixed subset)")
    figure.tight_layout()
    path = out / CURVES_FILE
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


REPORT_COLUMNS = ("psnr", "ssim", "lpips", "depth_abs_rel", "p2s_mean", "floating_fraction", "scale_ratio", "scenes")


def write_report(out: Path, provenance: dict[str, Any]) -> Path:
    """report.md: the stopping reason with its numbers, the run, the final metrics table."""
    decision = provenance["stop"]
    metrics = provenance["metrics"]
    columns = [c for c in REPORT_COLUMNS if any(c in m for m in metrics.values())]
    columns += sorted({k for m in metrics.values() for k in m} - set(columns))
    lines = [f"# Pretraining of the synthetic {provenance['baseline']} base", "",
             f"Stopped by: **{decision['reason']}**. {StopDecision(**decision).describe()}.", "",
             f"- steps: {provenance['steps']} of a budget of {provenance['budget']} (validation every {provenance['val_every']} "
             f"steps on {provenance['val_scenes']} scenes; rule: the best PSNR of the last "
             f"{PLATEAU_FRACTION:.0%} of steps gains < {PLATEAU_MIN_GAIN_DB} dB over the best before them, checked from step {MIN_VALIDATIONS * provenance['val_every']} on)",
             f"- wall time: {provenance['wall_seconds']:.0f} s (all sessions)", f"- command: `{provenance['command']}`",
             f"- weights: `{provenance['weights']}` (float16, sha256 {provenance['sha256']})",
             f"- data: {provenance['data']['root']} ({provenance['data']['train_scenes']} training scenes, sha256 {provenance['data']['sha256']})",
             "", "Metrics of the exported weights:", "", "| set | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, values in metrics.items():
        lines.append(f"| {name} | " + " | ".join(f"{values.get(c, float('nan')):.4g}" for c in columns) + " |")
    lines += ["", f"Curves: `{CURVES_FILE}` (data: `train_history.csv`, `{VALIDATION_FILE}`).", ""]
    path = out / REPORT_FILE
    path.write_text("\n".join(lines))
    return path


# ------------------------------------------------------------------------------------ the command


def pretrain(cfg: PretrainConfig, log: Callable[[str], None] = print, extra_callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Data, training (resumed when possible), export, provenance, curves and report; returns the
    provenance. A run folder started with other settings is one DataError."""
    ensure_data(cfg, log)
    digest = data_hash(cfg.data)
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    identity = cfg.identity(digest)
    run_file = out / RUN_FILE
    if run_file.is_file():
        stored = json.loads(run_file.read_text())
        if stored.get("identity") != identity:
            changed = sorted(k for k in identity if stored.get("identity", {}).get(k) != identity[k])
            raise DataError(f"{out} holds a pretraining started with other settings ({', '.join(changed)} differ): "
                            "resume it with the same options, or give another --out")
        wall = float(stored.get("wall_seconds", 0.0))
        commit = stored.get("commit", "unknown (run folder from before commits were recorded)")
    else:
        wall, commit = 0.0, _git_commit()
        run_file.write_text(json.dumps({"identity": identity, "wall_seconds": 0.0, "commit": commit}, indent=1))
    state_file = out / STATE_FILE
    last = out / "checkpoints" / "last.ckpt"
    if state_file.is_file() and last.is_file():
        state = json.loads(state_file.read_text())
        log(f"{out} finished before ({state['decision']['reason']} at step {state['steps']}); exporting its weights again")
        result = {"checkpoint": last, "decision": state["decision"], "steps": state["steps"], "seconds": 0.0}
    else:
        result = train(cfg, extra_callbacks=extra_callbacks, log=log)
        state_file.write_text(json.dumps({"status": "trained", "steps": result["steps"], "decision": result["decision"]}, indent=1))
    wall += result["seconds"]
    run_file.write_text(json.dumps({"identity": identity, "wall_seconds": wall, "commit": commit}, indent=1))
    sha = export_weights(result["checkpoint"], cfg.export)
    log(f"exported {cfg.export} (sha256 {sha[:16]}...); measuring the final metrics")
    provenance = {
        "baseline": cfg.baseline, "preset": f"+experiment={cfg.baseline}_synthetic_cpu", "overrides": list(cfg.overrides),
        "command": cfg.command or shlex.join(sys.argv), "commit": commit, "export_commit": _git_commit(),
        "data": {"root": str(cfg.data), "train_scenes": cfg.scenes, "sha256": digest},
        "steps": result["steps"], "budget": cfg.max_steps, "val_every": cfg.val_every, "val_scenes": cfg.val_scenes,
        "stop": result["decision"], "wall_seconds": wall, "machine": machine(),
        "weights": str(cfg.export), "sha256": sha, "dtype": "float16",
        "metrics": {},
    }
    provenance_path(cfg.export).write_text(json.dumps(provenance, indent=1))  # the loader needs the sha256 first
    provenance["metrics"] = final_metrics(cfg, cfg.export)
    provenance_path(cfg.export).write_text(json.dumps(provenance, indent=1, allow_nan=True))
    write_curves(out.resolve())
    write_report(out, provenance)
    state_file.write_text(json.dumps({"status": "exported", "steps": result["steps"], "decision": result["decision"]}, indent=1))
    return provenance
