"""The loss interface of the model wrapper (upstream ``src/loss/loss.py`` pattern).

A loss is an ``nn.Module`` built from a *wrapper* dataclass with exactly one field; the field's
name is the loss ``name`` (what ``loss=[mse,lpips]`` lists and what is logged as ``loss/<name>``)
and its value is the loss's own config (``LossMseCfgWrapper(mse=LossMseCfg(weight=1.0))``).

``forward(prediction, batch, gaussians, global_step)`` returns the **weighted** scalar (the wrapper
sums the returned values). A loss may fill ``last_stats`` (``dict[str, float]``) during forward;
the wrapper logs each entry as ``loss/<name>/<key>``.

Any module a loss holds (a frozen network such as VGG for LPIPS, a pointmap teacher) must never
appear in the checkpoint or the optimizer: call :func:`freeze_as_buffers` on it, which turns its
parameters and buffers into non-persistent buffers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import fields, is_dataclass
from typing import Any, Generic, TypeVar

from torch import Tensor, nn

from ..types import BatchedExample, DecoderOutput, Gaussians
from ..errors import ConfigError

C = TypeVar("C")
W = TypeVar("W")


def unwrap_cfg(cfg_wrapper: Any) -> tuple[str, Any]:
    """(name, inner config) of a one-field wrapper dataclass."""
    if not is_dataclass(cfg_wrapper) or len(fields(cfg_wrapper)) != 1:
        raise ConfigError(
            f"a loss config must be a wrapper dataclass with exactly one field (the loss name), got {cfg_wrapper!r}"
        )
    field = fields(cfg_wrapper)[0]
    return field.name, getattr(cfg_wrapper, field.name)


def freeze_as_buffers(module: nn.Module) -> nn.Module:
    """Turn every parameter and buffer of ``module`` (recursively) into a non-persistent buffer
    without gradient, so that it follows ``.to(device)`` but is absent from ``state_dict()`` and
    ``parameters()`` (hence from checkpoints and the optimizer). Returns ``module``."""
    for sub in module.modules():
        for name, param in list(sub.named_parameters(recurse=False)):
            delattr(sub, name)
            sub.register_buffer(name, param.detach().clone().requires_grad_(False), persistent=False)
        for name, buffer in list(sub.named_buffers(recurse=False)):
            if name in sub._non_persistent_buffers_set:
                continue
            delattr(sub, name)
            sub.register_buffer(name, buffer, persistent=False)
    module.eval()
    return module


class Loss(nn.Module, ABC, Generic[C, W]):
    """Base class: ``self.name`` (from the wrapper field), ``self.cfg`` (the inner config),
    ``self.last_stats`` (extra scalars to log, refreshed by each forward)."""

    cfg: C
    name: str
    # Applied to DepthSplat's intermediate-depth renders too (mse, lpips); others only to the final.
    supervise_intermediate: bool = False

    def __init__(self, cfg_wrapper: W) -> None:
        super().__init__()
        self.name, self.cfg = unwrap_cfg(cfg_wrapper)
        self.last_stats: dict[str, float] = {}

    @abstractmethod
    def forward(
        self,
        prediction: DecoderOutput,
        batch: BatchedExample,
        gaussians: Gaussians | None,
        global_step: int,
    ) -> Tensor:
        """The weighted scalar loss (0-d tensor)."""

    @staticmethod
    def zero_like(prediction: DecoderOutput) -> Tensor:
        """A 0-d zero on the prediction's device, connected to the graph (keeps DDP happy)."""
        return prediction.color.sum() * 0.0


def state_dict_free(module: nn.Module) -> bool:
    """True when ``module`` contributes nothing to a state dict (used by tests and the wrapper)."""
    return len(module.state_dict()) == 0 and not any(True for _ in module.parameters())


__all__ = ["Loss", "freeze_as_buffers", "state_dict_free", "unwrap_cfg"]
