"""What every wrapped pretrained teacher model shares: freezing, device/dtype choice, weight loading.

Weights (``teacher.weights``) are one of

- a local **file**: a torch checkpoint (``.pt``/``.pth``/``.bin``/``.ckpt``: a state dict, or a dict
  with the state dict under ``model``) or a ``.safetensors`` state dict. Torch files are read with
  ``torch.load(weights_only=True)``; the only Python object allowed besides tensors and plain
  containers is an ``argparse.Namespace`` (what official DUSt3R checkpoints keep under ``args``);
- a local **folder** in the Hugging Face layout (``config.json`` + ``model.safetensors``, what
  ``save_pretrained`` / a hub snapshot holds), given as an absolute or a relative path alike;
- otherwise a Hugging Face **hub id** (``org/name``), loaded through the package's
  ``from_pretrained`` (the hub cache, or a download where there is network).

A path-looking value that does not exist, and a hub id that cannot be loaded, are one
:class:`~pmsplat.errors.MissingWeightsError` naming what was tried and how to fix it.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from pmsplat.errors import InputError, MissingDependencyError, MissingWeightsError, PmsplatError


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and requires_grad=False on every parameter. The teacher is never trained."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def default_device(device: str | None) -> torch.device:
    return torch.device(device if device else ("cuda" if torch.cuda.is_available() else "cpu"))


def inference_dtype(device: torch.device, requested: str = "auto") -> torch.dtype:
    """The autocast dtype: bfloat16 on Ampere or newer, float16 on older CUDA GPUs, float32 on CPU
    (as the official PM-Loss code chooses for VGGT). ``requested`` overrides "auto"."""
    if requested != "auto":
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[requested]
    if device.type != "cuda":
        return torch.float32
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def autocast_context(device: torch.device, dtype: torch.dtype):
    """torch.autocast for reduced precision, nothing for float32."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
HF_WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class WeightsSource:
    """Where ``teacher.weights`` points: ``kind`` file / folder (``path`` resolved, absolute) or
    hub (``path`` is the hub id)."""

    kind: Literal["file", "folder", "hub"]
    path: str


def _looks_like_path(weights: str) -> bool:
    """A value that can only be meant as a path: a weight-file suffix, an explicit root/home/dot
    prefix, or more than one separator (hub ids are ``org/name``)."""
    return (
        weights.endswith(WEIGHT_SUFFIXES)
        or weights.startswith(("/", "./", "../", "~", ".\\"))
        or weights.count("/") > 1
        or "\\" in weights
        or weights in (".", "..")
    )


def resolve_weights(weights: str, teacher_name: str, hint: str = "") -> WeightsSource:
    """Classify ``teacher.weights`` (see the module docstring). An existing file or folder wins over
    a hub id of the same spelling; a path-looking value that does not exist is an error."""
    if not isinstance(weights, str) or not weights.strip():
        raise InputError(f"{teacher_name}: teacher.weights must be a local file/folder path or a Hugging Face hub id, got {weights!r}.")
    path = Path(weights).expanduser()
    if path.is_file():
        return WeightsSource("file", str(path.resolve()))
    if path.is_dir():
        return WeightsSource("folder", str(path.resolve()))
    if _looks_like_path(weights):
        raise MissingWeightsError(
            f"{teacher_name} weights not found at {path.resolve() if not path.is_absolute() else path}. "
            + (hint or "Download them on a machine with internet and pass the local path (teacher.weights=/path/to/file).")
        )
    return WeightsSource("hub", weights)


def read_checkpoint(path: str | Path, teacher_name: str) -> dict:
    """A weights file as a dict: ``.safetensors`` -> ``{"model": state_dict, "metadata": {...}}``;
    torch files -> the loaded object, read with ``weights_only=True`` and ``argparse.Namespace``
    allow-listed (official DUSt3R checkpoints: ``{"model": state_dict, "args": Namespace(...)}``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                state = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as error:  # safetensors raises its own error types for a corrupt header
            raise PmsplatError(f"{teacher_name}: {path} is not a readable .safetensors file ({type(error).__name__}: {error}).") from error
        return {"model": state, "metadata": metadata}
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()
        detail = next((line for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else "")
        raise PmsplatError(
            f"{teacher_name}: {path} holds Python objects other than tensors, plain containers and an "
            f"argparse.Namespace ({detail.strip()}). pmsplat reads checkpoints with torch.load(weights_only=True) and "
            "does not unpickle arbitrary objects. If you trust the file, re-save it as {'model': state_dict} (or "
            "as .safetensors) and pass that file."
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise PmsplatError(f"{teacher_name}: {path} is not a readable torch checkpoint ({type(error).__name__}: {error}).") from error
    if not isinstance(loaded, dict):
        raise PmsplatError(f"{teacher_name}: {path} holds a {type(loaded).__name__}, expected a state dict or a dict with 'model'.")
    return loaded


def state_dict_of(checkpoint: dict, teacher_name: str, path: str | Path) -> dict:
    """The state dict inside a checkpoint dict: its ``model`` (or ``state_dict``) entry when that
    is a dict, else the checkpoint itself when all its values are tensors."""
    for key in ("model", "state_dict"):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    if checkpoint and all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        return checkpoint
    raise PmsplatError(
        f"{teacher_name}: {path} has no state dict (keys {sorted(map(str, checkpoint))[:8]}); expected a state dict or "
        "a dict with the state dict under 'model'."
    )


def load_state(model: nn.Module, state: dict, teacher_name: str, path: str | Path) -> nn.Module:
    """``model.load_state_dict(state)``; any missing or unexpected key is an error naming a few."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches raise even with strict=False
        details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        raise PmsplatError(
            f"{teacher_name} weights {path} do not match the model: {'; '.join(details[:3]) or error}. Check that the "
            "file is the right checkpoint for this teacher (and, where the architecture is configurable, that it "
            "matches the file)."
        ) from error
    if missing or unexpected:
        raise PmsplatError(
            f"{teacher_name} weights {path} do not match the model: {len(missing)} missing keys "
            f"(e.g. {list(missing)[:3]}), {len(unexpected)} unexpected keys (e.g. {list(unexpected)[:3]}). "
            "Check that the file is the right checkpoint for this teacher (and, where the architecture is "
            "configurable, that it matches the file)."
        )
    return model


def check_hf_folder(path: str | Path, teacher_name: str) -> None:
    """A Hugging Face–layout folder holds ``model.safetensors`` (and usually ``config.json``)."""
    path = Path(path)
    if not (path / HF_WEIGHTS_FILE).is_file():
        found = sorted(entry.name for entry in path.iterdir())[:10]
        raise MissingWeightsError(
            f"{teacher_name}: the folder {path} is not a Hugging Face model folder: it has no {HF_WEIGHTS_FILE} "
            f"(found {found}). Pass the folder that save_pretrained / a hub snapshot wrote, or a weights file."
        )


def read_folder_config(path: str | Path) -> dict:
    """``config.json`` of a Hugging Face–layout folder ({} when absent)."""
    config = Path(path) / "config.json"
    return json.loads(config.read_text()) if config.is_file() else {}


def load_weights(
    weights: str,
    build_empty: Callable[[], nn.Module],
    from_pretrained: Callable[[str], nn.Module],
    teacher_name: str,
    hint: str = "",
    build_from_checkpoint: Callable[[dict, Path], nn.Module] | None = None,
) -> nn.Module:
    """Load a teacher model from ``weights`` (see the module docstring).

    build_empty: the model with its default architecture (for a bare state dict file).
    from_pretrained: the package's loader for hub ids and Hugging Face folders.
    build_from_checkpoint: optional ``(checkpoint dict, path) -> model`` for checkpoint files that
    describe their own architecture (DUSt3R); the state dict is loaded into what it returns.
    hint: what to tell the user when the weights cannot be found or fetched.
    """
    source = resolve_weights(weights, teacher_name, hint)
    if source.kind == "file":
        path = Path(source.path)
        checkpoint = read_checkpoint(path, teacher_name)
        model = build_from_checkpoint(checkpoint, path) if build_from_checkpoint is not None else build_empty()
        return load_state(model, state_dict_of(checkpoint, teacher_name, path), teacher_name, path)
    if source.kind == "folder":
        check_hf_folder(source.path, teacher_name)
        try:
            return from_pretrained(source.path)
        except (MissingDependencyError, PmsplatError):
            raise
        except Exception as error:
            raise PmsplatError(
                f"{teacher_name}: could not load the model folder {source.path} ({type(error).__name__}: {error})."
            ) from error
    try:
        return from_pretrained(source.path)
    except (MissingDependencyError, PmsplatError):
        raise
    except Exception as error:  # network / hub errors have many types; re-raise with the fix
        raise MissingWeightsError(
            f"{teacher_name}: could not load '{weights}' from the Hugging Face hub ({type(error).__name__}: "
            f"{error}). "
            + (hint or "Without network access, download the weights elsewhere and pass a local path "
               "(teacher.weights=/path/to/model.pt or a model folder).")
        ) from error


def env_path(name: str) -> str | None:
    """An environment variable holding a path (None when unset or empty)."""
    value = os.environ.get(name, "").strip()
    return value or None
