"""The one evaluation loop: encode a scene's context views, render every target view, score it.

Used by the model wrapper's test step (Lightning iterates the batches and calls
:func:`evaluate_scene`), by ``pmsplat evaluate`` and by the reproduction (both through
:func:`evaluate_scenes`). Every caller averages with the one rule of :class:`ScoreBook`: per view
-> mean over the scene's target views -> mean over scenes (upstream's test step).

Metrics per scene:

- always the upstream ones, :func:`splatcore.evaluation.metrics.image_metrics`: PSNR, SSIM and
  LPIPS per target view (LPIPS declared unavailable in the book, never 0, without its weights);
- plus the scene metrics named in ``EvaluationSettings.scene_metrics``: functions registered with
  :func:`register_scene_metric` that get the :class:`RenderedScene` and return ``{column: value}``
  (per-view 1-D tensors or one number per scene, NaN when undefined). The core registers none;
  pmsplat registers its geometry metrics (boundary PSNR, depth errors, point-to-surface, floaters,
  coverage, the collapse diagnostic) in :mod:`pmsplat.evaluation.scene_metrics`. The core never
  imports its users: a name that nobody registered is an error that lists the registered ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..types import BatchedExample, DecoderOutput, Gaussians
from ..errors import InputError
from .metrics import image_metrics, lpips_unavailable_reason
from .scores import SceneValue, ScoreBook

__all__ = [
    "EvaluationSettings",
    "RenderedScene",
    "SceneMetric",
    "evaluate_scene",
    "evaluate_scenes",
    "register_scene_metric",
    "registered_scene_metrics",
    "scene_metric",
]


@dataclass(frozen=True)
class EvaluationSettings:
    """How a scene is encoded, rendered and scored.

    ``global_step`` and ``deterministic`` are passed to the encoder (MVSplat's opacity mapping
    depends on the step); ``depth_mode`` to the decoder (None: colour only; the geometry metrics
    need ``"depth"``); ``chunk_size`` target views are rendered per decoder call (None: all at
    once); ``scene_metrics`` names registered scene metrics computed after the upstream ones,
    each called with ``scene_metric_options.get(name)`` (None: its defaults).
    """

    global_step: int = 0
    deterministic: bool = False
    depth_mode: str | None = None
    chunk_size: int | None = None
    scene_metrics: tuple[str, ...] = ()
    scene_metric_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RenderedScene:
    """One evaluated scene (batch size 1), as the scene metrics see it.

    ``batch``: the example after the data shim, on the model's device; ``gaussians``: what the
    encoder returned; ``output``: the renders of every target view, (1, V, ...), with depth and
    alpha when ``depth_mode`` asked for them; ``scores``: the per-scene means added to the book;
    ``extras``: free space where a scene metric may leave intermediate results for the caller
    (e.g. the depth-boundary mask, for figures).
    """

    scene: str
    batch: BatchedExample
    gaussians: Gaussians
    output: DecoderOutput
    scores: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> dict:
        return self.batch["target"]

    @property
    def context(self) -> dict:
        return self.batch["context"]

    @property
    def gt(self) -> Tensor:
        """Ground-truth target images (V, 3, H, W)."""
        return self.batch["target"]["image"][0]

    @property
    def color(self) -> Tensor:
        """Rendered target images (V, 3, H, W), not clipped."""
        return self.output.color[0]


SceneMetric = Callable[[RenderedScene, Any], Mapping[str, SceneValue]]
_SCENE_METRICS: dict[str, SceneMetric] = {}


def register_scene_metric(name: str) -> Callable[[SceneMetric], SceneMetric]:
    """Decorator: make ``function(scene: RenderedScene, options) -> {column: value}`` available to
    the loop under ``name`` (``EvaluationSettings.scene_metrics``; ``options`` is
    ``EvaluationSettings.scene_metric_options.get(name)``, None for the defaults). Registering a
    name twice with a different function is an error."""

    def decorate(function: SceneMetric) -> SceneMetric:
        known = _SCENE_METRICS.get(name)
        if known is not None and known is not function and known.__qualname__ != function.__qualname__:
            raise InputError(f"scene metric '{name}' is already registered by {known.__module__}.{known.__qualname__}.")
        _SCENE_METRICS[name] = function
        return function

    return decorate


def registered_scene_metrics() -> list[str]:
    return sorted(_SCENE_METRICS)


def scene_metric(name: str) -> SceneMetric:
    if name not in _SCENE_METRICS:
        raise InputError(
            f"unknown scene metric '{name}'; registered: {registered_scene_metrics() or 'none'} "
            "(pmsplat's geometry metrics register when pmsplat.evaluation is imported)."
        )
    return _SCENE_METRICS[name]


def _untimed(tag: str, function: Callable[[], Any]) -> Any:
    return function()


def _render_targets(
    decoder: nn.Module, gaussians: Gaussians, target: dict, depth_mode: str | None, chunk_size: int | None
) -> DecoderOutput:
    """Render every target view, ``chunk_size`` views per decoder call; (1, V, ...) outputs."""
    height, width = target["image"].shape[-2:]
    views = target["image"].shape[1]
    chunk = chunk_size or views
    outputs = []
    for start in range(0, views, chunk):
        part = {k: (t[:, start : start + chunk] if isinstance(t, Tensor) else t) for k, t in target.items()}
        outputs.append(
            decoder(
                gaussians, part["extrinsics"], part["intrinsics"], part["near"], part["far"], (height, width),
                depth_mode=depth_mode,
            )
        )
    if len(outputs) == 1:
        return outputs[0]

    def cat(name: str) -> Tensor | None:
        values = [getattr(o, name) for o in outputs]
        return None if values[0] is None else torch.cat(values, dim=1)

    return DecoderOutput(color=cat("color"), depth=cat("depth"), alpha=cat("alpha"))


@torch.no_grad()
def evaluate_scene(
    encoder: nn.Module,
    decoder: nn.Module,
    batch: BatchedExample,
    book: ScoreBook | None,
    settings: EvaluationSettings = EvaluationSettings(),
    *,
    timed: Callable[[str, Callable[[], Any]], Any] = _untimed,
) -> RenderedScene:
    """Score one scene (``batch``: batch size 1, data shim applied, on the model's device).

    The encoder and the decoder calls go through ``timed(tag, call)`` (tags ``encoder`` and
    ``decoder``: the test step measures them). The upstream metrics and then
    ``settings.scene_metrics`` are added to ``book`` (when given) under the scene's name.
    """
    target = batch["target"]
    if target["image"].shape[0] != 1:
        raise InputError(
            f"the evaluation scores one scene per batch: set data_loader.test.batch_size=1 (got a batch of "
            f"{target['image'].shape[0]})."
        )
    metrics_fns = [(scene_metric(name), settings.scene_metric_options.get(name)) for name in settings.scene_metrics]
    output = timed(
        "encoder",
        lambda: encoder(
            batch["context"], settings.global_step, deterministic=settings.deterministic, scene_names=batch.get("scene")
        ),
    )
    gaussians = output["gaussians"] if isinstance(output, dict) else output
    if gaussians is None:
        raise InputError("the encoder returned no Gaussians (depth-only mode); evaluate the full model.")
    rendered = timed("decoder", lambda: _render_targets(decoder, gaussians, target, settings.depth_mode, settings.chunk_size))
    scene = RenderedScene(scene=str(batch["scene"][0]), batch=batch, gaussians=gaussians, output=rendered)
    if book is None:
        return scene
    values: dict[str, SceneValue] = dict(image_metrics(scene.gt, scene.color))
    for function, options in metrics_fns:
        values.update(function(scene, options))
    reason = lpips_unavailable_reason()
    if reason is not None and "lpips" not in book.unavailable:
        book.mark_unavailable("lpips", reason)
    scene.scores = book.add(scene.scene, values)
    return scene


def _to_device(batch: Any, device: torch.device | str) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch


@torch.no_grad()
def evaluate_scenes(
    encoder: nn.Module,
    decoder: nn.Module,
    batches: Iterable[BatchedExample],
    settings: EvaluationSettings = EvaluationSettings(),
    *,
    book: ScoreBook | None = None,
    data_shim: Callable[[BatchedExample], BatchedExample] | None = None,
    device: torch.device | str = "cpu",
    max_scenes: int | None = None,
    on_scene: Callable[[RenderedScene], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScoreBook:
    """:func:`evaluate_scene` over ``batches`` (the ``evaluation`` sampler, batch size 1): each
    batch is moved to ``device`` and passed through ``data_shim`` (the encoder's patch shim, as
    the test step does); the encoder is put in eval mode. ``on_scene`` sees every scene after it
    is scored, ``progress`` the number of scenes done; stops after ``max_scenes``. Returns the
    book (a new one unless given) with every scene."""
    book = ScoreBook() if book is None else book
    encoder.eval()
    done = 0
    for batch in batches:
        batch = _to_device(batch, device)
        if data_shim is not None:
            batch = data_shim(batch)
        scene = evaluate_scene(encoder, decoder, batch, book, settings)
        done += 1
        if on_scene is not None:
            on_scene(scene)
        if progress is not None:
            progress(done)
        if max_scenes is not None and done >= max_scenes:
            break
    return book

