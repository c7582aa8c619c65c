"""Parity hooks for ``pmsplat parity --baseline depthsplat`` and the tests.

``build_encoder(metadata)`` builds the fixture configuration (../shared/parity/depthsplat/
config.json: the DL3DV base layout with nearest-3 views and ``offset_mode=unconstrained``) with the
ViT size from the metadata's ``monodepth_vit_type`` (default vits), applies the deterministic
weight rule with the metadata's ``seed`` and returns it in eval mode. ``run_encoder(encoder,
inputs)`` runs it as the fixtures were produced (eval, no_grad, global_step 10_000_000, a
visualization dump) and returns full, unsliced tensors keyed by the fixture base names.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from splatcore.testing.parity import ParityError, apply_deterministic_weights

from .config import preset_dl3dv_base
from .encoder import EncoderDepthSplat

PARITY_GLOBAL_STEP = 10_000_000


def parity_config(vit_type: str = "vits"):
    """The fixture configuration (config.json) with the given ViT."""
    return preset_dl3dv_base(monodepth_vit_type=vit_type)


def build_encoder(metadata: Mapping[str, str]) -> EncoderDepthSplat:
    try:
        seed = int(metadata["seed"])
    except (KeyError, ValueError) as error:
        raise ParityError(f"The parity metadata needs an integer 'seed' entry, got {dict(metadata)}.") from error
    vit_type = metadata.get("monodepth_vit_type", "vits")
    if vit_type not in ("vits", "vitb", "vitl"):
        raise ParityError(f"Unknown monodepth_vit_type {vit_type!r} in the parity metadata (vits, vitb or vitl).")
    encoder = EncoderDepthSplat(parity_config(vit_type))
    apply_deterministic_weights(encoder, seed)
    return encoder.eval()


@torch.no_grad()
def run_encoder(encoder: EncoderDepthSplat, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    missing = [k for k in ("image", "extrinsics", "intrinsics", "near", "far") if k not in inputs]
    if missing:
        raise ParityError(f"The parity inputs lack {missing}.")
    context = {key: inputs[key].float() for key in ("image", "extrinsics", "intrinsics", "near", "far")}
    dump: dict = {}
    intermediates: dict[str, Tensor] = {}
    output = encoder(context, PARITY_GLOBAL_STEP, deterministic=False, visualization_dump=dump, intermediates=intermediates)
    gaussians = output["gaussians"] if isinstance(output, dict) else output
    depths = output["depths"] if isinstance(output, dict) else dump["depth"][..., 0, 0]
    return {
        "gaussians_means": gaussians.means,
        "gaussians_covariances": gaussians.covariances,
        "gaussians_harmonics": gaussians.harmonics,
        "gaussians_opacities": gaussians.opacities,
        "gaussians_scales": dump["scales"],
        "gaussians_rotations": dump["rotations"],
        "depth": depths,
        **intermediates,
    }
