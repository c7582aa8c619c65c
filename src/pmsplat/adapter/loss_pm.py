"""``loss=[..., pm]``: PM-Loss as a loss of the vendored baselines' model wrapper.

Config (``config/loss/pm.yaml``, keys of the PM-Loss fork's ``pcd`` loss plus pmsplat options)::

    pm:
      weight: ${pm_weight:}     # pmsplat.loss.PM_WEIGHT = 0.005 (paper / official)
      apply_after_step: 0       # 0 before this step
      ignore_large_loss: 100.0  # per-example losses above this are multiplied by 1e-5
      teacher: ${teacher}       # the `teacher=` config group (vggt, dust3r, da3, cache, synthetic)
      bidirectional: false      # pmsplat options, all off = official arithmetic
      confidence_weighting: false
      robust: none
      stop_gradient_alignment: false
      knn_method: auto

What it feeds PM-Loss (as the official ``LossPcd`` does): the **final** Gaussian centres of the
context views, ``gaussians.means[-B:]`` where B is the batch size (DepthSplat's training
Gaussians stack the intermediate depth predictions in front along the batch axis), in
(view, row, column) order, one per pixel; the (shimmed) context images; and, for teachers that
look pointmaps up instead of computing them, the scene names, frame indices and (when the dataset
loads them) ground-truth pointmaps of the context views.

The teacher is built lazily at the first training forward (so test runs never load it), is
frozen, and is kept outside the module tree: it never appears in ``parameters()`` (the optimizer)
or ``state_dict()`` (checkpoints). It follows the device of the images.

Logged each step (the wrapper logs ``last_stats`` as ``loss/pm/<key>``): ``value`` (weighted
loss), ``raw_mean`` (mean per-example Chamfer before the large-loss rule), ``scale`` (mean
alignment scale), ``large_fraction`` (examples hit by the large-loss rule), ``teacher_seconds``
and ``nonfinite_teacher_points``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from splatcore.loss.base import Loss
from splatcore.errors import ConfigError, InputError
from splatcore.types import BatchedExample, DecoderOutput, Gaussians
from torch import Tensor

from pmsplat.loss import PMLoss, PMLossConfig

log = logging.getLogger(__name__)


def zero_weight_warning(cfg: LossPmCfg) -> str | None:
    """The start-up warning for ``loss.pm.weight=0`` (a PM-Loss run that trains without its PM term),
    or None for a positive weight."""
    if cfg.weight != 0:
        return None
    return (
        "warning: loss.pm.weight=0, so this run trains WITHOUT a PM-Loss term although loss=[...,pm] is selected "
        "(the teacher still runs every step); set loss.pm.weight to a positive value (the paper: 0.005) or drop pm "
        "from loss=[...] for a baseline run."
    )


@dataclass(frozen=True)
class LossPmCfg(PMLossConfig):
    """``loss.pm``: every :class:`pmsplat.loss.PMLossConfig` field (official defaults) plus when
    the term starts and which teacher it asks. Built and validated once, when the run config is
    typed (``splatcore.run_config.typed_config``): the PM-Loss options here, the teacher parsed
    into a :class:`~pmsplat.teachers.registry.TeacherConfig`; the loss module then uses this
    instance as its :class:`PMLossConfig` as is."""

    apply_after_step: int = 0
    teacher: Any = field(default_factory=lambda: {"name": "vggt"})

    def __post_init__(self) -> None:
        from pmsplat.errors import InputError
        from pmsplat.teachers.registry import TeacherConfig, available_teachers

        super().__post_init__()  # validates the PM-Loss options now, not at the first step
        if self.weight < 0:
            raise ConfigError(f"loss.pm.weight must be >= 0, got {self.weight}.")
        if not isinstance(self.teacher, TeacherConfig) and not (isinstance(self.teacher, dict) and "name" in self.teacher):
            raise ConfigError(
                f"loss.pm.teacher must be a teacher config with a 'name' (select one with teacher={'|'.join(available_teachers())}), "
                f"got {self.teacher!r}."
            )
        try:
            object.__setattr__(self, "teacher", TeacherConfig.parse(self.teacher))
        except InputError as error:
            raise ConfigError(f"loss.pm.teacher: {error}") from error


@dataclass
class LossPmCfgWrapper:
    pm: LossPmCfg


def teacher_context(batch: BatchedExample) -> dict[str, Any]:
    """What look-up teachers (cache, synthetic) need: scene names, frame indices, GT pointmaps."""
    context = batch["context"]
    values = {"scene": batch.get("scene"), "index": context.get("index"), "pointmap": context.get("pointmap")}
    return {key: value for key, value in values.items() if value is not None}


class LossPm(Loss[LossPmCfg, LossPmCfgWrapper]):
    """PM-Loss on the final context Gaussians; see the module docstring."""

    supervise_intermediate = False  # PM-Loss sees the final Gaussians only, never the intermediates

    @staticmethod
    def check_run_config(cfg_wrapper: LossPmCfgWrapper, run: Any) -> None:
        """Start-up checks against the whole typed run config (``splatcore.run_config.RunConfig``),
        so that a bad combination fails before any data is read rather than at the first step; a
        zero weight is logged as one warning line (:func:`zero_weight_warning`)."""
        from pmsplat.errors import InputError
        from pmsplat.teachers.registry import real_teachers

        warning = zero_weight_warning(cfg_wrapper.pm)
        if warning is not None:
            log.warning(warning)
        teacher = cfg_wrapper.pm.teacher
        name = teacher.name
        if teacher.needs_pointmap and not getattr(run.dataset, "load_pointmap", False):
            raise ConfigError(
                f"teacher={name} reads ground-truth pointmaps: set dataset.load_pointmap=true (only the synthetic "
                f"benchmark has them; real data needs a real teacher: teacher={'|'.join(real_teachers())})."
            )
        encoder = run.encoder
        per_pixel = (getattr(encoder, "num_surfaces", 1), getattr(encoder, "gaussians_per_pixel", 1))
        if per_pixel != (1, 1):
            raise ConfigError(
                "loss=[...,pm] pairs each Gaussian with the teacher point of its pixel, so it needs one Gaussian "
                f"per pixel; got model.encoder.num_surfaces={per_pixel[0]}, gaussians_per_pixel={per_pixel[1]}."
            )
        try:
            teacher.check_run()
        except InputError as error:
            raise ConfigError(str(error)) from error

    def __init__(self, cfg_wrapper: LossPmCfgWrapper) -> None:
        super().__init__(cfg_wrapper)
        self.__dict__["_pm"] = None  # built at the first forward; outside the module tree on purpose

    @property
    def pm(self) -> PMLoss:
        """The PM-Loss module with its teacher (built on first use)."""
        if self.__dict__["_pm"] is None:
            from pmsplat.teachers.registry import build_teacher

            teacher = build_teacher(self.cfg.teacher)
            if isinstance(teacher, torch.nn.Module):
                teacher.eval().requires_grad_(False)
            self.__dict__["_pm"] = PMLoss(teacher, self.cfg)
        return self.__dict__["_pm"]

    def forward(
        self,
        prediction: DecoderOutput,
        batch: BatchedExample,
        gaussians: Gaussians,
        global_step: int,
    ) -> Float[Tensor, ""]:
        if global_step < self.cfg.apply_after_step:
            self.last_stats = {}
            return self.zero_like(prediction)
        images = batch["context"]["image"]
        batch_size = images.shape[0]
        if gaussians.means.shape[0] % batch_size:
            raise InputError(
                f"loss.pm: {gaussians.means.shape[0]} Gaussian sets for a batch of {batch_size}; expected a multiple "
                "(intermediate predictions stacked in front of the final ones)."
            )
        means = gaussians.means[-batch_size:]
        pm = self.pm
        teacher = pm.teacher
        if isinstance(teacher, torch.nn.Module):
            teacher.to(images.device)
        value = pm(means, images, teacher_context(batch))
        stats = pm.last_stats
        self.last_stats = {
            "value": stats["loss"],
            "raw_mean": stats["raw_loss_mean"],
            "scale": stats["scale_mean"],
            "large_fraction": stats["large_loss_fraction"],
            "teacher_seconds": stats["teacher_seconds"],
            "nonfinite_teacher_points": stats["nonfinite_teacher_points"],
        }
        return value

