"""The loss registry: loss name -> (wrapper config class, loss class).

``loss=[mse,lpips]`` in Hydra becomes a list of one-key mappings ``[{"mse": {...}}, ...]`` (YAML
order); :func:`loss_cfgs_from_dict` turns them into wrapper dataclasses, :func:`get_losses` into
modules. New losses (PM-Loss) plug in by name with :func:`register_loss`, from an adapter import
or one patched line, without touching this file::

    register_loss("pm", LossPmCfgWrapper, LossPm)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from .base import Loss, unwrap_cfg
from ..errors import ConfigError
from .loss_depth import LossDepth, LossDepthCfgWrapper
from .loss_lpips import LossLpips, LossLpipsCfgWrapper
from .loss_mse import LossMse, LossMseCfgWrapper

LOSSES: dict[str, tuple[type, type[Loss]]] = {}


def register_loss(name: str, cfg_wrapper_cls: type, loss_cls: type[Loss], replace: bool = False) -> None:
    """Make ``name`` usable in ``loss=[...]``. ``cfg_wrapper_cls`` must be a dataclass whose single
    field is called ``name`` (its type is the loss's own config dataclass)."""
    wrapper_fields = fields(cfg_wrapper_cls)
    if len(wrapper_fields) != 1 or wrapper_fields[0].name != name:
        raise ConfigError(
            f"{cfg_wrapper_cls.__name__} must have exactly one field named {name!r} to register loss {name!r}"
        )
    if name in LOSSES and not replace and LOSSES[name] != (cfg_wrapper_cls, loss_cls):
        raise ConfigError(f"a loss named {name!r} is already registered ({LOSSES[name][1].__name__})")
    LOSSES[name] = (cfg_wrapper_cls, loss_cls)


register_loss("mse", LossMseCfgWrapper, LossMse)
register_loss("lpips", LossLpipsCfgWrapper, LossLpips)
register_loss("depth", LossDepthCfgWrapper, LossDepth)
from pmsplat.adapter.loss_pm import LossPm, LossPmCfgWrapper  # noqa: E402  (PM-Loss: loss=[..., pm])
register_loss("pm", LossPmCfgWrapper, LossPm)


def _unknown(name: Any) -> ConfigError:
    return ConfigError(
        f"unknown loss {name!r} in loss=[...]; registered losses are {sorted(LOSSES)} "
        "(a new loss is added with splatcore.loss.register_loss)."
    )


def loss_cfgs_from_dict(values: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> list[Any]:
    """Wrapper dataclasses from Hydra's loss list (``[{"mse": {...}}, ...]``) or mapping
    (``{"mse": {...}, "lpips": {...}}``), in order; unknown keys inside a loss are ignored (dacite,
    as upstream)."""
    import dacite

    items: list[tuple[str, Any]] = []
    if isinstance(values, Mapping):
        items = list(values.items())
    else:
        for entry in values:
            if not isinstance(entry, Mapping) or len(entry) != 1:
                raise ConfigError(f"each loss entry must be a one-key mapping {{name: cfg}}, got {entry!r}")
            items.extend(entry.items())
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ConfigError(f"loss=[...] lists a loss twice: {names}")
    result = []
    for name, cfg in items:
        if name not in LOSSES:
            raise _unknown(name)
        wrapper_cls = LOSSES[name][0]
        result.append(dacite.from_dict(wrapper_cls, {name: dict(cfg or {})}, config=dacite.Config(strict=False, cast=[float])))
    return result


def get_losses(cfgs: Iterable[Any]) -> list[Loss]:
    """One loss module per wrapper config, in order."""
    losses = []
    for cfg in cfgs:
        name, _ = unwrap_cfg(cfg)
        if name not in LOSSES:
            raise _unknown(name)
        wrapper_cls, loss_cls = LOSSES[name]
        if not isinstance(cfg, wrapper_cls):
            raise ConfigError(f"loss {name!r} expects a {wrapper_cls.__name__}, got {type(cfg).__name__}")
        losses.append(loss_cls(cfg))
    return losses
