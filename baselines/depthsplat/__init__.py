"""Vendored DepthSplat (CVPR 2025, arXiv 2410.13862), the October-2024 release (f08d378) that
PM-Loss forked, written from the paper and the parity data.

Public API: ``EncoderDepthSplat`` + ``EncoderDepthSplatCfg`` (upstream Hydra keys), the presets in
``depthsplat.config`` (``preset_dl3dv_base`` = the PM-Loss base and parity layout), and
``depthsplat.parity`` (``build_encoder`` / ``run_encoder`` for ``pmsplat parity``).

Verified against ../shared/parity/depthsplat (tests/depthsplat/test_parity.py, test_presets.py):
every tensor of the three public sets (DL3DV config with ViT-S and ViT-B, RE10K small preset);
the state-dict layouts (names, shapes, order, counts) of the fixture encoders and of the four
released presets (small, base, large, dl3dv_base). Any number of context views (>= 2) and any
image size the config allows (multiples of 4 * lowest_feature_resolution, non-square included):
the view count is taken from each batch (``EncoderDepthSplat.set_num_views``).
"""

from .config import EncoderDepthSplatCfg, PRESETS
from .encoder import EncoderDepthSplat
from . import registration  # noqa: F401  (registers `depthsplat` + presets in splatcore.registry)

__all__ = ["PRESETS", "EncoderDepthSplat", "EncoderDepthSplatCfg"]
