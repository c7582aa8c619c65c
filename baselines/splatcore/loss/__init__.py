"""Training losses of the model wrapper (upstream ``src/loss``): ``mse``, ``lpips``, ``depth`` and
any loss registered later by name (:func:`register_loss`, how PM-Loss plugs in as
``loss=[mse,lpips,pm]``).

The registry names are loaded on first access (PEP 562), so that a loss module defined outside
this package can subclass :class:`Loss` (importing ``splatcore.loss.base``) without loading the
registry, which may import that module to register it."""

from importlib import import_module
from typing import Any


from .base import Loss, freeze_as_buffers, state_dict_free, unwrap_cfg
from .loss_depth import LossDepth, LossDepthCfg, LossDepthCfgWrapper
from .loss_lpips import LossLpips, LossLpipsCfg, LossLpipsCfgWrapper
from .loss_mse import LossMse, LossMseCfg, LossMseCfgWrapper, masked_squared_error

_REGISTRY_NAMES = ("LOSSES", "get_losses", "loss_cfgs_from_dict", "register_loss")


def __getattr__(name: str) -> Any:
    if name in _REGISTRY_NAMES:
        return getattr(import_module(".registry", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LOSSES",
    "Loss",
    "LossDepth",
    "LossDepthCfg",
    "LossDepthCfgWrapper",
    "LossLpips",
    "LossLpipsCfg",
    "LossLpipsCfgWrapper",
    "LossMse",
    "LossMseCfg",
    "LossMseCfgWrapper",
    "freeze_as_buffers",
    "get_losses",
    "loss_cfgs_from_dict",
    "masked_squared_error",
    "register_loss",
    "state_dict_free",
    "unwrap_cfg",
]
