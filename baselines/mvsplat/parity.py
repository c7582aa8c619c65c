"""Parity hooks for ``pmsplat parity --baseline mvsplat`` and the tests.

``build_encoder(metadata)`` builds the encoder a parity set was generated with and applies the
deterministic weight rule with the set's ``seed``:

* the encoder config is the metadata's ``encoder_config`` entry (a JSON object with the upstream
  ``model.encoder`` keys, or ``{"encoder_config": {...}}``) where the file carries one;
* otherwise the fixture config (``../shared/parity/mvsplat/config.json``: costvolume.yaml +
  re10k.yaml, the released re10k model). It can be passed as ``fixture_config`` (the parsed
  config.json); without it the packaged ``EncoderCostVolumeCfg()`` defaults are used, which are
  that same config (a test checks them key by key against config.json).

Nothing depends on the set's V, H or W at construction: the encoder takes the view count and the
image size from its inputs (any V >= 2, any multiple of 16, non-square included).

``run_encoder(encoder, inputs)`` runs it as the fixtures were generated (eval, no_grad,
global_step 10_000_000, visualization dump) and returns the full (unsliced) port tensors keyed by
the fixture's base tensor names (``depth``, ``gaussians_*``, ``inter_*``); the comparison applies
the ``_everyN`` / ``_strideS`` slicing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from splatcore.testing.parity import ParityError, apply_deterministic_weights

from .config import EncoderCostVolumeCfg
from .encoder import EncoderCostVolume
from .errors import MVSplatError

PARITY_GLOBAL_STEP = 10_000_000


def encoder_config_from_dict(values: Mapping[str, Any]) -> EncoderCostVolumeCfg:
    """``EncoderCostVolumeCfg`` from upstream ``model.encoder`` keys (``{"encoder_config": {...}}``
    is unwrapped). Unknown keys are an error, so a mistyped key is not silently replaced by a
    default."""
    import dacite

    if "encoder_config" in values:
        values = values["encoder_config"]
    if not isinstance(values, Mapping):
        raise ParityError(f"The MVSplat encoder config must be a JSON object, got {type(values).__name__}.")
    if values.get("name", "costvolume") != "costvolume":
        raise ParityError(f"The parity set's encoder is {values.get('name')!r}, not MVSplat's 'costvolume'.")
    try:
        return dacite.from_dict(EncoderCostVolumeCfg, dict(values), config=dacite.Config(strict=True, cast=[float]))
    except dacite.DaciteError as error:
        raise ParityError(f"The MVSplat encoder config in the parity set is not usable: {error}") from error


def parity_config(metadata: Mapping[str, str], fixture_config: Mapping[str, Any] | None = None) -> EncoderCostVolumeCfg:
    """The encoder config of a parity set (see the module docstring for the precedence)."""
    if "encoder_config" in metadata:
        raw = metadata["encoder_config"]
        try:
            values = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as error:
            raise ParityError(f"The parity metadata's 'encoder_config' is not valid JSON: {error}") from error
        return encoder_config_from_dict(values)
    if fixture_config is not None:
        return encoder_config_from_dict(fixture_config)
    return EncoderCostVolumeCfg()


def build_encoder(metadata: Mapping[str, str], fixture_config: Mapping[str, Any] | None = None) -> EncoderCostVolume:
    """Encoder with the parity set's config and the weight rule applied with the metadata's
    ``seed``, in eval mode. ``V`` (when present) is only checked to be >= 2."""
    try:
        seed = int(metadata["seed"])
    except (KeyError, ValueError) as error:
        raise ParityError(f"The parity metadata needs an integer 'seed' entry, got {dict(metadata)}.") from error
    if "V" in metadata:
        try:
            views = int(metadata["V"])
        except ValueError as error:
            raise ParityError(f"The parity metadata's V={metadata['V']!r} is not an integer.") from error
        if views < 2:
            raise ParityError(f"MVSplat parity sets need V >= 2 context views, the metadata says V={views}.")
    try:
        encoder = EncoderCostVolume(parity_config(metadata, fixture_config))
    except MVSplatError as error:
        raise ParityError(f"The parity set's MVSplat config cannot be built: {error}") from error
    apply_deterministic_weights(encoder, seed)
    return encoder.eval()


@torch.no_grad()
def run_encoder(encoder: EncoderCostVolume, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Run on ``inputs`` (image, extrinsics, intrinsics, near, far; batched) and collect outputs."""
    missing = [k for k in ("image", "extrinsics", "intrinsics", "near", "far") if k not in inputs]
    if missing:
        raise ParityError(f"The parity inputs lack {missing}.")
    context = {key: inputs[key].float() for key in ("image", "extrinsics", "intrinsics", "near", "far")}
    dump: dict = {}
    intermediates: dict[str, Tensor] = {}
    gaussians = encoder(context, PARITY_GLOBAL_STEP, deterministic=False, visualization_dump=dump, intermediates=intermediates)
    b, v, _, h, w = context["image"].shape
    return {
        "gaussians_means": gaussians.means,
        "gaussians_covariances": gaussians.covariances,
        "gaussians_harmonics": gaussians.harmonics,
        "gaussians_opacities": gaussians.opacities,
        "gaussians_scales": dump["scales"],
        "gaussians_rotations": dump["rotations"],
        "depth": dump["depth"].reshape(b, v, h, w),
        **intermediates,
    }
