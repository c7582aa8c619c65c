"""PM-Loss: align a teacher pointmap onto the predicted Gaussian centres, then a Chamfer distance.

Official-equivalent defaults (DESIGN.md "The PM-Loss, precisely"; upstream-facts 1.5, 11.17):

1. the teacher points are aligned onto the prediction by a similarity (Umeyama) fit using the
   pixel-index correspondence, gradients flowing through the fit (no stop-gradient);
2. per example, the mean over predicted points of the squared distance to the nearest aligned
   teacher point (single direction, prediction -> teacher);
3. NaN becomes 0, and a per-example loss above ``ignore_large_loss`` (100, squared units of the
   prediction's world scale) is multiplied by 1e-5;
4. :class:`PMLoss` returns ``weight * mean over the batch`` (weight 0.005).

Options, all off by default: ``bidirectional`` (add the teacher -> prediction term),
confidence weighting (alignment weighted by the teacher confidence, Chamfer terms weighted by the
confidence of the teacher point involved), ``robust`` distances (``"huber"`` on the Euclidean
distance, ``"trimmed"`` drops the largest fraction of per-point distances), stop-gradient through
the alignment, a per-pixel validity mask, and ``scale_invariant`` (every squared distance divided by
the prediction's mean squared distance to its centroid, so the loss no longer rewards shrinking the
prediction: with the teacher aligned onto the prediction the official loss scales with the
prediction's squared scale).

Non-finite teacher points are excluded from the alignment and from the nearest-neighbour search
and counted (``PMLossResult.nonfinite_teacher``, ``PMLoss.last_stats``); they never silently
turn an example's loss into 0.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass
from typing import Any, no_type_check

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int64
from torch import Tensor, nn

from pmsplat.align import SimilarityTransform, _fit
from pmsplat.errors import InputError
from pmsplat.knn import _nearest, finite_points
from pmsplat.teachers.base import Teacher, TeacherOutput


PM_WEIGHT = 0.005
"""The PM-Loss weight of the paper's runs and the official code: the one home of this default
(config/loss/pm.yaml leaves ``weight`` unset so that this value applies; the reproduction protocol
reads it from here)."""


def _register_resolver() -> None:
    """``${pm_weight:}`` in the Hydra tree (config/loss/pm.yaml) resolves to :data:`PM_WEIGHT`."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("pm_weight"):
        OmegaConf.register_new_resolver("pm_weight", lambda: PM_WEIGHT)


_register_resolver()

KNN_METHODS = ("auto", "brute", "pykdtree", "kdtree", "grid")
ROBUST_KERNELS = ("none", "huber", "trimmed")


@dataclass(frozen=True)
class PMLossConfig:
    """PM-Loss settings. Defaults reproduce the official PM-Loss arithmetic.

    weight: multiplier of the batch-mean loss (0.005 in the paper's DepthSplat runs).
    ignore_large_loss: per-example losses above this are multiplied by ``large_loss_factor``;
        None or <= 0 disables the rule.
    bidirectional: also add the mean teacher -> prediction squared distance.
    confidence_weighting: use the teacher's confidence as alignment and Chamfer weights.
    robust: "none" (squared distance), "huber" (quadratic below ``huber_delta``, linear above,
        on the Euclidean distance), or "trimmed" (drop the ``trim_fraction`` largest distances).
    stop_gradient_alignment: fit the similarity transform on detached points.
    scale_invariant: divide every squared distance (both Chamfer directions, before the robust
        kernel, so ``huber_delta`` is then in units of the prediction's scale) by the prediction's
        scale^2 = mean over its (valid) points of |p - centroid|^2, per example, with gradients
        through the normaliser. The loss is then unchanged when the prediction is scaled (and
        rotated/translated): it no longer pulls the prediction towards a smaller scale.
        ``ignore_large_loss`` applies to the normalised value.
    knn_method: engine of :func:`pmsplat.knn.nearest_neighbors` ("auto", "brute", "pykdtree", "kdtree",
        "grid").
    """

    weight: float = PM_WEIGHT
    ignore_large_loss: float | None = 100.0
    large_loss_factor: float = 1e-5
    bidirectional: bool = False
    confidence_weighting: bool = False
    robust: str = "none"
    huber_delta: float = 0.1
    trim_fraction: float = 0.1
    stop_gradient_alignment: bool = False
    scale_invariant: bool = False
    knn_method: str = "auto"

    def __post_init__(self) -> None:
        """Validated once, here: the loss functions trust a PMLossConfig instance."""
        if self.robust not in ROBUST_KERNELS:
            raise InputError(f"PMLossConfig.robust must be 'none', 'huber' or 'trimmed', got {self.robust!r}.")
        if self.robust == "huber" and not self.huber_delta > 0:
            raise InputError(f"PMLossConfig.huber_delta must be > 0, got {self.huber_delta}.")
        if self.robust == "trimmed" and not 0 <= self.trim_fraction < 1:
            raise InputError(f"PMLossConfig.trim_fraction must be in [0, 1), got {self.trim_fraction}.")
        if not self.large_loss_factor >= 0:
            raise InputError(f"PMLossConfig.large_loss_factor must be >= 0, got {self.large_loss_factor}.")
        if self.knn_method not in KNN_METHODS:
            raise InputError(f"pm_loss: unknown knn_method {self.knn_method!r}; use 'auto', 'brute', 'pykdtree', 'kdtree' or 'grid'.")

    @classmethod
    def of(cls, config: "PMLossConfig | None" = None, **options: Any) -> "PMLossConfig":
        """``config`` (default: the official settings) with ``options`` (field names) replaced;
        unknown names are an InputError naming the valid fields."""
        if not options:
            return config if config is not None else cls()
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise InputError(f"PMLoss: unknown option(s) {unknown}; valid PMLossConfig fields are {sorted(names)}.")
        return dataclasses.replace(config if config is not None else cls(), **options)


@dataclass
class PMLossResult:
    """Everything :func:`pm_loss_details` computed, per batch element (B = batch size).

    loss (B,): the stabilised loss (what :func:`pm_loss` returns); raw (B,): before NaN -> 0 and
    the large-loss rule; large (B,) / nan (B,): which examples each rule hit; transform: the
    teacher -> prediction similarity; aligned_teacher (B, N, 3); nonfinite_teacher (B,): teacher
    points excluded because they (or their confidence) were not finite.
    """

    loss: Float[Tensor, "batch"]
    raw: Float[Tensor, "batch"]
    large: Bool[Tensor, "batch"]
    nan: Bool[Tensor, "batch"]
    transform: SimilarityTransform
    aligned_teacher: Float[Tensor, "batch point 3"]
    nonfinite_teacher: Int64[Tensor, "batch"]


def _shape(x: Any) -> Any:
    return tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__


def _check_inputs(pred: Tensor, teacher: Tensor, confidence: Tensor | None, valid_mask: Tensor | None) -> None:
    if not isinstance(pred, Tensor) or pred.ndim != 3 or pred.shape[-1] != 3 or not pred.is_floating_point():
        raise InputError(f"pm_loss: 'pred_points' must be a floating-point tensor (B, N, 3), got {_shape(pred)}.")
    batch, count = pred.shape[:2]
    if batch == 0 or count == 0:
        raise InputError(f"pm_loss: 'pred_points' is empty {_shape(pred)}; expected (B >= 1, N >= 3, 3).")
    if not isinstance(teacher, Tensor) or tuple(teacher.shape) != tuple(pred.shape):
        raise InputError(
            f"pm_loss: 'teacher_points' must have the shape of 'pred_points' ({batch}, {count}, 3) (one teacher "
            f"point per predicted point, same pixel order), got {_shape(teacher)}."
        )
    if teacher.dtype != pred.dtype or teacher.device != pred.device:
        raise InputError(
            f"pm_loss: 'teacher_points' ({teacher.dtype}, {teacher.device}) must match 'pred_points' "
            f"({pred.dtype}, {pred.device}) in dtype and device."
        )
    if confidence is not None:
        if not isinstance(confidence, Tensor) or tuple(confidence.shape) != (batch, count) or not confidence.is_floating_point():
            raise InputError(f"pm_loss: 'confidence' must be a floating-point tensor ({batch}, {count}), got {_shape(confidence)}.")
        if confidence.device != pred.device:
            raise InputError(f"pm_loss: 'confidence' is on {confidence.device}, 'pred_points' on {pred.device}.")
        if bool((confidence < 0).any()):
            raise InputError("pm_loss: 'confidence' must be non-negative.")
    if valid_mask is not None:
        if not isinstance(valid_mask, Tensor) or tuple(valid_mask.shape) != (batch, count) or valid_mask.dtype != torch.bool:
            raise InputError(f"pm_loss: 'valid_mask' must be a bool tensor ({batch}, {count}), got {_shape(valid_mask)}.")
        if valid_mask.device != pred.device:
            raise InputError(f"pm_loss: 'valid_mask' is on {valid_mask.device}, 'pred_points' on {pred.device}.")
    with torch.no_grad():
        finite = finite_points(pred)
        if finite is not None and valid_mask is not None:
            finite = finite | ~valid_mask
        if finite is not None and not bool(finite.all()):
            bad = (~finite).any(-1).nonzero().flatten().tolist()
            raise InputError(
                f"pm_loss: 'pred_points' holds non-finite values in batch element(s) {bad}; the prediction must be "
                "finite (exclude pixels with 'valid_mask')."
            )


def _robust(squared: Tensor, robust: str, delta: float) -> Tensor:
    if robust != "huber":
        return squared
    limit = delta * delta
    linear = 2.0 * delta * torch.sqrt(squared.clamp_min(limit)) - limit
    return torch.where(squared <= limit, squared, linear)


def _weighted_mean(
    values: Float[Tensor, "batch point"],
    weights: Float[Tensor, "batch point"] | None,
    robust: str,
    trim_fraction: float,
) -> Float[Tensor, "batch"]:
    """Sum(w v) / Sum(w) per example (``weights`` None: plain mean); "trimmed" first zeroes the
    weights of the largest values."""
    if weights is None:
        if robust != "trimmed" or trim_fraction == 0:
            return values.mean(-1)
        weights = torch.ones_like(values)
    if robust == "trimmed" and trim_fraction > 0:
        with torch.no_grad():
            used = weights > 0
            ordered = torch.where(used, values, torch.full_like(values, float("inf"))).sort(-1).values
            keep = torch.ceil(used.sum(-1) * (1.0 - trim_fraction)).long().clamp_min(1)
            threshold = ordered.gather(-1, (keep - 1)[:, None])
        weights = torch.where(values <= threshold, weights, torch.zeros_like(weights))
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    return torch.where(weights > 0, weights * values, zero).sum(-1) / weights.sum(-1)


@no_type_check  # shapes documented; the arguments are checked by _check_inputs (InputError naming them)
def pm_loss_details(
    pred_points: Float[Tensor, "batch point 3"],
    teacher_points: Float[Tensor, "batch point 3"],
    config: PMLossConfig | None = None,
    *,
    confidence: Float[Tensor, "batch point"] | None = None,
    valid_mask: Bool[Tensor, "batch point"] | None = None,
    **options: Any,
) -> PMLossResult:
    """:func:`pm_loss` plus its intermediate results (see :class:`PMLossResult`).

    The tensors are validated here (InputError naming the argument); ``config`` is a validated
    :class:`PMLossConfig` (``options``, its field names, replace some of its values; a config
    is then built and validated for this call). The computation is :func:`_compute`.
    """
    _check_inputs(pred_points, teacher_points, confidence, valid_mask)
    return _compute(pred_points, teacher_points, confidence, valid_mask, PMLossConfig.of(config, **options))


def _compute(
    pred_points: Float[Tensor, "batch point 3"],
    teacher_points: Float[Tensor, "batch point 3"],
    confidence: Float[Tensor, "batch point"] | None,
    valid_mask: Bool[Tensor, "batch point"] | None,
    config: PMLossConfig,
) -> PMLossResult:
    """The loss on validated inputs (see :func:`pm_loss`)."""
    robust, huber_delta, trim_fraction = config.robust, config.huber_delta, config.trim_fraction
    knn_method = config.knn_method
    with torch.no_grad():
        finite = finite_points(teacher_points)
        if confidence is not None and not bool(torch.isfinite(confidence.sum())):
            finite = torch.isfinite(confidence) if finite is None else finite & torch.isfinite(confidence)
        every_finite = finite is None
        if finite is None:
            finite = torch.ones(teacher_points.shape[:2], dtype=torch.bool, device=teacher_points.device)
            nonfinite = torch.zeros(teacher_points.shape[:1], dtype=torch.int64, device=teacher_points.device)
        else:
            nonfinite = (~finite).sum(-1)
        teacher_valid = finite if valid_mask is None else finite & valid_mask
    zero = torch.zeros((), dtype=pred_points.dtype, device=pred_points.device)
    weights = None
    if confidence is not None:
        weights = torch.where(teacher_valid, confidence, zero).to(pred_points.dtype)
    all_valid = (every_finite and valid_mask is None) or bool(teacher_valid.all())
    reference_mask = None if all_valid else teacher_valid
    # Inputs are validated above, so the checked-once internals are called directly.
    aligned, transform = _fit(
        teacher_points, pred_points, weights, reference_mask, config.stop_gradient_alignment, True, True
    )
    index, squared = _nearest(pred_points, aligned, reference_mask, valid_mask, knn_method)
    normaliser = prediction_scale_squared(pred_points, valid_mask) if config.scale_invariant else None
    if normaliser is not None:
        squared = squared / normaliser[:, None]
    query_weight = None if valid_mask is None else valid_mask.to(squared.dtype)
    if weights is not None:
        matched = torch.gather(weights, 1, index.clamp_min(0))
        query_weight = matched if query_weight is None else query_weight * matched
    raw = _weighted_mean(_robust(squared, robust, huber_delta), query_weight, robust, trim_fraction)
    if config.bidirectional:
        _, back = _nearest(aligned, pred_points, valid_mask, reference_mask, knn_method)
        if normaliser is not None:
            back = back / normaliser[:, None]
        back_weight = (None if reference_mask is None else teacher_valid.to(back.dtype)) if weights is None else weights
        raw = raw + _weighted_mean(_robust(back, robust, huber_delta), back_weight, robust, trim_fraction)

    loss, nan, large = stabilise(raw, config.ignore_large_loss, config.large_loss_factor)
    return PMLossResult(loss, raw, large, nan, transform, aligned, nonfinite)


def prediction_scale_squared(
    points: Float[Tensor, "batch point 3"],
    valid_mask: Bool[Tensor, "batch point"] | None = None,
) -> Float[Tensor, "batch"]:
    """Per example, the mean over the (valid) points of the squared distance to their centroid
    (differentiable; the normaliser of ``scale_invariant``). Floored at the dtype's smallest
    normal number, so a prediction collapsed to one point gives 0 / tiny = 0, not NaN."""
    if valid_mask is None:
        centred = points - points.mean(dim=1, keepdim=True)
        value = centred.square().sum(-1).mean(-1)
    else:
        weight = valid_mask.to(points.dtype)
        safe = torch.where(valid_mask[..., None], points, torch.zeros_like(points))
        count = weight.sum(-1).clamp_min(1.0)
        centroid = safe.sum(1) / count[:, None]
        centred = torch.where(valid_mask[..., None], safe - centroid[:, None], torch.zeros_like(points))
        value = centred.square().sum(-1).sum(-1) / count
    return value.clamp_min(torch.finfo(points.dtype).tiny)


def stabilise(
    raw: Float[Tensor, "batch"],
    ignore_large_loss: float | None = 100.0,
    large_loss_factor: float = 1e-5,
) -> tuple[Float[Tensor, "batch"], Bool[Tensor, "batch"], Bool[Tensor, "batch"]]:
    """The official stabilisation of per-example losses: NaN -> 0 (with a warning), then every
    loss > ``ignore_large_loss`` multiplied by ``large_loss_factor`` (None or <= 0: no threshold).

    Returns ``(loss, nan_mask, large_mask)``, each (B,).
    """
    nan = torch.isnan(raw)
    if bool(nan.any()):
        warnings.warn(
            f"pm_loss: NaN loss in batch element(s) {nan.nonzero().flatten().tolist()} replaced by 0.", RuntimeWarning
        )
    loss = torch.where(nan, torch.zeros_like(raw), raw)
    if ignore_large_loss is not None and ignore_large_loss > 0:
        large = loss > ignore_large_loss
        loss = torch.where(large, loss * large_loss_factor, loss)
    else:
        large = torch.zeros_like(nan)
    return loss, nan, large


@no_type_check  # shapes documented; the arguments are checked by _check_inputs (InputError naming them)
def pm_loss(
    pred_points: Float[Tensor, "batch point 3"],
    teacher_points: Float[Tensor, "batch point 3"],
    config: PMLossConfig | None = None,
    *,
    confidence: Float[Tensor, "batch point"] | None = None,
    valid_mask: Bool[Tensor, "batch point"] | None = None,
    **options: Any,
) -> Float[Tensor, "batch"]:
    """Per-example PM-Loss (B,): teacher aligned onto prediction, then squared Chamfer pred -> teacher.

    pred_points: (B, N, 3) predicted Gaussian centres, finite (where ``valid_mask``).
    teacher_points: (B, N, 3) teacher pointmap in any similarity frame, same pixel order and dtype;
        non-finite points are excluded from the alignment and the search (and counted).
    config: the :class:`PMLossConfig` (validated when it was built; default: official settings).
        ``options`` (its field names, e.g. ``knn_method="brute"``) replace some of its values for
        this call. ``weight`` is not applied here (it is :class:`PMLoss`'s).
    confidence: optional (B, N) non-negative teacher confidence; passing it turns on confidence
        weighting (alignment weights, and each predicted point weighted by the confidence of its
        nearest teacher point; the teacher -> prediction term by the teacher point's own).
    valid_mask: optional (B, N) bool; False pixels take no part (alignment, queries, references).

    With the defaults this is the official arithmetic: mean_i min_j |p_i - (s R t_j + t)|^2 per
    example, NaN -> 0, > 100 -> x 1e-5. Raises InputError on bad shapes/dtypes/devices, empty
    input or a non-finite prediction, DegenerateInputError when the alignment is undefined.
    """
    return pm_loss_details(pred_points, teacher_points, config, confidence=confidence, valid_mask=valid_mask, **options).loss


def _resize(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Resize (..., C, H, W) to ``size`` (bilinear with align_corners=False, or nearest)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    if mode == "bilinear":
        out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    else:
        out = F.interpolate(flat, size=size, mode="nearest")
    return out.reshape(*lead, *out.shape[-3:])


class PMLoss(nn.Module):
    """PM-Loss as a module: teacher pointmap for the context images, then :func:`pm_loss`.

    ``PMLoss(teacher, config=None, **overrides)``: ``overrides`` are :class:`PMLossConfig` fields
    (e.g. ``PMLoss(teacher=t, weight=0.005)``).

    The teacher is deliberately *not* a registered submodule: it is kept in the instance
    ``__dict__`` (the ``teacher`` property), so its weights never appear in ``parameters()``
    (an optimizer) or ``state_dict()`` (a checkpoint), and ``PMLoss.to(...)`` does not move it:
    place the teacher on its device yourself. ``copy.deepcopy`` shares the teacher.

    After each forward, ``last_stats`` (dict[str, float]) holds for logging: ``loss`` (weighted),
    ``loss_mean`` / ``loss_min`` / ``loss_max`` and ``loss_<i>`` (per-example, stabilised),
    ``raw_loss_mean``, ``scale_mean`` and ``scale_<i>`` (alignment scale), ``large_loss_fraction``,
    ``nan_fraction``, ``teacher_seconds`` and ``nonfinite_teacher_points``; ``last_result`` holds
    the detached :class:`PMLossResult`.
    """

    def __init__(self, teacher: Any, config: PMLossConfig | None = None, **overrides: Any) -> None:
        """teacher: a :class:`~pmsplat.teachers.base.Teacher` (checked here, InputError otherwise)."""
        super().__init__()
        self.config = PMLossConfig.of(config, **overrides)
        self.teacher = teacher
        self.last_stats: dict[str, float] = {}
        self.last_result: PMLossResult | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "teacher":
            if not callable(value) or not isinstance(getattr(value, "patch_size", None), int) or value.patch_size < 1:
                raise InputError(
                    "PMLoss: 'teacher' must follow pmsplat.teachers.Teacher (callable, with an int patch_size >= 1), "
                    f"got {type(value).__name__}."
                )
            self.__dict__["_teacher"] = value  # outside _modules on purpose (see the class docstring)
            return
        super().__setattr__(name, value)

    @property
    def teacher(self) -> Teacher:
        return self.__dict__["_teacher"]

    def __deepcopy__(self, memo: dict) -> "PMLoss":
        """Copies share the frozen teacher (it can be gigabytes and is never modified)."""
        memo[id(self.teacher)] = self.teacher
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            clone.__dict__[key] = copy.deepcopy(value, memo)
        return clone

    def teacher_points(
        self,
        images: Float[Tensor, "batch view 3 height width"],
        context: dict | None = None,
    ) -> tuple[Float[Tensor, "batch view height width 3"], Float[Tensor, "batch view height width"] | None]:
        """The teacher pointmap (and confidence) at the images' resolution (B, V, H, W, 3).

        Images are resized bilinearly (align_corners=False) to floor(H/p)*p x floor(W/p)*p for the
        teacher's patch size p; the teacher runs under torch.no_grad; its output is resized back
        to H x W with nearest-neighbour interpolation.
        """
        batch, views, _, height, width = images.shape
        patch = self.teacher.patch_size
        size = (height // patch * patch, width // patch * patch)
        if size[0] == 0 or size[1] == 0:
            raise InputError(
                f"PMLoss: images of {height}x{width} are smaller than the teacher's patch size {patch}."
            )
        with torch.no_grad():
            output = self.teacher(_resize(images, size, "bilinear"), context)
        if not isinstance(output, TeacherOutput):
            raise InputError(f"PMLoss: the teacher returned {type(output).__name__}, expected a TeacherOutput.")
        points = output.points
        if not isinstance(points, Tensor) or points.ndim != 5 or tuple(points.shape[:2]) != (batch, views) or points.shape[-1] != 3:
            raise InputError(
                f"PMLoss: the teacher's points have shape {_shape(points)}, expected ({batch}, {views}, H', W', 3)."
            )
        points = _resize(points.permute(0, 1, 4, 2, 3), (height, width), "nearest").permute(0, 1, 3, 4, 2)
        confidence = output.confidence
        if confidence is not None:
            if not isinstance(confidence, Tensor) or tuple(confidence.shape) != tuple(output.points.shape[:4]):
                raise InputError(
                    f"PMLoss: the teacher's confidence has shape {_shape(confidence)}, expected "
                    f"{tuple(output.points.shape[:4])}."
                )
            confidence = _resize(confidence[:, :, None], (height, width), "nearest")[:, :, 0]
        return points, confidence

    @no_type_check  # shapes documented; checked below (InputError naming the argument)
    def forward(
        self,
        means: Float[Tensor, "batch gaussian 3"],
        images: Float[Tensor, "batch view 3 height width"],
        context: dict | None = None,
    ) -> Float[Tensor, ""]:
        """Weighted batch-mean PM-Loss (a scalar).

        means: (B, V*H*W, 3) predicted Gaussian centres in (view, row, column) order, one per pixel.
        images: (B, V, 3, H, W) context images in [0, 1]. context: passed to the teacher.
        """
        if not isinstance(images, Tensor) or images.ndim != 5 or images.shape[2] != 3 or not images.is_floating_point():
            raise InputError(f"PMLoss: 'images' must be a floating-point tensor (B, V, 3, H, W), got {_shape(images)}.")
        batch, views, _, height, width = images.shape
        expected = (batch, views * height * width, 3)
        if not isinstance(means, Tensor) or tuple(means.shape) != expected:
            raise InputError(
                f"PMLoss: 'means' must have shape (B, V*H*W, 3) = {expected} for images {tuple(images.shape)} "
                f"(one Gaussian per pixel, (view, row, column) order), got {_shape(means)}."
            )
        if means.device != images.device:
            raise InputError(f"PMLoss: 'means' is on {means.device}, 'images' on {images.device}.")
        if batch == 0:
            raise InputError("PMLoss: empty batch (B = 0).")
        cfg = self.config
        start = time.perf_counter()
        points, confidence = self.teacher_points(images, context)
        if points.is_cuda:
            torch.cuda.synchronize(points.device)
        teacher_seconds = time.perf_counter() - start
        teacher = points.reshape(expected).to(device=means.device, dtype=means.dtype)
        weights = None
        if cfg.confidence_weighting:
            if confidence is None:
                raise InputError("PMLoss: confidence_weighting=True but the teacher returned no confidence.")
            weights = confidence.reshape(expected[:2]).to(device=means.device, dtype=means.dtype)
        result = pm_loss_details(means, teacher, cfg, confidence=weights)
        loss = cfg.weight * result.loss.mean()
        self._record(result, loss, teacher_seconds)
        return loss

    def _record(self, result: PMLossResult, loss: Tensor, teacher_seconds: float) -> None:
        per_example = result.loss.detach().double().cpu()
        scale = result.transform.scale.detach().double().cpu()
        stats: dict[str, float] = {
            "loss": float(loss.detach()),
            "loss_mean": float(per_example.mean()),
            "loss_min": float(per_example.min()),
            "loss_max": float(per_example.max()),
            "raw_loss_mean": float(result.raw.detach().double().nan_to_num(nan=0.0).mean()),
            "scale_mean": float(scale.mean()),
            "large_loss_fraction": float(result.large.double().mean()),
            "nan_fraction": float(result.nan.double().mean()),
            "teacher_seconds": float(teacher_seconds),
            "nonfinite_teacher_points": float(result.nonfinite_teacher.sum()),
        }
        for i, (value, s) in enumerate(zip(per_example.tolist(), scale.tolist())):
            stats[f"loss_{i}"] = value
            stats[f"scale_{i}"] = s
        self.last_stats = stats
        self.last_result = PMLossResult(
            result.loss.detach(),
            result.raw.detach(),
            result.large,
            result.nan,
            SimilarityTransform(
                result.transform.scale.detach(), result.transform.rotation.detach(), result.transform.translation.detach()
            ),
            result.aligned_teacher.detach(),
            result.nonfinite_teacher,
        )
