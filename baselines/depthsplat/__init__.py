"""Vendored DepthSplat (CVPR 2025, arXiv 2410.13862), the October-2024 release (f08d378) that
PM-Loss forked, written from the paper and the parity data.

Public API: ``EncoderDepthSplat`` + ``EncoderDepthSplatCfg`` (upstream Hydra keys), the presets in
``depthsplat.config`` (``preset_dl3dv_base`` = the PM-Loss base and parity layout), and
``depthsplat.parity`` (``build_encoder`` / ``run_encoder`` for ``pmsplat parity``).

Verified against ../shared/parity/depthsplat: state-dict names/shapes (ViT-S and ViT-B layouts);
every stage tensor except the DPT head's residual (see tests/test_depthsplat_parity.py). Layouts
with lowest_feature_resolution 4 (the RE10K presets) are built by the same rules but no fixture or
key list covers them.
"""

from .config import EncoderDepthSplatCfg, PRESETS
from .encoder import EncoderDepthSplat

__all__ = ["PRESETS", "EncoderDepthSplat", "EncoderDepthSplatCfg"]
