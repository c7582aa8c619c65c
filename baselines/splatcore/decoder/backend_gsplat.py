"""The gsplat backend: ``gsplat.rasterization`` on CUDA, every target camera in one call.

Each (batch, view) image is one gsplat batch element holding that camera's normalised copy of the
Gaussians (the 1/near scale differs per camera, so Gaussians cannot be shared across cameras),
with one camera. Colours are computed by the caller (permuted SH, see ``sh``) and passed as
post-activation features with ``sh_degree=None``; a requested depth pass rides along as a fourth
feature channel (accumulated, like ``render_mode="RGB+D"``, but valid for every depth mode).

Mapping of the upstream rules onto gsplat (1.5):

- near cull "z <= near_cull": gsplat culls ``z < near_plane``, so near_plane is the next float32
  above ``near_cull`` (bit-exact equivalence); no far cull (far_plane = inf);
- +0.3 px^2 low-pass, 1/255 threshold: ``eps2d=0.3``, ``rasterize_mode="classic"`` (hard-coded
  threshold);
- alpha cap 0.99: gsplat hard-codes min(0.999, o e^{-sigma}). Opacities are passed as min(o, 0.99)
  (straight-through gradient), which is *exact* for o <= 0.99. For o in (0.99, 1] alpha becomes
  0.99 e^{-sigma} instead of min(0.99, o e^{-sigma}): equal at the centre, at most 1 - 0.99/o
  (< 1.01 %) smaller elsewhere;
- early stop: gsplat stops when T (1 - alpha) <= 1e-4, upstream when < 1e-4 (differs only on exact
  equality);
- footprint: gsplat's opacity-aware box is exact for the 1/255 threshold (the torch backend uses
  the same property), so neither backend truncates as upstream's 3-sigma tile box does.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import BackendUnavailableError
from .rasterize_torch import ALPHA_CAP


def gsplat_available() -> bool:
    """True when CUDA is available and gsplat imports."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def require_gsplat(device: torch.device) -> None:
    """Raise a clear error when the gsplat backend cannot run on ``device``."""
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            "decoder.backend='gsplat' needs a CUDA device, and none is available here. Use "
            "decoder.backend=torch (exact CPU rasteriser) or decoder.backend=auto."
        )
    if device.type != "cuda":
        raise BackendUnavailableError(
            f"decoder.backend='gsplat' renders on CUDA but the Gaussians are on {device}; move the "
            "model and batch to the GPU or use decoder.backend=torch."
        )
    try:
        import gsplat  # noqa: F401
    except ImportError as error:
        raise BackendUnavailableError(
            "decoder.backend='gsplat' needs the gsplat package: pip install gsplat"
        ) from error


def saturate_opacity(opacities: Tensor) -> Tensor:
    """min(o, 0.99) in the forward pass, identity gradient (see the module docstring)."""
    return opacities - (opacities - ALPHA_CAP).clamp_min(0.0).detach()


def rasterize_gsplat(
    means: Float[Tensor, "image gaussian 3"],
    covariances: Float[Tensor, "image gaussian 3 3"],
    opacities: Float[Tensor, "image gaussian"],
    features: Float[Tensor, "image gaussian channel"],
    backgrounds: Float[Tensor, "image channel"],
    viewmats: Float[Tensor, "image 4 4"],
    pixel_k: Float[Tensor, "image 3 3"],
    image_shape: tuple[int, int],
    near_cull: float,
) -> tuple[Float[Tensor, "image height width channel"], Float[Tensor, "image height width"]]:
    """Render every image with one ``gsplat.rasterization`` call.

    gsplat's kernels are float32: other dtypes are cast to float32 for the call and the results
    cast back (a float64 decoder on CUDA therefore renders at float32 precision with this backend;
    use the torch backend for float64 checks).

    Returns (features + T * background (I, H, W, C), accumulated alpha 1 - T (I, H, W)).
    """
    require_gsplat(means.device)
    from gsplat import rasterization

    dtype = features.dtype
    means, covariances, opacities, features, backgrounds, viewmats, pixel_k = (
        t.float() for t in (means, covariances, opacities, features, backgrounds, viewmats, pixel_k)
    )
    height, width = image_shape
    near_plane = float(np.nextafter(np.float32(near_cull), np.float32(np.inf)))
    rendered, alphas, _ = rasterization(
        means=means,
        quats=None,
        scales=None,
        opacities=saturate_opacity(opacities),
        colors=features,
        viewmats=viewmats[:, None],
        Ks=pixel_k[:, None],
        width=width,
        height=height,
        near_plane=near_plane,
        far_plane=float("inf"),
        eps2d=0.3,
        sh_degree=None,
        backgrounds=backgrounds[:, None],
        render_mode="RGB",
        rasterize_mode="classic",
        covars=covariances,
    )
    return rendered[:, 0].to(dtype), alphas[:, 0, ..., 0].to(dtype)
