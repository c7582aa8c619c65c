"""Model components shared by the vendored baselines: the Gaussian adapter, the Lightning
:class:`ModelWrapper`, its configs, optimizer and checkpoint helpers."""

from .checkpoints import load_weights, read_state_dict, strip_prefix
from .config import CheckpointingCfg, OptimizerCfg, TestCfg, TrainCfg, cfg_from_dict
from .model_wrapper import ModelWrapper
from .optimizer import build_optimizer, parameter_groups

__all__ = [
    "CheckpointingCfg",
    "ModelWrapper",
    "OptimizerCfg",
    "TestCfg",
    "TrainCfg",
    "build_optimizer",
    "cfg_from_dict",
    "load_weights",
    "parameter_groups",
    "read_state_dict",
    "strip_prefix",
]
