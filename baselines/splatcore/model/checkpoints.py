"""Checkpoint reading for the model wrapper (upstream-facts §5.1, §5.2, §5.4, §11.23).

Only ``encoder.*`` tensors are persistent in a ``ModelWrapper`` (the decoder's background and every
loss network are non-persistent buffers), so a Lightning ``.ckpt`` holds ``state_dict`` =
``{"encoder.<key>": tensor}``. Released ``.pth`` files may hold the mapping at the top level or
under ``"state_dict"`` / ``"model"``; :func:`read_state_dict` accepts all of these, and ``.safetensors``
files (a flat mapping, e.g. the shipped synthetic bases under ``checkpoints/synthetic/``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import CheckpointError

log = logging.getLogger(__name__)


def read_state_dict(path: str | Path, sub_key: str | None = "state_dict", what: str = "checkpoint") -> dict[str, Tensor]:
    """The tensor mapping stored in ``path`` (``checkpoint[sub_key]`` when that key exists)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{what} not found: {path} (check the path given in checkpointing.*, or download the file)"
        )
    label = what if str(path) in what else f"{what} {path}"  # callers often name the path already
    if path.stat().st_size == 0:
        raise CheckpointError(f"{label} is empty (0 bytes): it was not written completely; delete it and re-create it.")
    if path.suffix == ".safetensors":
        return _read_safetensors(path, label)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files
        raise CheckpointError(f"{label} could not be read as a torch checkpoint ({_load_failure(error)}); "
                              "the file is corrupt or not a checkpoint: re-create or re-download it.") from error
    if isinstance(checkpoint, Mapping) and sub_key is not None and isinstance(checkpoint.get(sub_key), Mapping):
        checkpoint = checkpoint[sub_key]
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{label} does not hold a mapping of tensors")
    return {k: v for k, v in checkpoint.items() if isinstance(v, Tensor)}


def _read_safetensors(path: Path, label: str) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` file (a flat mapping, e.g. ``encoder.*`` keys; float16
    files are cast to the model's dtype when loaded into it)."""
    try:
        from safetensors.torch import load_file
    except ImportError as error:
        raise CheckpointError(f"{label} is a .safetensors file and the safetensors package is missing: "
                              "pip install safetensors") from error
    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as error:  # safetensors raises SafetensorError / OSError / ValueError
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{label} could not be read as a safetensors file ({reason}); "
                              "the file is corrupt or truncated: re-create or re-download it.") from error


def _load_failure(error: Exception) -> str:
    """One line for why torch.load failed: the unpickler's reason instead of torch's multi-line
    ``weights_only`` advice (which does not apply: a checkpoint of tensors loads with it)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        reasons = [line for line in lines[1:] if not line.startswith(("Please file", "Check the documentation", "WeightsUnpickler"))]
        return f"unpickling failed: {reasons[0]}" if reasons else "unpickling failed"
    return lines[0] if lines else type(error).__name__


def strip_prefix(state: Mapping[str, Tensor], prefix: str) -> tuple[dict[str, Tensor], list[str]]:
    """(entries under ``prefix`` with it removed, keys outside it)."""
    inside = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    outside = [k for k in state if not k.startswith(prefix)]
    return inside, outside


def load_weights(
    module: nn.Module,
    path: str | Path,
    *,
    prefix: str = "",
    sub_key: str | None = "state_dict",
    strict: bool = True,
    what: str = "checkpoint",
) -> tuple[list[str], list[str]]:
    """Load the entries of ``path`` under ``prefix`` (stripped) into ``module``.

    Strict: any missing or unexpected key (or shape mismatch) is a :class:`CheckpointError`
    naming the first few. Non-strict: mismatches are logged. Returns (missing, unexpected).
    """
    state = read_state_dict(path, sub_key, what)
    if prefix:
        state, outside = strip_prefix(state, prefix)
        if not state:
            raise CheckpointError(f"{what} {path} has no '{prefix}*' entries (found e.g. {outside[:3]})")
    own = module.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        detail = ", ".join(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched[:3])
        if strict:
            raise CheckpointError(f"{what} {path}: {len(mismatched)} shape mismatch(es), e.g. {detail}")
        log.warning("%s %s: skipping %d entries with other shapes (%s)", what, path, len(mismatched), detail)
        state = {k: v for k, v in state.items() if k not in mismatched}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{what} {path} does not match the model: {len(missing)} missing key(s) (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[:3]}); check the model config "
            "(model.encoder.*) or set checkpointing.no_strict_load=true"
        )
    module.load_state_dict(state, strict=False)
    log.info("loaded %s %s: %d tensors, %d missing, %d unexpected", what, path, len(state), len(missing), len(unexpected))
    return missing, unexpected
