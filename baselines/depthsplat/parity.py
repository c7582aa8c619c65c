"""Parity hooks for ``pmsplat parity --baseline depthsplat`` and the tests.

``build_encoder(metadata)`` builds the encoder a parity set was produced with and applies the
deterministic weight rule with the metadata's ``seed``; it returns it in eval mode. The
configuration is the metadata's ``encoder_config`` (a JSON object with the upstream Hydra keys of
``model.encoder``, as in ``public_small.safetensors``; ``pmsplat parity`` puts the ``encoder_config``
of the fixture's config.json there for files that carry none), else the DL3DV parity-fixture
configuration (../shared/parity/depthsplat/config.json: the DL3DV base layout with nearest-3 views
and ``offset_mode=unconstrained``). The metadata's ``monodepth_vit_type``, when present, names the
ViT the set was run with and overrides the configuration's (``public_vitb.safetensors`` = the
fixture config with ``vitb``). Any V, H and W: everything that depends on them comes from the
inputs.

``run_encoder(encoder, inputs)`` runs it as the fixtures were produced (eval, no_grad,
global_step 10_000_000, a visualization dump) and returns full, unsliced tensors keyed by the
fixture base names.

``check_key_layouts(key_file)`` compares, for every preset of a key file in the format of
../shared/parity/depthsplat/preset_state_dict_keys.json, the state-dict layout of the port built
from that preset's ``encoder_config`` (names, shapes and order, tensor and element counts) with the
listed one (``pmsplat parity --baseline depthsplat --keys FILE``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from splatcore.testing.parity import ParityError, apply_deterministic_weights

from .config import PRESETS, EncoderDepthSplatCfg, preset_dl3dv_base
from .encoder import EncoderDepthSplat

PARITY_GLOBAL_STEP = 10_000_000
VIT_TYPES = ("vits", "vitb", "vitl")
# preset names of preset_state_dict_keys.json -> the port's presets (used when a preset in a key
# file carries no encoder_config)
KEY_FILE_PRESETS = {"small": "re10k_small", "base": "re10k_base", "large": "re10k_large", "dl3dv_base": "dl3dv_base"}


def parity_config(vit_type: str = "vits") -> EncoderDepthSplatCfg:
    """The DL3DV fixture configuration (config.json) with the given ViT."""
    return preset_dl3dv_base(monodepth_vit_type=vit_type)


def _config_from_mapping(values: Any, where: str) -> EncoderDepthSplatCfg:
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except json.JSONDecodeError as error:
            raise ParityError(f"{where} is not valid JSON: {error}") from error
    if not isinstance(values, Mapping):
        raise ParityError(f"{where} must be a JSON object of model.encoder keys, got {type(values).__name__}")
    try:
        return EncoderDepthSplatCfg.from_dict(dict(values))
    except Exception as error:  # DepthSplatError, or dacite's own error types
        raise ParityError(f"{where} is not a valid DepthSplat encoder configuration: {error}") from error


def encoder_config(metadata: Mapping[str, str]) -> EncoderDepthSplatCfg:
    """The configuration a parity set was produced with (see the module docstring)."""
    if "encoder_config" in metadata:
        cfg = _config_from_mapping(metadata["encoder_config"], "the parity metadata's encoder_config")
    else:
        cfg = parity_config()
    vit_type = metadata.get("monodepth_vit_type")
    if vit_type is not None:
        if vit_type not in VIT_TYPES:
            raise ParityError(f"Unknown monodepth_vit_type {vit_type!r} in the parity metadata (vits, vitb or vitl).")
        if vit_type != cfg.monodepth_vit_type:
            cfg = EncoderDepthSplatCfg.from_dict({**cfg.to_dict(), "monodepth_vit_type": vit_type})
    return cfg


def build_encoder(metadata: Mapping[str, str]) -> EncoderDepthSplat:
    try:
        seed = int(metadata["seed"])
    except (KeyError, ValueError) as error:
        raise ParityError(f"The parity metadata needs an integer 'seed' entry, got keys {sorted(metadata)}.") from error
    encoder = EncoderDepthSplat(encoder_config(metadata))
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


# ---------------------------------------------------------------------------------------------
# state-dict layouts (key files)
# ---------------------------------------------------------------------------------------------


@dataclass
class LayoutCheck:
    """One preset of a key file against the port: ``problem`` is None when names, shapes, order,
    dtypes and counts all match, else the first difference."""

    preset: str
    num_tensors: int
    num_elements: int
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def preset_config(name: str, entry: Mapping[str, Any]) -> EncoderDepthSplatCfg:
    """The configuration of key-file preset ``name``: its ``encoder_config``, else the port's
    preset of that name."""
    if "encoder_config" in entry:
        return _config_from_mapping(entry["encoder_config"], f"preset {name!r}: encoder_config")
    port_name = KEY_FILE_PRESETS.get(name, name)
    if port_name not in PRESETS:
        raise ParityError(
            f"preset {name!r} has no encoder_config and the port has no preset of that name ({sorted(PRESETS)})"
        )
    return PRESETS[port_name]()


def port_layout(cfg: EncoderDepthSplatCfg) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of every state-dict entry of the port, in order, built on the meta
    device (no memory, no initialisation)."""
    with torch.device("meta"):
        encoder = EncoderDepthSplat(cfg)
    return [(name, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in encoder.state_dict().items()]


def compare_layout(
    preset: str, port: list[tuple[str, tuple[int, ...], str]], entry: Mapping[str, Any]
) -> LayoutCheck:
    """Compare the port's layout with a key-file entry ({keys: [{name, shape, dtype}], num_tensors,
    num_elements})."""
    try:
        listed = [(str(e["name"]), tuple(int(s) for s in e["shape"]), str(e.get("dtype", "float32"))) for e in entry["keys"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ParityError(f"preset {preset!r}: 'keys' must be a list of {{name, shape, dtype}} objects ({error})") from error
    elements = sum(_numel(shape) for _, shape, _ in port)
    result = LayoutCheck(preset, len(port), elements)
    port_names = {name for name, _, _ in port}
    listed_names = {name for name, _, _ in listed}
    missing = [name for name, _, _ in listed if name not in port_names]
    unexpected = [name for name, _, _ in port if name not in listed_names]
    problems = []
    if missing:
        problems.append(f"{len(missing)} listed name(s) missing in the port, first {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} port name(s) not listed, first {unexpected[:3]}")
    for index, (mine, theirs) in enumerate(zip(port, listed)):
        if mine != theirs:
            problems.append(
                f"first difference at entry {index}: port {mine[0]} {list(mine[1])} {mine[2]} vs "
                f"listed {theirs[0]} {list(theirs[1])} {theirs[2]}"
            )
            break
    if len(port) != len(listed):
        problems.append(f"{len(port)} port tensors vs {len(listed)} listed")
    for key, actual in (("num_tensors", len(port)), ("num_elements", elements)):
        if key in entry and int(entry[key]) != actual:
            problems.append(f"{key}: port {actual} vs listed {entry[key]}")
    result.problem = "; ".join(problems) or None
    return result


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def check_key_layouts(key_file: Mapping[str, Any]) -> list[LayoutCheck]:
    """Every preset of a key file (``{"presets": {name: {"keys": [...], "encoder_config": {...},
    ...}}}``) against the port."""
    presets = key_file.get("presets") if isinstance(key_file, Mapping) else None
    if not isinstance(presets, Mapping) or not presets:
        raise ParityError(
            "the key file needs a non-empty 'presets' object ({name: {keys: [...], encoder_config: {...}}}), "
            "as in ../shared/parity/depthsplat/preset_state_dict_keys.json"
        )
    results = []
    for name, entry in presets.items():
        if not isinstance(entry, Mapping) or "keys" not in entry:
            raise ParityError(f"preset {name!r} of the key file has no 'keys' list")
        results.append(compare_layout(name, port_layout(preset_config(name, entry)), entry))
    return results
