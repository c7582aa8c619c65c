"""What every wrapped pretrained teacher model shares: freezing, device/dtype choice, weight loading."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from collections.abc import Callable

import torch
from torch import nn

from pmsplat.errors import MissingWeightsError, PMSplatError


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


def load_weights(
    weights: str,
    build_empty: Callable[[], nn.Module],
    from_hub: Callable[[str], nn.Module],
    teacher_name: str,
) -> nn.Module:
    """Load a teacher's weights from a local file (a state dict saved with torch.save or a
    .safetensors file) or, when ``weights`` is not an existing path, from the Hugging Face hub id.

    A path-looking string that does not exist, and a hub download that fails (no network, unknown
    id), both raise one error that names what was tried and how to fix it.
    """
    path = Path(weights).expanduser()
    looks_like_path = path.suffix in {".pt", ".pth", ".bin", ".safetensors", ".ckpt"} or weights.startswith(("/", "./", "~"))
    if path.is_file():
        model = build_empty()
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise PMSplatError(
                f"{teacher_name} weights {path} do not match the model: {len(missing)} missing keys "
                f"(e.g. {missing[:3]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:3]}). "
                "Check that the file is the right checkpoint for this teacher."
            )
        return model
    if looks_like_path:
        raise MissingWeightsError(
            f"{teacher_name} weights not found at {path}. Download them on a machine with internet "
            f"and pass the local file path (teacher.weights=/path/to/file)."
        )
    try:
        return from_hub(weights)
    except Exception as error:  # network / hub errors have many types; re-raise with the fix
        raise MissingWeightsError(
            f"{teacher_name}: could not load '{weights}' from the Hugging Face hub ({type(error).__name__}: "
            f"{error}). Without network access, download the weights elsewhere and pass a local path "
            "(teacher.weights=/path/to/model.pt)."
        ) from error
