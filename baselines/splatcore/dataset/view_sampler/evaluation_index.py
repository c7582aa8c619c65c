"""Evaluation index files: a JSON object mapping scene key -> {"context": [int, ...],
"target": [int, ...]} or null. Indices are positions in the scene's stored frame list.

DL3DV key conventions differ between converters (``dl3dv_<hash>`` vs ``<hash>``, upstream-facts
§2.4); :func:`canonical_scene_key` strips a leading ``dl3dv_`` so that both match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError

DL3DV_PREFIX = "dl3dv_"


@dataclass(frozen=True)
class IndexEntry:
    context: tuple[int, ...]
    target: tuple[int, ...]


def canonical_scene_key(key: str) -> str:
    """``dl3dv_<hash>`` -> ``<hash>``; other keys unchanged."""
    return key[len(DL3DV_PREFIX):] if key.startswith(DL3DV_PREFIX) else key


def read_evaluation_index(path: Path) -> dict[str, IndexEntry | None]:
    """Parse an evaluation index JSON. Null entries are kept as ``None`` (skipped and counted by
    the dataset). Raises :class:`DataError` naming the file and scene on bad content."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"Evaluation index {path} does not exist. Pass dataset.view_sampler.index_path=<file>; "
            "the published files can be fetched with `pmsplat data fetch-index`, and "
            "`pmsplat data synth` writes the synthetic benchmark's own."
        )
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"Evaluation index {path} is not valid JSON ({error}).") from error
    if not isinstance(raw, dict):
        raise DataError(f"Evaluation index {path} must be a JSON object (scene key -> entry or null).")
    index: dict[str, IndexEntry | None] = {}
    for scene, entry in raw.items():
        if entry is None:
            index[scene] = None
            continue
        if not isinstance(entry, dict) or not {"context", "target"} <= set(entry):
            raise DataError(
                f"Evaluation index {path}, scene {scene!r}: entry must be null or have 'context' and 'target' lists."
            )
        lists = (entry["context"], entry["target"])
        if not all(isinstance(v, list) and v and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v) for v in lists):
            raise DataError(
                f"Evaluation index {path}, scene {scene!r}: 'context' and 'target' must be non-empty lists of frame positions >= 0."
            )
        index[scene] = IndexEntry(tuple(entry["context"]), tuple(entry["target"]))
    return index


def write_evaluation_index(path: Path, index: dict[str, IndexEntry | None]) -> None:
    """Write an evaluation index JSON in the upstream layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    serialised = {
        scene: None if entry is None else {"context": list(entry.context), "target": list(entry.target)}
        for scene, entry in index.items()
    }
    path.write_text(json.dumps(serialised))
