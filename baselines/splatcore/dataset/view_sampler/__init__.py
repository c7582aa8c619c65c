"""View samplers (``bounded``, ``boundedv2``, ``evaluation``, ``all``, ``arbitrary``) and the
step tracker they share with data-loader workers."""

from __future__ import annotations

from ..config import (
    ViewSamplerAllCfg,
    ViewSamplerArbitraryCfg,
    ViewSamplerBoundedCfg,
    ViewSamplerBoundedV2Cfg,
    ViewSamplerEvaluationCfg,
)
from ...errors import ConfigError
from .base import ViewSampler, linear_schedule
from .bounded import ViewSamplerBounded
from .boundedv2 import ViewSamplerBoundedV2, farthest_point_views
from .evaluation import SceneNotInIndex, ViewSamplerEvaluation
from .evaluation_index import IndexEntry, canonical_scene_key, read_evaluation_index, write_evaluation_index
from .simple import ViewSamplerAll, ViewSamplerArbitrary
from .step_tracker import StepTracker

VIEW_SAMPLERS = {
    ViewSamplerBoundedCfg: ViewSamplerBounded,
    ViewSamplerBoundedV2Cfg: ViewSamplerBoundedV2,
    ViewSamplerEvaluationCfg: ViewSamplerEvaluation,
    ViewSamplerAllCfg: ViewSamplerAll,
    ViewSamplerArbitraryCfg: ViewSamplerArbitrary,
}


def get_view_sampler(
    cfg,
    stage: str,
    is_overfitting: bool = False,
    cameras_are_circular: bool = False,
    step_tracker: StepTracker | None = None,
    min_views: int = 0,
    max_views: int = 0,
) -> ViewSampler:
    """Build the sampler for a view-sampler config (``min_views``/``max_views`` feed boundedv2)."""
    sampler_class = VIEW_SAMPLERS.get(type(cfg))
    if sampler_class is None:
        raise ConfigError(f"Unknown view-sampler config {type(cfg).__name__}.")
    if sampler_class is ViewSamplerBoundedV2:
        return sampler_class(cfg, stage, is_overfitting, cameras_are_circular, step_tracker, min_views, max_views)
    return sampler_class(cfg, stage, is_overfitting, cameras_are_circular, step_tracker)


__all__ = [
    "IndexEntry",
    "SceneNotInIndex",
    "StepTracker",
    "ViewSampler",
    "ViewSamplerAll",
    "ViewSamplerArbitrary",
    "ViewSamplerBounded",
    "ViewSamplerBoundedV2",
    "ViewSamplerEvaluation",
    "canonical_scene_key",
    "farthest_point_views",
    "get_view_sampler",
    "linear_schedule",
    "read_evaluation_index",
    "write_evaluation_index",
]
