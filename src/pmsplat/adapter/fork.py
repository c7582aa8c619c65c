"""The PM-Loss fork's changes to the vendored baselines, other than the loss itself.

The pristine baselines (``baselines/``) behave as upstream (MVSplat @175b17a, DepthSplat @f08d378).
Each option below is what the PM-Loss fork (aim-uofa/PM-Loss, forked from DepthSplat @f08d378)
adds or changes; the baselines reach it only through the one-to-three-line hooks of
``patches/<baseline>/`` (``pmsplat patches diff`` shows them). The Hydra keys are unchanged; every
option defaults to upstream behaviour.

=================================  ===============================  ===========================================
key                                upstream                         PM-Loss fork (``experiment/pmloss_*.yaml``)
=================================  ===============================  ===========================================
``dataset.resize_filter``          ``lanczos`` (crop-shim resize)   ``bilinear``
``train.skip_large_sample_loss``   --                               0.1: a sample whose final mse + lpips
 / ``..._after_step``                                               exceeds it after step 300 is scaled by 1e-8
``model.encoder.offset_mode``      sigmoid(x) - 0.5 px (``ori``)    ``unconstrained``: x * ``offset_factor`` px
 / ``offset_factor``                                                (``pixel``: tanh(x) * factor / 2)
``model.encoder.                   --                               one more head channel (index 1, after the
confidence_activation``                                             opacity): act(raw) + match probability
=================================  ===============================  ===========================================

The MSE clamp (``loss.mse.clamp_large_error`` / ``train.train_ignore_large_loss``) is upstream
DepthSplat code (off by default there); the fork only sets it to 0.2 in its configs.

This module imports nothing from the baselines at import time (they import it while they load);
errors are raised with the baseline's own error classes, imported when needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float
from PIL import Image
from torch import Tensor

# ---------------------------------------------------------------------------------------------
# dataset.resize_filter: the crop shim's PIL filter

PIL_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}


def check_resize_filter(cfg: Any) -> None:
    """``DatasetCfg.__post_init__`` hook: ``dataset.resize_filter`` is ``lanczos`` or ``bilinear``."""
    if cfg.resize_filter not in PIL_FILTERS:
        from splatcore.errors import ConfigError

        raise ConfigError(
            f"dataset.resize_filter must be 'lanczos' (MVSplat/DepthSplat) or 'bilinear' (PM-Loss), "
            f"got {cfg.resize_filter!r}."
        )


@contextmanager
def crop_shim_filter(name: str) -> Iterator[None]:
    """Within the block, the crop shim (``splatcore.dataset.shims.rescale_image``) resizes with the
    PIL filter ``name`` instead of upstream's LANCZOS; restored on exit."""
    from splatcore.dataset import shims
    from splatcore.errors import ConfigError

    if name not in PIL_FILTERS:
        raise ConfigError(f"resize_filter must be one of {sorted(PIL_FILTERS)}, got {name!r}.")
    previous = shims.RESIZE_FILTER
    shims.RESIZE_FILTER = PIL_FILTERS[name]
    try:
        yield
    finally:
        shims.RESIZE_FILTER = previous


# ---------------------------------------------------------------------------------------------
# train.skip_large_sample_loss / train.skip_large_sample_after_step: "ignore bad samples"


def check_skip_large_sample(cfg: Any) -> None:
    """``TrainCfg.__post_init__`` hook."""
    if cfg.skip_large_sample_loss < 0:
        from splatcore.errors import ConfigError

        raise ConfigError("train.train_ignore_large_loss and train.skip_large_sample_loss must be >= 0")


def skip_large_sample(train_cfg: Any, step: int, total: Tensor, record: dict[str, float]) -> Tensor:
    """The fork's rule: after ``skip_large_sample_after_step``, a sample whose final-render
    photometric loss (mse + lpips, as logged in ``record``) exceeds ``skip_large_sample_loss``
    contributes ``1e-8 * total`` (and ``record["train/skipped_large_sample"] = 1``); 0 = off."""
    threshold = train_cfg.skip_large_sample_loss
    if threshold <= 0 or step <= train_cfg.skip_large_sample_after_step:
        return total
    photometric = total.detach().new_zeros(())
    for name in ("loss/mse", "loss/lpips"):
        if name in record:
            photometric = photometric + record[name]
    if float(photometric) > threshold:
        record["train/skipped_large_sample"] = 1.0
        return total * 1e-8
    return total


# ---------------------------------------------------------------------------------------------
# model.encoder.offset_mode / offset_factor / confidence_activation (DepthSplat encoder)

OFFSET_MODES = ("ori", "origin", "pixel", "unconstrained")
CONFIDENCE_ACTIVATIONS = (None, "softplus", "sigmoid")


def check_encoder_options(cfg: Any) -> None:
    """``EncoderDepthSplatCfg.__post_init__`` hook."""
    from depthsplat.errors import DepthSplatError

    if cfg.offset_mode not in OFFSET_MODES:
        raise DepthSplatError(f"offset_mode must be one of {OFFSET_MODES}, got {cfg.offset_mode!r}")
    if getattr(cfg, "confidence_activation", None) not in CONFIDENCE_ACTIVATIONS:
        raise DepthSplatError(
            f"confidence_activation must be null, 'softplus' or 'sigmoid', got {cfg.confidence_activation!r}"
        )


def pixel_offsets(raw: Float[Tensor, "*batch 2"], mode: str, factor: float) -> Float[Tensor, "*batch 2"]:
    """Sub-pixel offset of each Gaussian's ray, in pixels:
    ``ori``/``origin`` sigmoid(x) - 0.5 (DepthSplat, within +-0.5 px); ``pixel`` tanh(x) * factor / 2;
    ``unconstrained`` x * factor (PM-Loss, unbounded)."""
    if mode in ("ori", "origin"):
        return raw.sigmoid() - 0.5
    if mode == "pixel":
        return torch.tanh(raw) * factor / 2
    if mode == "unconstrained":
        return raw * factor
    from depthsplat.errors import DepthSplatError

    raise DepthSplatError(f"offset_mode must be 'ori', 'origin', 'pixel' or 'unconstrained', got {mode!r}")


def add_confidences(
    output: Any,
    visualization_dump: dict | None,
    raw_confidence: Float[Tensor, "batch view ray"],
    match_prob: Float[Tensor, "bv 1 height width"],
    activation: str,
    copies: int,
) -> Any:
    """The fork's confidence channel: act(raw) + match probability (detached), per Gaussian, put in
    the visualisation dump and, when the encoder returns a dict, as ``output["confidences"]``."""
    b, v = raw_confidence.shape[0] // copies, raw_confidence.shape[1]
    act = F.softplus if activation == "softplus" else torch.sigmoid
    prob = rearrange(match_prob.detach(), "(b v) () h w -> b v (h w)", b=b, v=v).repeat(copies, 1, 1)
    confidences = rearrange(act(raw_confidence) + prob, "b v r -> b (v r)")
    if visualization_dump is not None:
        visualization_dump["confidences"] = confidences
    if isinstance(output, dict):
        output["confidences"] = confidences
    return output
