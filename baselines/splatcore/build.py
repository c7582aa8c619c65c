"""Building the model of a typed run config: the encoder (from :mod:`splatcore.registry`),
decoder, losses and :class:`~splatcore.model.ModelWrapper`, and the weights-only loading of
``checkpointing.pretrained_*``. Each component receives its typed piece of the
:class:`~splatcore.run_config.RunConfig`."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from .registry import build_encoder_from_config
from .run_config import RunConfig, encoder_cfg, typed_config


def build_encoder(cfg: DictConfig | RunConfig | Any):
    """The encoder module of a composed config, a :class:`RunConfig` or a typed encoder config
    (its registered ``encoder_class``)."""
    if isinstance(cfg, DictConfig):
        cfg = encoder_cfg(cfg)
    elif isinstance(cfg, RunConfig):
        cfg = cfg.encoder
    return build_encoder_from_config(cfg)


def build_model(cfg: DictConfig | RunConfig, run: RunConfig | None = None, step_tracker: Any = None):
    """The :class:`~splatcore.model.ModelWrapper` of a typed run config (or of a composed config,
    typed here; weights not loaded). Each component receives its typed piece."""
    from .decoder import Decoder
    from .loss import get_losses
    from .model.model_wrapper import ModelWrapper

    if run is None:
        run = cfg if isinstance(cfg, RunConfig) else typed_config(cfg, check_files=False)
    encoder = build_encoder(run.encoder)
    decoder = Decoder(run.decoder, run.dataset)
    return ModelWrapper(
        run.optimizer, run.test, run.train, encoder, decoder, get_losses(run.losses),
        step_tracker=step_tracker, run_name=run.run_name, max_steps=run.max_steps,
    )


def load_pretrained(model, run: RunConfig) -> None:
    """Weights-only loading of ``checkpointing.pretrained_*`` (upstream order, §5.2)."""
    from .model.checkpoints import load_weights

    ck = run.checkpointing
    strict = not ck.no_strict_load
    predictor = getattr(model.encoder, "depth_predictor", None)
    if run.mode == "train" and ck.pretrained_monodepth:
        load_weights(predictor, ck.pretrained_monodepth, sub_key=None, strict=False, what="pretrained_monodepth")
        strict = False  # upstream: a monodepth init forces non-strict later loads
    if run.mode == "train" and ck.pretrained_mvdepth:
        load_weights(predictor, ck.pretrained_mvdepth, sub_key="model", strict=False, what="pretrained_mvdepth")
    if ck.pretrained_model:
        load_weights(model.encoder, ck.pretrained_model, prefix="encoder.", strict=strict, what="pretrained_model")
    if ck.pretrained_depth:
        load_weights(predictor, ck.pretrained_depth, sub_key="model", strict=True, what="pretrained_depth")


__all__ = ["build_encoder", "build_model", "load_pretrained"]
