"""Photometric MSE between rendered and ground-truth target images (upstream ``mse``).

Optional DepthSplat/PM-Loss option ``clamp_large_error`` (upstream kwarg of the same name, fed
by ``train.train_ignore_large_loss``): when > 0, only elements whose squared error is below the
threshold are averaged (elements at or above it are ignored, not clipped), as upstream.
``l1_loss`` (DepthSplat ``train.l1_loss``) uses |error| instead of the squared error.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor

from ..types import BatchedExample, DecoderOutput, Gaussians
from .base import Loss
from ..errors import ConfigError


@dataclass
class LossMseCfg:
    weight: float = 1.0
    clamp_large_error: float = 0.0
    l1_loss: bool = False

    def __post_init__(self) -> None:
        if self.clamp_large_error < 0:
            raise ConfigError(f"loss.mse.clamp_large_error must be >= 0 (0 = off), got {self.clamp_large_error}")


@dataclass
class LossMseCfgWrapper:
    mse: LossMseCfg


def masked_squared_error(
    prediction: Float[Tensor, "*batch"], target: Float[Tensor, "*batch"], clamp_large_error: float, l1: bool = False
) -> tuple[Float[Tensor, ""], float]:
    """(mean error over the kept elements, fraction of ignored elements)."""
    delta = prediction - target
    error = delta.abs() if l1 else delta.square()
    if clamp_large_error <= 0:
        return error.mean(), 0.0
    keep = (delta.square() < clamp_large_error).detach()
    kept = keep.sum()
    ignored = 1.0 - float(kept) / keep.numel()
    if int(kept) == 0:
        return error.sum() * 0.0, ignored
    return (error * keep).sum() / kept, ignored


class LossMse(Loss[LossMseCfg, LossMseCfgWrapper]):
    supervise_intermediate = True

    def forward(
        self, prediction: DecoderOutput, batch: BatchedExample, gaussians: Gaussians | None, global_step: int
    ) -> Float[Tensor, ""]:
        value, ignored = masked_squared_error(
            prediction.color, batch["target"]["image"], self.cfg.clamp_large_error, self.cfg.l1_loss
        )
        self.last_stats = {"ignored_fraction": ignored} if self.cfg.clamp_large_error > 0 else {}
        return self.cfg.weight * value
