"""MVSplat's optional ``depth`` loss: an edge-aware smoothness prior on the rendered target depth.

The rendered depth (``train.depth_mode`` must be set, e.g. ``depth``) is mapped to [0, 1] by
``(log d - log near) / (log far - log near)`` after clamping d to [near, far]; the loss is the mean
absolute finite difference along x and y (first, or with ``use_second_derivative`` second,
differences), each difference multiplied by exp(-sigma_image * max_c |image difference|) when
``sigma_image`` is set (less smoothing across image edges). Upstream config weight 0.25; unused in
the released experiments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from ..types import BatchedExample, DecoderOutput, Gaussians
from .base import Loss
from ..errors import InputError


@dataclass
class LossDepthCfg:
    weight: float = 0.25
    sigma_image: float | None = None
    use_second_derivative: bool = False


@dataclass
class LossDepthCfgWrapper:
    depth: LossDepthCfg


def normalised_log_depth(
    depth: Float[Tensor, "b v h w"], near: Float[Tensor, "b v"], far: Float[Tensor, "b v"]
) -> Float[Tensor, "b v h w"]:
    log_near = near.log()[..., None, None]
    log_far = far.log()[..., None, None]
    log_depth = depth.clamp_min(1e-10).log()
    log_depth = torch.minimum(torch.maximum(log_depth, log_near), log_far)
    return (log_depth - log_near) / (log_far - log_near)


class LossDepth(Loss[LossDepthCfg, LossDepthCfgWrapper]):
    def forward(
        self, prediction: DecoderOutput, batch: BatchedExample, gaussians: Gaussians | None, global_step: int
    ) -> Float[Tensor, ""]:
        if prediction.depth is None:
            raise InputError(
                f"loss.{self.name} needs a rendered depth; set train.depth_mode=depth (it is null)."
            )
        target = batch["target"]
        depth = normalised_log_depth(prediction.depth, target["near"], target["far"])
        total = self.zero_like(prediction)
        for axis in (-1, -2):
            difference = depth.diff(dim=axis)
            if self.cfg.use_second_derivative:
                difference = difference.diff(dim=axis)
            if self.cfg.sigma_image is not None:
                edges = target["image"].diff(dim=axis).abs().amax(dim=2)  # (b, v, h', w')
                if self.cfg.use_second_derivative:
                    edges = torch.maximum(edges.narrow(axis, 0, edges.shape[axis] - 1), edges.narrow(axis, 1, edges.shape[axis] - 1))
                difference = difference * torch.exp(-self.cfg.sigma_image * edges)
            total = total + difference.abs().mean()
        return self.cfg.weight * total
