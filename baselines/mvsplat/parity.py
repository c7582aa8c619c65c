"""Parity hooks for ``pmsplat parity --baseline mvsplat`` and the tests.

``build_encoder(metadata)`` builds the released-config encoder for the set's view count and
applies the deterministic weight rule with the set's seed; ``run_encoder(encoder, inputs)`` runs it
as the fixtures were generated (eval, no_grad, global_step 10_000_000, visualization dump) and
returns the full (unsliced) port tensors keyed by the fixture's base tensor names (``depth``,
``gaussians_*``, ``inter_*``); the comparison applies the ``_every8`` / ``_strideS`` slicing.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from splatcore.testing.parity import ParityError, apply_deterministic_weights

from .config import EncoderCostVolumeCfg
from .encoder import EncoderCostVolume

PARITY_GLOBAL_STEP = 10_000_000


def build_encoder(metadata: Mapping[str, str]) -> EncoderCostVolume:
    """Encoder with the released re10k config, ``num_context_views = V`` and the weight rule
    applied with ``seed`` (both read from the parity file's metadata), in eval mode."""
    try:
        views = int(metadata["V"])
        seed = int(metadata["seed"])
    except (KeyError, ValueError) as error:
        raise ParityError(f"The parity metadata needs integer 'V' and 'seed' entries, got {dict(metadata)}.") from error
    encoder = EncoderCostVolume(EncoderCostVolumeCfg(num_context_views=views))
    apply_deterministic_weights(encoder, seed)
    return encoder.eval()


@torch.no_grad()
def run_encoder(encoder: EncoderCostVolume, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Run on ``inputs`` (image, extrinsics, intrinsics, near, far; batched) and collect outputs."""
    missing = [k for k in ("image", "extrinsics", "intrinsics", "near", "far") if k not in inputs]
    if missing:
        raise ParityError(f"The parity inputs lack {missing}.")
    context = {key: inputs[key].float() for key in ("image", "extrinsics", "intrinsics", "near", "far")}
    encoder.set_num_views(context["image"].shape[1])
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
