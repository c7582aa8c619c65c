"""The synthetic benchmark: procedural rooms with foreground objects, exact ray-cast rendering
(RGB, z-depth, world pointmap), writing in the upstream chunk format with evaluation indices."""

from .generate import (
    EXTRAPOLATION_INDEX,
    INTERPOLATION_INDEX,
    SYNTHETIC_FAR,
    SYNTHETIC_NEAR,
    SynthConfig,
    SyntheticScene,
    generate,
    scene_key,
    synthesize_scene,
)
from .dataset_config import synthetic_dataset_cfg

__all__ = [
    "EXTRAPOLATION_INDEX",
    "INTERPOLATION_INDEX",
    "SYNTHETIC_FAR",
    "SYNTHETIC_NEAR",
    "SynthConfig",
    "SyntheticScene",
    "generate",
    "scene_key",
    "synthesize_scene",
    "synthetic_dataset_cfg",
]
