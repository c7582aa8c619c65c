"""Loading official DepthSplat / PM-Loss weights into ``EncoderDepthSplat``.

Lightning checkpoints keep the encoder under ``state_dict`` with the key prefix ``encoder.``;
released ``.pth`` files may hold the same mapping at the top level. ``encoder_state_dict`` strips
the prefix (keys without it, e.g. ``decoder.*`` or loss buffers, are not encoder weights and are
returned separately so that nothing is silently dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from .errors import DepthSplatError

ENCODER_PREFIX = "encoder."


class DepthSplatCheckpointError(DepthSplatError, FileNotFoundError):
    """A checkpoint file is missing or does not hold DepthSplat encoder weights."""


def encoder_state_dict(checkpoint: Mapping[str, object]) -> tuple[dict[str, Tensor], list[str]]:
    """(encoder weights without the ``encoder.`` prefix, the other keys of the checkpoint)."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise DepthSplatCheckpointError("the checkpoint's 'state_dict' entry is not a mapping of tensors")
    weights = {k[len(ENCODER_PREFIX):]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    others = [k for k in state if not k.startswith(ENCODER_PREFIX)]
    if not weights:
        raise DepthSplatCheckpointError(
            "no 'encoder.*' keys found; pass a DepthSplat/PM-Loss Lightning checkpoint or a released .pth"
        )
    return weights, others


def load_encoder_checkpoint(encoder: torch.nn.Module, path: str | Path, strict: bool = True):
    """Load an official checkpoint into ``encoder``; returns torch's (missing, unexpected) keys."""
    path = Path(path)
    if not path.is_file():
        raise DepthSplatCheckpointError(f"checkpoint not found: {path}; download it or fix the path")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    weights, _ = encoder_state_dict(checkpoint)
    return encoder.load_state_dict(weights, strict=strict)
