"""Parity with the upstream encoders: the deterministic weight rule, parity-file loading and the
per-tensor comparison (see ../shared/parity/README.md).

Weight rule, for every ``(name, tensor)`` of ``encoder.state_dict()`` (encoder's own key, no
``encoder.`` prefix), with ``g = Generator().manual_seed((crc32(name) + seed) % 2**31)`` and all
numbers drawn in float32:

* rank >= 2: ``randn(shape) / sqrt(prod(shape[1:]))``;
* rank 1, name ending in ``weight`` / ``gamma``: ``1 + 0.1 randn``;
* rank 1, name ending in ``running_var``: ``1 + 0.1 |randn|``;
* other rank 1: ``0.1 randn``;
* rank 0 or integer entries: left unchanged.

Encoder configuration of a set (:meth:`ParityFile.hook_metadata`): the file's ``encoder_config``
metadata where present, else the ``encoder_config`` of the ``config.json`` beside the file (the
fixture configuration of ../shared/parity/<baseline>/), handed to the baseline's parity hook as the
``encoder_config`` metadata entry (a JSON string).

Comparison: ``max |port - ref| / max |ref|`` against a per-tensor tolerance (5e-4 for ``inter_*``,
2e-3 for final outputs). Reference tensors named ``X_every8`` hold ``X[:, ::8]`` and ``X_strideS``
hold ``X[..., ::S, ::S]``; ``reference_slice`` applies the same slicing to the port's ``X``.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import SplatcoreError

INTERMEDIATE_TOLERANCE = 5e-4
FINAL_TOLERANCE = 2e-3


class ParityError(SplatcoreError):
    """A parity file is missing, unreadable or inconsistent, or a port cannot produce a tensor."""


def deterministic_value(name: str, tensor: Tensor, seed: int) -> Tensor | None:
    """The value the weight rule assigns to state-dict entry ``name`` (None = leave unchanged)."""
    if tensor.dim() == 0 or not tensor.is_floating_point():
        return None
    generator = torch.Generator().manual_seed((zlib.crc32(name.encode("utf-8")) + seed) % 2**31)
    shape = tuple(tensor.shape)
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    if tensor.dim() >= 2:
        value = noise / math.sqrt(math.prod(shape[1:]))
    elif name.endswith("weight") or name.endswith("gamma"):
        value = 1 + 0.1 * noise
    elif name.endswith("running_var"):
        value = 1 + 0.1 * noise.abs()
    else:
        value = 0.1 * noise
    return value


@torch.no_grad()
def apply_deterministic_weights(module: nn.Module, seed: int) -> int:
    """Overwrite every floating-point entry of ``module.state_dict()`` with the weight rule;
    returns the number of entries overwritten."""
    count = 0
    for name, tensor in module.state_dict().items():
        value = deterministic_value(name, tensor, seed)
        if value is None:
            continue
        tensor.copy_(value.to(dtype=tensor.dtype, device=tensor.device))
        count += 1
    return count


@dataclass
class ParityFile:
    """A parity set: its tensors and its string metadata (seed, V, H, W, ...)."""

    path: Path
    tensors: dict[str, Tensor]
    metadata: dict[str, str]

    def int_meta(self, key: str) -> int:
        if key not in self.metadata:
            raise ParityError(f"{self.path}: metadata key {key!r} is missing (has {sorted(self.metadata)}).")
        try:
            return int(self.metadata[key])
        except ValueError as error:
            raise ParityError(f"{self.path}: metadata {key}={self.metadata[key]!r} is not an integer.") from error

    @property
    def seed(self) -> int:
        return self.int_meta("seed")

    def hook_metadata(self) -> dict[str, str]:
        """The metadata for a baseline's ``build_encoder``: the file's own, plus ``encoder_config``
        (JSON) taken from the ``config.json`` beside the file when the file carries none and that
        file has one (``encoder_config_source`` then names it)."""
        metadata = dict(self.metadata)
        if "encoder_config" in metadata:
            return metadata
        config_path = self.path.parent / "config.json"
        if not config_path.is_file():
            return metadata
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ParityError(f"{config_path} (the fixture configuration beside {self.path.name}) is unreadable: {error}") from error
        if isinstance(config, dict) and isinstance(config.get("encoder_config"), dict):
            metadata["encoder_config"] = json.dumps(config["encoder_config"])
            metadata["encoder_config_source"] = str(config_path)
        return metadata

    @property
    def inputs(self) -> dict[str, Tensor]:
        """The ``input_*`` tensors without the prefix (image, extrinsics, intrinsics, near, far)."""
        return {k.removeprefix("input_"): v for k, v in self.tensors.items() if k.startswith("input_")}

    @property
    def references(self) -> dict[str, Tensor]:
        """Every tensor that is not an input."""
        return {k: v for k, v in self.tensors.items() if not k.startswith("input_")}


def load_parity_file(path: str | Path) -> ParityFile:
    """Read a parity ``.safetensors`` file (tensors + metadata)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ParityError(f"Parity file {path} does not exist; pass the path of a .safetensors parity set.")
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own exception types
        raise ParityError(f"Cannot read parity file {path}: {error}") from error
    missing = [k for k in ("input_image", "input_extrinsics", "input_intrinsics", "input_near", "input_far") if k not in tensors]
    if missing:
        raise ParityError(f"{path} lacks the input tensors {missing}; it is not a parity set.")
    return ParityFile(path, tensors, metadata)


_STRIDE = re.compile(r"^(?P<base>.+)_stride(?P<stride>\d+)$")
_EVERY = re.compile(r"^(?P<base>.+)_every(?P<step>\d+)$")


def base_name(reference_name: str) -> str:
    """``X_stride4`` / ``X_every8`` -> ``X``; other names unchanged."""
    for pattern in (_STRIDE, _EVERY):
        match = pattern.match(reference_name)
        if match:
            return match.group("base")
    return reference_name


def reference_slice(reference_name: str, port_tensor: Tensor) -> Tensor:
    """Apply to the port's full tensor the subsampling encoded in the reference name."""
    match = _STRIDE.match(reference_name)
    if match:
        s = int(match.group("stride"))
        return port_tensor[..., ::s, ::s]
    match = _EVERY.match(reference_name)
    if match:
        return port_tensor[:, :: int(match.group("step"))]
    return port_tensor


def tolerance_for(reference_name: str) -> float:
    """5e-4 for intermediates (``inter_*``), 2e-3 for final outputs."""
    return INTERMEDIATE_TOLERANCE if reference_name.startswith("inter_") else FINAL_TOLERANCE


@dataclass
class TensorComparison:
    name: str
    shape: tuple[int, ...]
    max_abs_ref: float
    max_abs_diff: float
    tolerance: float
    problem: str | None = None  # a shape mismatch, a missing tensor or non-finite values

    @property
    def relative_error(self) -> float:
        return self.max_abs_diff / self.max_abs_ref if self.max_abs_ref > 0 else self.max_abs_diff

    @property
    def ok(self) -> bool:
        return self.problem is None and self.relative_error <= self.tolerance


def compare_tensor(reference_name: str, reference: Tensor, port_full: Tensor | None) -> TensorComparison:
    """Compare one reference tensor with the port's (full, unsliced) tensor of the same base name."""
    shape = tuple(reference.shape)
    max_ref = float(reference.abs().max()) if reference.numel() else 0.0
    tol = tolerance_for(reference_name)
    if port_full is None:
        return TensorComparison(reference_name, shape, max_ref, math.inf, tol, "missing in the port's outputs")
    port = reference_slice(reference_name, port_full.detach().float().cpu())
    if tuple(port.shape) != shape:
        return TensorComparison(
            reference_name, shape, max_ref, math.inf, tol, f"shape {tuple(port.shape)} != reference {shape}"
        )
    if not bool(torch.isfinite(port).all()):
        return TensorComparison(reference_name, shape, max_ref, math.inf, tol, "non-finite values in the port")
    diff = float((port - reference.float()).abs().max()) if reference.numel() else 0.0
    return TensorComparison(reference_name, shape, max_ref, diff, tol)


def compare_outputs(references: dict[str, Tensor], port_outputs: dict[str, Tensor]) -> list[TensorComparison]:
    """Compare every reference tensor (sorted by name) with the port's outputs keyed by base name."""
    return [
        compare_tensor(name, references[name], port_outputs.get(base_name(name)))
        for name in sorted(references)
    ]
