"""The ``evaluation`` sampler: context/target indices per scene from an index JSON.

A scene that is null or absent in the index raises :class:`SceneNotInIndex` (a ``ValueError``,
as upstream), which the dataset skips and counts. With ``match_dl3dv_prefix`` scene keys are
compared after removing a leading ``dl3dv_`` (both DL3DV converters' keys match both index kinds).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int64
from torch import Tensor

from ...errors import DataError
from .base import ViewSampler
from .evaluation_index import IndexEntry, canonical_scene_key, read_evaluation_index
from .step_tracker import StepTracker


class SceneNotInIndex(DataError, ValueError):
    """The scene has no (or a null) entry in the evaluation index."""


class ViewSamplerEvaluation(ViewSampler):
    def __init__(
        self,
        cfg,
        stage: str,
        is_overfitting: bool = False,
        cameras_are_circular: bool = False,
        step_tracker: StepTracker | None = None,
    ) -> None:
        super().__init__(cfg, stage, is_overfitting, cameras_are_circular, step_tracker)
        raw = read_evaluation_index(cfg.index_path)
        self.null_scenes = sum(entry is None for entry in raw.values())
        self.index: dict[str, IndexEntry | None] = (
            {canonical_scene_key(key): entry for key, entry in raw.items()} if cfg.match_dl3dv_prefix else raw
        )

    def entry(self, scene: str) -> IndexEntry | None:
        key = canonical_scene_key(scene) if self.cfg.match_dl3dv_prefix else scene
        return self.index.get(key)

    def sample(
        self,
        scene: str,
        extrinsics: Float[Tensor, "view 4 4"],
        intrinsics: Float[Tensor, "view 3 3"],
        generator: torch.Generator | None = None,
    ) -> tuple[Int64[Tensor, " context_view"], Int64[Tensor, " target_view"]]:
        entry = self.entry(scene)
        if entry is None:
            raise SceneNotInIndex(f"No indices available for scene {scene!r} in {self.cfg.index_path}.")
        return torch.tensor(entry.context, dtype=torch.int64), torch.tensor(entry.target, dtype=torch.int64)

    @property
    def num_context_views(self) -> int:
        return self.cfg.num_context_views

    @property
    def num_target_views(self) -> int:
        return 0
