"""Resumable, portable stages.

Each stage runs in its own folder and writes ``<dir>/done.json`` when (and only when) it finished:
its result, a fingerprint of what it was asked to do, and its **artifacts** (files it produced,
with a digest). Every path stored there is relative to the stage folder, and the fingerprint holds
no absolute path, so a reproduction folder that is moved or copied elsewhere resumes unchanged.

Re-running the pipeline, per stage:

- marker present, same fingerprint, artifacts intact -> reused;
- marker present, same fingerprint, an artifact missing or corrupt (e.g. a truncated
  ``last.ckpt``) -> the stage is run again and the log says why (the broken folder is moved aside
  to ``<name>.broken-<time>``);
- marker present, other fingerprint (settings changed) -> the old folder is moved aside to
  ``<name>.stale-<time>`` and the stage is run again;
- no marker (the stage was cut off: killed, crashed, Ctrl-C), the same settings (``spec.json``)
  and something to resume from (``resumable(dir)``, for a training stage: a readable step
  checkpoint) -> the folder is kept and the stage resumes from there (the work function finds
  its checkpoint itself);
- no marker otherwise -> its partial output is discarded and the stage is run again from the start.

Training is seeded and its data order derives from the position (``splatcore.dataset.positions``),
so a stage that is resumed or run again gives the same result, and an interrupted reproduction
finishes with the same report as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pmsplat.errors import DataError

DONE = "done.json"
SPEC = "spec.json"


class BrokenArtifact(DataError):
    """A finished stage's output file is missing or unreadable (the message says which and why)."""


def fingerprint(spec: Any) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def weights_digest(path: Path) -> str:
    """sha256 (first 16 hex digits) of the tensors of a checkpoint's state dict: names, dtypes,
    shapes and bytes, in name order. It identifies the *weights*, wherever the file lies and
    whatever else (optimizer state, loop counters) the file holds. Raises BrokenArtifact when the
    file is missing or cannot be read as a checkpoint."""
    import torch
    from splatcore.model.checkpoints import read_state_dict
    from splatcore.errors import CheckpointError

    if not Path(path).is_file():
        raise BrokenArtifact(f"{Path(path).name} is missing")
    try:
        state = read_state_dict(path, "state_dict", what="checkpoint")
    except CheckpointError as error:
        raise BrokenArtifact(f"{Path(path).name} is corrupt ({str(error).splitlines()[0][:200]})") from error
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 (first 16 hex digits) of a file's bytes; BrokenArtifact when it is missing."""
    if not Path(path).is_file():
        raise BrokenArtifact(f"{Path(path).name} is missing")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


DIGESTS: dict[str, Callable[[Path], str]] = {"weights": weights_digest, "file": file_digest}


def artifact(directory: Path, relative: str, kind: str) -> dict[str, str]:
    """The record of one produced file: path relative to ``directory``, digest kind and value."""
    return {"path": relative, "kind": kind, "digest": DIGESTS[kind](directory / relative)}


def check_artifacts(directory: Path, record: dict) -> None:
    """Raise BrokenArtifact when one of the stage's recorded files is missing or differs."""
    for item in record.get("artifacts", []):
        path = directory / item["path"]
        value = DIGESTS[item["kind"]](path)
        if value != item["digest"]:
            raise BrokenArtifact(f"{item['path']} changed or is corrupt (digest {value}, recorded {item['digest']})")


def _read_marker(directory: Path) -> dict | None:
    marker = directory / DONE
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return {}  # a marker that cannot be read: the stage is redone (see run_stage)
    return record if isinstance(record, dict) else {}


def load_done(directory: Path, spec: Any) -> dict | None:
    """The stored result of a finished stage with this spec whose artifacts are intact, else None."""
    record = _read_marker(directory)
    if not record or record.get("fingerprint") != fingerprint(spec):
        return None
    try:
        check_artifacts(directory, record)
    except BrokenArtifact:
        return None
    return record.get("result")


def _aside(directory: Path, label: str) -> Path:
    stamp = int(time.time())
    target = directory.with_name(f"{directory.name}.{label}-{stamp}")
    counter = 1
    while target.exists():
        target = directory.with_name(f"{directory.name}.{label}-{stamp}-{counter}")
        counter += 1
    shutil.move(str(directory), str(target))
    return target


def _same_spec(directory: Path, spec: Any) -> bool:
    """Whether the unfinished attempt in ``directory`` was started with these settings."""
    try:
        return fingerprint(json.loads((directory / SPEC).read_text())) == fingerprint(spec)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False


def run_stage(
    directory: Path,
    spec: Any,
    work: Callable[[Path], dict],
    log: Callable[[str], None] = print,
    artifacts: Callable[[Path, dict], list[dict[str, str]]] | None = None,
    resumable: Callable[[Path], str | None] | None = None,
) -> tuple[dict, float, bool]:
    """Run ``work(directory) -> result`` unless already done (see the module docstring).

    ``artifacts(directory, result)`` lists the files the stage produced (:func:`artifact`
    records); they are checked before a finished stage is reused. ``result`` must hold paths
    relative to ``directory`` only. ``resumable(directory)`` describes what an unfinished attempt
    with the same settings can be resumed from (e.g. "its step-4 checkpoint"), or None.
    Returns (result, seconds, reused).
    """
    record = _read_marker(directory)
    if record is not None:
        if record.get("fingerprint") == fingerprint(spec):
            try:
                check_artifacts(directory, record)
            except BrokenArtifact as error:
                moved = _aside(directory, "broken")
                log(f"  [yellow]{directory.name}: finished before, but {error}: running this stage again[/] "
                    f"(the broken folder is kept as {moved.name})")
            else:
                log(f"  reusing finished stage {directory.name}")
                result = record.get("result", {})
                return result, float(result.get("_seconds", 0.0)), True
        elif record == {}:
            moved = _aside(directory, "broken")
            log(f"  [yellow]{directory.name}: its {DONE} cannot be read: running this stage again[/] (old folder: {moved.name})")
        else:
            moved = _aside(directory, "stale")
            log(f"  {directory.name}: settings changed, moving the old run to {moved.name}")
    elif directory.exists():
        point = resumable(directory) if resumable is not None and _same_spec(directory, spec) else None
        if point is not None:
            log(f"  {directory.name}: resuming an unfinished earlier attempt from {point}")
        else:
            log(f"  {directory.name}: an unfinished earlier attempt is discarded; starting it again from the beginning")
            shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SPEC).write_text(json.dumps(spec, indent=2, sort_keys=True, default=str))
    start = time.perf_counter()
    result = work(directory)
    seconds = time.perf_counter() - start
    result = dict(result, _seconds=seconds)
    produced = artifacts(directory, result) if artifacts is not None else []
    temporary = directory / f"{DONE}.tmp"
    temporary.write_text(json.dumps({"fingerprint": fingerprint(spec), "result": result, "artifacts": produced},
                                     indent=2, default=str))
    os.replace(temporary, directory / DONE)
    return result, seconds, False


STEP_CHECKPOINT = re.compile(r"step_(\d+)")


def step_checkpoint(directory: Path) -> tuple[Path, int] | None:
    """The latest readable Lightning step checkpoint of an unfinished training stage and its
    step (``checkpoints/*step_<n>*.ckpt``; a file cut off by the kill is passed over), or None."""
    import torch

    found = []
    for path in (directory / "checkpoints").glob("*.ckpt"):
        match = STEP_CHECKPOINT.search(path.stem)
        if match and path.name != "last.ckpt":
            found.append((int(match.group(1)), path))
    for step, path in sorted(found, reverse=True):
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # truncated or corrupt: the kill hit it while it was written
            continue
        if isinstance(state, dict) and "state_dict" in state and "optimizer_states" in state and "loops" in state:
            return path, int(state.get("global_step", step))
    return None
