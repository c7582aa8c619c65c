"""DepthSplat's entry in the shared core's encoder registry (:mod:`splatcore.registry`): the
``depthsplat`` encoder of ``baseline=depthsplat`` and its model-size presets, published as the
``model/encoder=depthsplat_<size>`` options (the numbers live only in :data:`depthsplat.config.PRESETS`)."""

from __future__ import annotations

from splatcore.registry import EncoderSpec, register_encoder

from .config import PRESETS, EncoderDepthSplatCfg
from .encoder import EncoderDepthSplat

# Hydra option names of the presets (model/encoder=<option>); the released re10k sizes drop "re10k_".
PRESET_OPTIONS = {
    "re10k_small": "depthsplat_small",
    "re10k_base": "depthsplat_base",
    "re10k_large": "depthsplat_large",
    "dl3dv_base": "depthsplat_dl3dv_base",
    "cpu_tiny": "depthsplat_cpu_tiny",
}

SPEC = register_encoder(
    EncoderSpec(
        name="depthsplat",
        baseline="depthsplat",
        config_class=EncoderDepthSplatCfg,
        encoder_class=EncoderDepthSplat,
        presets=PRESETS,
        preset_options=PRESET_OPTIONS,
    )
)
