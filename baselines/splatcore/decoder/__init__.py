"""The splatting decoder (upstream ``splatting_cuda``): gsplat on CUDA, exact PyTorch on CPU.

Public names: :class:`Decoder`, :class:`DecoderSplattingCfg`, :func:`decoder_cfg_from_dict`,
:func:`get_decoder`, the SH helpers and the errors.
"""

from __future__ import annotations

from typing import Any

from .config import DecoderSplattingCfg, decoder_cfg_from_dict
from .decoder import DEPTH_MODES, Decoder
from .sh import permuted_sh_basis, sh_to_rgb


def get_decoder(cfg: DecoderSplattingCfg, dataset_cfg: Any = None) -> Decoder:
    """The upstream factory: a decoder from its config and the dataset config (background)."""
    return Decoder(cfg, dataset_cfg)


__all__ = [
    "DEPTH_MODES",
    "Decoder",
    "DecoderSplattingCfg",
    "decoder_cfg_from_dict",
    "get_decoder",
    "permuted_sh_basis",
    "sh_to_rgb",
]
