"""MVSplat's entry in the shared core's encoder registry (:mod:`splatcore.registry`): the
``costvolume`` encoder of ``baseline=mvsplat`` and the run combinations MVSplat cannot train."""

from __future__ import annotations

from typing import Any

from splatcore.errors import ConfigError
from splatcore.registry import EncoderSpec, register_encoder

from .config import EncoderCostVolumeCfg
from .encoder import EncoderCostVolume

DEPTHSPLAT_ONLY_CHECKPOINTS = ("pretrained_monodepth", "pretrained_mvdepth", "pretrained_depth")


def validate(run: Any) -> None:
    """MVSplat-specific start-up checks on the typed run config."""
    if run.optimizer.lr_monodepth > 0:
        raise ConfigError(
            "optimizer.lr_monodepth > 0 only applies to DepthSplat's ViT ('pretrained' parameters); "
            "MVSplat has none: set optimizer.lr_monodepth=0"
        )
    contexts = getattr(run.dataset.view_sampler, "num_context_views", 2)
    if contexts < 2:
        raise ConfigError(f"MVSplat needs dataset.view_sampler.num_context_views >= 2, got {contexts}")
    if any(getattr(run.checkpointing, key) for key in DEPTHSPLAT_ONLY_CHECKPOINTS):
        raise ConfigError("checkpointing.pretrained_{monodepth,mvdepth,depth} are DepthSplat keys; unset them for MVSplat")


# No view count in the config: the encoder takes V from each batch (upstream fixes it at construction).
SPEC = register_encoder(
    EncoderSpec(
        name="costvolume",
        baseline="mvsplat",
        config_class=EncoderCostVolumeCfg,
        encoder_class=EncoderCostVolume,
        validate=validate,
    )
)
