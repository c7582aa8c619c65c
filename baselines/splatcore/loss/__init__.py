"""Training losses of the model wrapper (upstream ``src/loss``): ``mse``, ``lpips``, ``depth`` and
any loss registered later by name (:func:`register_loss`, how PM-Loss plugs in as
``loss=[mse,lpips,pm]``)."""

from .base import Loss, freeze_as_buffers, state_dict_free, unwrap_cfg
from .loss_depth import LossDepth, LossDepthCfg, LossDepthCfgWrapper
from .loss_lpips import LossLpips, LossLpipsCfg, LossLpipsCfgWrapper
from .loss_mse import LossMse, LossMseCfg, LossMseCfgWrapper, masked_squared_error
from .registry import LOSSES, get_losses, loss_cfgs_from_dict, register_loss

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
