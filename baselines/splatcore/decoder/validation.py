"""Input checks of the splatting decoder: one clear error per problem, nothing silently dropped."""

from __future__ import annotations

import torch
from torch import Tensor

from ..types import Gaussians
from ..errors import InputError

# Relative tolerances of the covariance checks (float32 round-off of R S S^T R^T is ~1e-7).
SYMMETRY_TOLERANCE = 1e-4
PSD_TOLERANCE = 1e-5


def _shape_error(name: str, tensor: Tensor, expected: str) -> InputError:
    return InputError(f"{name} must have shape {expected}, got {tuple(tensor.shape)}.")


def check_shapes(
    gaussians: Gaussians,
    extrinsics: Tensor,
    intrinsics: Tensor,
    near: Tensor,
    far: Tensor,
    image_shape: tuple[int, int],
) -> None:
    """Shapes, dtypes and devices of everything the decoder receives."""
    means = gaussians.means
    if means.ndim != 3 or means.shape[-1] != 3:
        raise _shape_error("gaussians.means", means, "(B, G, 3)")
    batch, count = means.shape[:2]
    expected = {
        "gaussians.covariances": (gaussians.covariances, (batch, count, 3, 3), "(B, G, 3, 3)"),
        "gaussians.opacities": (gaussians.opacities, (batch, count), "(B, G)"),
    }
    for name, (tensor, shape, text) in expected.items():
        if tuple(tensor.shape) != shape:
            raise _shape_error(name, tensor, f"{text} = {shape}")
    harmonics = gaussians.harmonics
    if harmonics.ndim != 4 or tuple(harmonics.shape[:3]) != (batch, count, 3):
        raise _shape_error("gaussians.harmonics", harmonics, f"(B, G, 3, d_sh) with B, G = {batch}, {count}")
    if extrinsics.ndim != 4 or extrinsics.shape[0] != batch or extrinsics.shape[-2:] != (4, 4):
        raise _shape_error("extrinsics", extrinsics, f"(B, V, 4, 4) with B = {batch}")
    views = extrinsics.shape[1]
    for name, tensor, shape, text in (
        ("intrinsics", intrinsics, (batch, views, 3, 3), "(B, V, 3, 3)"),
        ("near", near, (batch, views), "(B, V)"),
        ("far", far, (batch, views), "(B, V)"),
    ):
        if tuple(tensor.shape) != shape:
            raise _shape_error(name, tensor, f"{text} = {shape}")
    if len(image_shape) != 2 or min(image_shape) < 1:
        raise InputError(f"image_shape must be (H, W) with H, W >= 1, got {image_shape}.")
    tensors = {
        "gaussians.means": means,
        "gaussians.covariances": gaussians.covariances,
        "gaussians.harmonics": harmonics,
        "gaussians.opacities": gaussians.opacities,
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
        "near": near,
        "far": far,
    }
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise InputError(f"{name} must be a floating-point tensor, got {tensor.dtype}.")
        if tensor.device != means.device:
            raise InputError(
                f"{name} is on {tensor.device} but gaussians.means is on {means.device}; move "
                "the batch and the Gaussians to the same device."
            )
        if tensor.dtype != means.dtype:
            raise InputError(
                f"{name} has dtype {tensor.dtype} but gaussians.means has {means.dtype}; use one "
                "floating-point dtype for Gaussians and cameras."
            )


def check_values(
    gaussians: Gaussians,
    extrinsics: Tensor,
    intrinsics: Tensor,
    near: Tensor,
    far: Tensor,
) -> None:
    """Finite values, opacities in [0, 1], near > 0, symmetric positive semi-definite covariances."""
    for name, tensor in (
        ("gaussians.means", gaussians.means),
        ("gaussians.covariances", gaussians.covariances),
        ("gaussians.harmonics", gaussians.harmonics),
        ("gaussians.opacities", gaussians.opacities),
        ("extrinsics", extrinsics),
        ("intrinsics", intrinsics),
        ("near", near),
        ("far", far),
    ):
        bad = ~torch.isfinite(tensor.detach())
        if bool(bad.any()):
            where = torch.nonzero(bad, as_tuple=False)[0].tolist()
            raise InputError(
                f"{name} holds {int(bad.sum())} non-finite value(s) (first at index {where}); "
                "the Gaussians/cameras must be finite -- check the encoder output for NaN/inf."
            )
    opacities = gaussians.opacities.detach()
    if bool(((opacities < 0) | (opacities > 1)).any()):
        raise InputError(
            f"gaussians.opacities must lie in [0, 1], got values in "
            f"[{opacities.min().item():.4g}, {opacities.max().item():.4g}]."
        )
    if bool((near.detach() <= 0).any()):
        raise InputError(
            f"near must be > 0 (it scales the scene and sets the 0.2*near cull), got min "
            f"{near.min().item():.4g}."
        )
    focal = torch.stack((intrinsics[..., 0, 0], intrinsics[..., 1, 1]), dim=-1).detach()
    if bool((focal <= 0).any()):
        raise InputError("intrinsics must have positive focal lengths K[0,0], K[1,1].")

    cov = gaussians.covariances.detach().to(torch.float64)
    scale = cov.diagonal(dim1=-2, dim2=-1).abs().amax(dim=-1).clamp_min(1e-30)
    asymmetry = (cov - cov.transpose(-1, -2)).abs().amax(dim=(-1, -2))
    asymmetric = asymmetry > SYMMETRY_TOLERANCE * scale
    if bool(asymmetric.any()):
        index = torch.nonzero(asymmetric, as_tuple=False)[0].tolist()
        raise InputError(
            f"gaussians.covariances must be symmetric; covariance {index} differs from its "
            f"transpose by {asymmetry[tuple(index)].item():.3g} (relative tolerance "
            f"{SYMMETRY_TOLERANCE}). Build covariances as R S S^T R^T."
        )
    # A symmetric matrix is positive semi-definite iff all its principal minors are >= 0.
    sym = 0.5 * (cov + cov.transpose(-1, -2))
    a, b, c = sym[..., 0, 0], sym[..., 1, 1], sym[..., 2, 2]
    ab, ac, bc = sym[..., 0, 1], sym[..., 0, 2], sym[..., 1, 2]
    minors_1 = torch.stack((a, b, c), dim=-1)
    minors_2 = torch.stack((a * b - ab * ab, a * c - ac * ac, b * c - bc * bc), dim=-1)
    minor_3 = torch.linalg.det(sym)
    indefinite = (
        (minors_1 < -PSD_TOLERANCE * scale[..., None]).any(dim=-1)
        | (minors_2 < -PSD_TOLERANCE * scale[..., None] ** 2).any(dim=-1)
        | (minor_3 < -PSD_TOLERANCE * scale**3)
    )
    if bool(indefinite.any()):
        index = torch.nonzero(indefinite, as_tuple=False)[0].tolist()
        smallest = torch.linalg.eigvalsh(sym[tuple(index)])[0].item()
        raise InputError(
            f"gaussians.covariances must be positive semi-definite; covariance {index} has "
            f"eigenvalue {smallest:.3g}. Build covariances as R S S^T R^T with real scales."
        )
