"""Score bookkeeping of the evaluation loop (upstream §5.1, §5.3, §10): the one averaging rule.

Rule (upstream's test step): a metric's per-view values are averaged over the scene's target views
in their own dtype (upstream's ``compute_psnr(...).mean().item()``: float32 for float32 renders),
then the per-scene means are averaged over the scenes: ``sum(per-scene means) / number of scenes``
(left-to-right float64 sum). A metric may also report one value per scene (the geometric metrics:
point-to-surface, floaters, ...); such a value may be NaN when it is undefined for that scene
(e.g. no depth edge), and the mean over scenes then skips the NaN scenes (NaN only when every scene
is NaN). Per-view values must not be NaN.

Files written by :meth:`ScoreBook.write`, as upstream's ``on_test_end``:

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
no ``scores_<metric>_all.json`` and no average; they are never reported as 0 (in :meth:`rows`
and ``averages(unavailable_as_nan=True)``, the tables of the reports, they are NaN).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import InputError


# Metrics that every evaluation reports first, in this order (also when unavailable).
UPSTREAM_METRICS = ("psnr", "ssim", "lpips")

SceneValue = Float[Tensor, " view"] | float


class ScoreBook:
    """Collects metric values scene by scene and averages them by the rule of the module docstring."""

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

    @property
    def columns(self) -> list[str]:
        """Scored and unavailable metrics: the upstream ones first (psnr, ssim, lpips), then the
        others in the order they were reported."""
        names = self.metrics + [name for name in self.unavailable if name not in self.metrics]
        return [m for m in UPSTREAM_METRICS if m in names] + [m for m in names if m not in UPSTREAM_METRICS]

    def add(self, scene: str, metrics: dict[str, SceneValue]) -> dict[str, float]:
        """Record one scene: ``metrics[name]`` holds one value per target view (a 1-D tensor,
        averaged here) or one value for the scene (a float or 0-d tensor; NaN = undefined).

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
            means[name] = _scene_mean(scene, name, metrics[name])
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

    def rows(self) -> list[dict[str, str | float]]:
        """One dict per scene (insertion order): ``scene`` and every column of :attr:`columns`
        (unavailable metrics as NaN)."""
        return [
            {"scene": scene, **{name: means.get(name, math.nan) for name in self.columns}}
            for scene, means in self._scene_means.items()
        ]

    def averages(self, unavailable_as_nan: bool = False) -> dict[str, float]:
        """Mean over scenes of the per-scene means, per metric (scenes where a per-scene value is
        NaN are skipped; NaN when all are). With ``unavailable_as_nan`` the unavailable metrics
        are included as NaN, in :attr:`columns` order."""
        if not self._scene_means:
            raise InputError("ScoreBook.averages: no scene was added.")
        names = self.columns if unavailable_as_nan else [m for m in self.columns if m in self.metrics]
        result = {}
        for name in names:
            values = [v for v in self.per_scene(name) if not math.isnan(v)] if name in self.metrics else []
            result[name] = sum(values) / len(values) if values else math.nan
        return result

    def timings(self) -> dict[str, list[int | float]]:
        """``{tag: [count, mean seconds]}`` after skipping the first ``time_skip_steps`` calls."""
        result = {}
        for tag, times in self._times.items():
            kept = times[self.time_skip_steps :]
            result[tag] = [len(kept), (math.fsum(kept) / len(kept)) if kept else float("nan")]
        return result

    def state(self) -> dict:
        """Everything the book holds, as plain Python (what one DDP rank sends to rank 0)."""
        return {"time_skip_steps": self.time_skip_steps, "scene_means": dict(self._scene_means),
                "metrics": self._metrics, "times": {k: list(v) for k, v in self._times.items()},
                "unavailable": dict(self.unavailable)}

    @classmethod
    def merged(cls, states: list[dict]) -> "ScoreBook":
        """One book from the :meth:`state` of each rank, in rank order (each rank evaluated its own
        contiguous block of the test split, so the scene order is the single-process order). A scene
        in two states is an error: the ranks' shards must not overlap (no padding duplicates)."""
        if not states:
            raise InputError("ScoreBook.merged: no states to merge.")
        book = cls(time_skip_steps=states[0]["time_skip_steps"])
        for state in states:
            for name, reason in state["unavailable"].items():
                book.unavailable.setdefault(name, reason)
            for tag, times in state["times"].items():
                book._times.setdefault(tag, []).extend(times)
            for scene, means in state["scene_means"].items():
                if scene in book._scene_means:
                    raise InputError(f"ScoreBook.merged: scene '{scene}' was evaluated by two ranks; the test shards overlap.")
                if book._metrics is None:
                    book._metrics = list(state["metrics"])
                book._scene_means[scene] = dict(means)
        return book

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


def _scene_mean(scene: str, name: str, value: SceneValue) -> float:
    """The scene's value of one metric: the mean of per-view values in their dtype, or the
    per-scene value itself."""
    if isinstance(value, Tensor) and value.ndim == 0:
        value = float(value)
    if not isinstance(value, Tensor):
        if not isinstance(value, (int, float)):
            raise InputError(
                f"ScoreBook.add: metrics['{name}'] of scene '{scene}' must be a 1-D tensor of per-view "
                f"values or one number for the scene, got {type(value).__name__}."
            )
        return float(value)
    if value.ndim != 1 or value.numel() == 0:
        raise InputError(
            f"ScoreBook.add: metrics['{name}'] of scene '{scene}' must be a non-empty 1-D "
            f"tensor of per-view values, got shape {tuple(value.shape)}."
        )
    if torch.isnan(value).any():
        raise InputError(f"ScoreBook.add: metrics['{name}'] of scene '{scene}' contains NaN.")
    return float(value.detach().mean().item())
