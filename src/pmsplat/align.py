"""Batched, weighted similarity (Umeyama) alignment of point sets with index correspondence.

Given a source set x_i and a target set y_i (same index = same pixel), find the scale s > 0,
rotation R (det R = +1) and translation t minimising

    sum_i w_i || y_i - (s R x_i + t) ||^2  /  sum_i w_i

in closed form (Umeyama 1991): with weighted means mu_x, mu_y, source variance
sigma_x^2 = sum_i w_i |x_i - mu_x|^2 / W and cross-covariance
Sigma = sum_i w_i (y_i - mu_y)(x_i - mu_x)^T / W = U D V^T,

    S = diag(1, 1, sign(det U det V)),  R = U S V^T,  s = trace(D S) / sigma_x^2,
    t = mu_y - s R mu_x.

The reflection fix S is built from the determinant sign as a tensor (no Python branch), the whole
batch is solved at once, and by default gradients flow through the fit into both point sets (as
in the official PM-Loss code). The fit runs in float64; results come back in the input dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from pmsplat.errors import DegenerateInputError, InputError

#: Relative tolerances of the degeneracy checks (on the eigenvalues of the float64 covariance).
IDENTICAL_TOLERANCE = 1e-14
COLLINEAR_TOLERANCE = 1e-10


@dataclass
class SimilarityTransform:
    """x -> scale * rotation @ x + translation, one transform per batch element.

    scale: (B,) positive; rotation: (B, 3, 3) proper rotations; translation: (B, 3).
    """

    scale: Float[Tensor, "batch"]
    rotation: Float[Tensor, "batch 3 3"]
    translation: Float[Tensor, "batch 3"]

    def apply(self, points: Float[Tensor, "batch point 3"]) -> Float[Tensor, "batch point 3"]:
        """Transform (B, N, 3) points (computed in the points' dtype)."""
        rotation = self.rotation.to(points.dtype)
        scale = self.scale.to(points.dtype)
        translation = self.translation.to(points.dtype)
        return scale[:, None, None] * torch.einsum("bij,bnj->bni", rotation, points) + translation[:, None, :]


def _check_inputs(source: Tensor, target: Tensor, weights: Tensor | None, mask: Tensor | None) -> None:
    for name, tensor in (("source", source), ("target", target)):
        if not isinstance(tensor, Tensor) or tensor.ndim != 3 or tensor.shape[-1] != 3:
            shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise InputError(f"similarity_align: '{name}' must have shape (B, N, 3), got {shape}.")
        if not tensor.is_floating_point():
            raise InputError(f"similarity_align: '{name}' must be a floating-point tensor, got {tensor.dtype}.")
    if source.shape != target.shape:
        raise InputError(
            f"similarity_align: 'source' {tuple(source.shape)} and 'target' {tuple(target.shape)} must have the "
            "same shape (B, N, 3): points correspond by index."
        )
    if source.dtype != target.dtype or source.device != target.device:
        raise InputError(
            f"similarity_align: 'source' ({source.dtype}, {source.device}) and 'target' ({target.dtype}, "
            f"{target.device}) must share dtype and device."
        )
    if source.shape[0] == 0 or source.shape[1] == 0:
        raise InputError(f"similarity_align: empty input of shape {tuple(source.shape)}; expected (B >= 1, N >= 3, 3).")
    batch, count = source.shape[:2]
    if weights is not None:
        if not isinstance(weights, Tensor) or tuple(weights.shape) != (batch, count) or not weights.is_floating_point():
            raise InputError(
                f"similarity_align: 'weights' must be a floating-point tensor of shape ({batch}, {count}), got "
                f"{tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__}."
            )
        if weights.device != source.device:
            raise InputError(f"similarity_align: 'weights' is on {weights.device}, the points on {source.device}.")
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise InputError("similarity_align: 'weights' must be finite and non-negative.")
    if mask is not None:
        if not isinstance(mask, Tensor) or tuple(mask.shape) != (batch, count) or mask.dtype != torch.bool:
            raise InputError(
                f"similarity_align: 'mask' must be a bool tensor of shape ({batch}, {count}), got "
                f"{(tuple(mask.shape), mask.dtype) if isinstance(mask, Tensor) else type(mask).__name__}."
            )
        if mask.device != source.device:
            raise InputError(f"similarity_align: 'mask' is on {mask.device}, the points on {source.device}.")


def _raise_if_degenerate(name: str, covariance: Float[Tensor, "batch 3 3"], mean: Float[Tensor, "batch 3"]) -> None:
    """DegenerateInputError when a weighted point set is (numerically) one point or one line.

    covariance: the weighted covariance about ``mean``; its eigenvalues are the variances along the
    principal axes. Identical: largest <= IDENTICAL_TOLERANCE * (trace + |mean|^2); collinear:
    middle <= COLLINEAR_TOLERANCE * largest.
    """
    with torch.no_grad():
        eigenvalues = torch.linalg.eigvalsh(covariance)  # ascending
        largest, middle = eigenvalues[:, 2], eigenvalues[:, 1]
        magnitude = torch.diagonal(covariance, dim1=-2, dim2=-1).sum(-1) + mean.square().sum(-1)
        identical = largest <= IDENTICAL_TOLERANCE * magnitude
        collinear = ~identical & (middle <= COLLINEAR_TOLERANCE * largest)
        if bool((identical | collinear).any()):
            bad_identical = identical.nonzero().flatten().tolist()
            bad_collinear = collinear.nonzero().flatten().tolist()
            parts = []
            if bad_identical:
                parts.append(f"all (weighted, valid) points identical in batch element(s) {bad_identical}")
            if bad_collinear:
                parts.append(f"all points collinear in batch element(s) {bad_collinear}")
            raise DegenerateInputError(
                f"similarity_align: '{name}' cannot define a similarity transform: {'; '.join(parts)}. "
                "A rotation needs at least 3 non-collinear points; mask out or drop these examples."
            )


def similarity_align(
    source: Tensor,
    target: Tensor,
    weights: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    detach_fit: bool = False,
    with_scale: bool = True,
    check_degenerate: bool = True,
) -> tuple[Float[Tensor, "batch point 3"], SimilarityTransform]:
    """Align ``source`` onto ``target`` (index correspondence) with a similarity transform.

    source, target: (B, N, 3) point sets, same dtype/device; point i of source matches point i of
        target. Points excluded by ``mask`` may hold any value, including NaN/inf.
    weights: optional (B, N) non-negative per-point weights (e.g. a teacher confidence).
    mask: optional (B, N) bool, True = the pair takes part in the fit.
    detach_fit: if True the transform is fitted on detached inputs (stop-gradient through the
        alignment); gradients still flow through ``aligned = s R source + t`` into ``source``.
    with_scale: if False, fit a rigid transform (scale fixed to 1).
    check_degenerate: raise DegenerateInputError (naming the batch elements) when an example has
        fewer than 3 valid points, a zero weight sum, or identical / collinear source or target
        points. Turning it off skips one host sync; degenerate examples then give undefined results.

    Returns ``(aligned_source (B, N, 3), SimilarityTransform)`` in the input dtype; the aligned
    source is computed for every point (masked ones too, NaN stays NaN there).

    The arguments are validated here (InputError naming the argument); the shape-annotated fit
    itself is :func:`_fit`.
    """
    _check_inputs(source, target, weights, mask)
    return _fit(source, target, weights, mask, detach_fit, with_scale, check_degenerate)


def _fit(
    source: Float[Tensor, "batch point 3"],
    target: Float[Tensor, "batch point 3"],
    weights: Float[Tensor, "batch point"] | None,
    mask: Bool[Tensor, "batch point"] | None,
    detach_fit: bool,
    with_scale: bool,
    check_degenerate: bool,
) -> tuple[Float[Tensor, "batch point 3"], SimilarityTransform]:
    """The Umeyama fit on validated inputs (see :func:`similarity_align`)."""
    dtype = source.dtype
    compute = torch.float64
    x_all = source.to(compute)
    y_all = target.to(compute)
    if mask is not None and bool(mask.all()):
        mask = None
    w = None if weights is None else weights.to(compute)
    if mask is not None:
        zero = torch.zeros((), dtype=compute, device=source.device)
        w = torch.where(mask, zero + 1 if w is None else w, zero)
        # Zero the masked points so that NaN/inf there cannot leak into sums (0 * inf = NaN).
        x = torch.where(mask[..., None], x_all, zero)
        y = torch.where(mask[..., None], y_all, zero)
    else:
        x, y = x_all, y_all
    if detach_fit:
        x, y = x.detach(), y.detach()
        w = None if w is None else w.detach()

    if w is None:
        total = torch.full(source.shape[:1], float(source.shape[1]), dtype=compute, device=source.device)
        if check_degenerate and source.shape[1] < 3:
            raise DegenerateInputError(
                f"similarity_align: only {source.shape[1]} points per example; a similarity transform needs at "
                "least 3 non-collinear points."
            )
    else:
        total = w.sum(-1)
        if check_degenerate:
            few = (w > 0).sum(-1) < 3
            if bool(few.any()):
                raise DegenerateInputError(
                    "similarity_align: fewer than 3 points with positive weight (after 'mask') in batch element(s) "
                    f"{few.nonzero().flatten().tolist()}; a similarity transform needs at least 3 non-collinear points."
                )
    safe_total = total.clamp_min(torch.finfo(compute).tiny)
    wx = x if w is None else w[..., None] * x
    wy = y if w is None else w[..., None] * y
    mu_x = wx.sum(1) / safe_total[:, None]
    mu_y = wy.sum(1) / safe_total[:, None]
    # Covariances from centred copies (not E[xx^T] - mu mu^T, which cancels catastrophically).
    xc = x - mu_x[:, None, :]
    yc = y - mu_y[:, None, :]
    wxc = xc if w is None else w[..., None] * xc
    cov_x = torch.bmm(wxc.transpose(1, 2), xc) / safe_total[:, None, None]
    sigma = torch.bmm(yc.transpose(1, 2), wxc) / safe_total[:, None, None]
    if check_degenerate:
        _raise_if_degenerate("source", cov_x, mu_x)
        wyc = yc if w is None else w[..., None] * yc
        cov_y = torch.bmm(wyc.transpose(1, 2), yc) / safe_total[:, None, None]
        _raise_if_degenerate("target", cov_y, mu_y)

    var_x = torch.diagonal(cov_x, dim1=-2, dim2=-1).sum(-1)
    u, d, vh = torch.linalg.svd(sigma)
    sign = torch.sign(torch.linalg.det(u) * torch.linalg.det(vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    s_diag = torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], dim=-1)
    rotation = torch.einsum("bij,bj,bjk->bik", u, s_diag, vh)
    if with_scale:
        scale = (d * s_diag).sum(-1) / var_x
    else:
        scale = torch.ones_like(var_x)
    translation = mu_y - scale[:, None] * torch.einsum("bij,bj->bi", rotation, mu_x)

    transform = SimilarityTransform(scale.to(dtype), rotation.to(dtype), translation.to(dtype))
    aligned = torch.baddbmm(translation[:, None, :], x_all, (scale[:, None, None] * rotation).transpose(1, 2))
    return aligned.to(dtype), transform
