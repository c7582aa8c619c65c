"""Vendored MVSplat (ECCV 2024, arXiv 2403.14627), written from the paper and the parity data.

Same configuration vocabulary and checkpoint format as upstream donydchen/mvsplat @ 175b17a.
``EncoderCostVolume(EncoderCostVolumeCfg(...))`` is the encoder; ``mvsplat.parity`` runs it on a
parity set.
"""

from .config import EncoderCostVolumeCfg, EncoderVisualizerCostVolumeCfg, OpacityMappingCfg
from .encoder import EncoderCostVolume
from . import registration  # noqa: F401  (registers `costvolume` in splatcore.registry)

__all__ = ["EncoderCostVolume", "EncoderCostVolumeCfg", "EncoderVisualizerCostVolumeCfg", "OpacityMappingCfg"]
