"""Loading official DepthSplat / PM-Loss weights into ``EncoderDepthSplat``.

Lightning checkpoints keep the encoder under ``state_dict`` with the key prefix ``encoder.``;
released ``.pth`` files may hold the same mapping at the top level. Both go through the loader
``pmsplat train`` uses for ``checkpointing.pretrained_model``
(:func:`splatcore.model.checkpoints.load_weights`): strict loading raises a ``CheckpointError``
naming the first missing / unexpected keys or shape mismatches; keys outside ``encoder.`` (decoder,
loss buffers) are not encoder weights and are ignored.
"""

from __future__ import annotations

from pathlib import Path

import torch

from splatcore.model.checkpoints import load_weights

ENCODER_PREFIX = "encoder."


def load_encoder_checkpoint(encoder: torch.nn.Module, path: str | Path, strict: bool = True) -> tuple[list[str], list[str]]:
    """Load an official checkpoint into ``encoder``; returns (missing, unexpected) keys."""
    return load_weights(encoder, path, prefix=ENCODER_PREFIX, strict=strict, what="DepthSplat checkpoint")
