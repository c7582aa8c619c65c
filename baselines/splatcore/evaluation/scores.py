"""Score bookkeeping of the upstream test step (upstream §5.1, §5.3, §10).

Rule: per-view values -> mean over the scene's target views -> mean over scenes. Files written by
:meth:`ScoreBook.write`, as upstream's ``on_test_end``:

- ``scores_<metric>_all.json``: the per-scene means as a JSON list, in the order scenes were added
  (``scores_psnr_all.json``, ``scores_ssim_all.json``, ``scores_lpips_all.json``);
- ``scores_all_avg.json``: ``{metric: mean over scenes}`` plus, for each timed tag (e.g.
  ``encoder``, ``decoder``), the timing over the calls left after skipping the first
  ``time_skip_steps``. The facts page does not spell out the timing value's layout; pmsplat
  writes ``[number of timed calls, mean seconds]``.

pmsplat additions (upstream has no such entries): ``scores_by_scene.json`` (``{scene: {metric:
value}}``, so per-scene lists can be matched to scene names), and an ``"unavailable"`` entry in
``scores_all_avg.json`` -- ``{metric: reason}`` -- only when a metric was declared unavailable
with :meth:`ScoreBook.mark_unavailable` (e.g. LPIPS without its weights). Unavailable metrics get
no ``scores_<metric>_all.json`` and no average; they are never reported as 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import InputError


class ScoreBook:
    """Collects per-view metric values scene by scene and averages them the upstream way."""

    def __init__(self, time_skip_steps: int = 0) -> None:
        if time_skip_steps < 0:
            raise InputError(f"ScoreBook: time_skip_steps must be >= 0, got {time_skip_steps}.")
        self.time_skip_steps = time_skip_steps
        self._scene_means: dict[str, dict[str, float]] = {}
        self._metrics: list[str] | None = None
        self._times: dict[str, list[float]] = {}
        self.unavailable: dict[str, str] = {}

    @property
    def scenes(self) -> list[str]:
        return list(self._scene_means)

    @property
    def metrics(self) -> list[str]:
        return list(self._metrics or [])

    def add(self, scene: str, metrics: dict[str, Float[Tensor, " view"]]) -> dict[str, float]:
        """Record one scene: ``metrics[name]`` holds one value per target view (shape (V,)).

        Every scene must report the same metric names; a scene may be added once. Returns the
        per-scene means.
        """
        if scene in self._scene_means:
            raise InputError(f"ScoreBook.add: scene '{scene}' was already added; scene names must be unique.")
        if not metrics:
            raise InputError(f"ScoreBook.add: scene '{scene}' has no metrics.")
        names = sorted(metrics)
        if self._metrics is None:
            overlap = set(names) & set(self.unavailable)
            if overlap:
                raise InputError(f"ScoreBook.add: metrics {sorted(overlap)} were marked unavailable.")
            self._metrics = list(metrics)
        elif names != sorted(self._metrics):
            raise InputError(
                f"ScoreBook.add: scene '{scene}' reports metrics {names}, earlier scenes reported "
                f"{sorted(self._metrics)}; every scene must report the same metrics."
            )
        means: dict[str, float] = {}
        for name in self._metrics:
            values = metrics[name]
            if values.ndim != 1 or values.numel() == 0:
                raise InputError(
                    f"ScoreBook.add: metrics['{name}'] of scene '{scene}' must be a non-empty 1-D "
                    f"tensor of per-view values, got shape {tuple(values.shape)}."
                )
            if torch.isnan(values).any():
                raise InputError(f"ScoreBook.add: metrics['{name}'] of scene '{scene}' contains NaN.")
            means[name] = float(values.detach().double().mean().item())
        self._scene_means[scene] = means
        return means

    def mark_unavailable(self, metric: str, reason: str) -> None:
        """Declare that ``metric`` cannot be computed (the reason is written to the averages)."""
        if self._metrics is not None and metric in self._metrics:
            raise InputError(f"ScoreBook.mark_unavailable: '{metric}' already has scores.")
        self.unavailable[metric] = reason

    def add_time(self, tag: str, seconds: float) -> None:
        """Record one timed call (e.g. tag ``encoder`` or ``decoder``)."""
        self._times.setdefault(tag, []).append(float(seconds))

    def per_scene(self, metric: str) -> list[float]:
        """Per-scene means of ``metric`` in insertion order."""
        if metric not in self.metrics:
            raise InputError(f"ScoreBook: no scores for metric '{metric}' (have {self.metrics}).")
        return [means[metric] for means in self._scene_means.values()]

    def averages(self) -> dict[str, float]:
        """Mean over scenes of the per-scene means, per metric."""
        if not self._scene_means:
            raise InputError("ScoreBook.averages: no scene was added.")
        return {name: math.fsum(self.per_scene(name)) / len(self._scene_means) for name in self.metrics}

    def timings(self) -> dict[str, list[int | float]]:
        """``{tag: [count, mean seconds]}`` after skipping the first ``time_skip_steps`` calls."""
        result = {}
        for tag, times in self._times.items():
            kept = times[self.time_skip_steps :]
            result[tag] = [len(kept), (math.fsum(kept) / len(kept)) if kept else float("nan")]
        return result

    def write(self, directory: str | Path) -> list[Path]:
        """Write the score files (see the module docstring) into ``directory``; returns the paths."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in self.metrics:
            path = out / f"scores_{name}_all.json"
            path.write_text(json.dumps(self.per_scene(name)))
            written.append(path)
        summary: dict[str, object] = dict(self.averages())
        summary.update(self.timings())
        if self.unavailable:
            summary["unavailable"] = dict(self.unavailable)
        path = out / "scores_all_avg.json"
        path.write_text(json.dumps(summary, indent=2))
        written.append(path)
        path = out / "scores_by_scene.json"
        path.write_text(json.dumps(self._scene_means, indent=2))
        written.append(path)
        return written
