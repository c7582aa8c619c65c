"""Resumable stages: each stage writes ``<dir>/done.json`` when (and only when) it finished, with
its results and a fingerprint of what it was asked to do. Re-running the pipeline skips a stage
whose marker exists with the same fingerprint, and redoes one whose inputs changed (the old
directory is moved aside, never deleted)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DONE = "done.json"


def fingerprint(spec: Any) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_done(directory: Path, spec: Any) -> dict | None:
    """The stored result of a finished stage with this spec, else None."""
    marker = directory / DONE
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return None
    return record.get("result") if record.get("fingerprint") == fingerprint(spec) else None


def run_stage(directory: Path, spec: Any, work: Callable[[Path], dict], log: Callable[[str], None] = print) -> tuple[dict, float, bool]:
    """Run ``work(directory) -> result`` unless already done. Returns (result, seconds, reused)."""
    done = load_done(directory, spec)
    if done is not None:
        log(f"  reusing finished stage {directory.name}")
        return done, float(done.get("_seconds", 0.0)), True
    if directory.exists() and (directory / DONE).exists():
        stale = directory.with_name(f"{directory.name}.stale-{int(time.time())}")
        log(f"  {directory.name}: settings changed, moving the old run to {stale.name}")
        shutil.move(str(directory), str(stale))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spec.json").write_text(json.dumps(spec, indent=2, sort_keys=True, default=str))
    start = time.perf_counter()
    result = work(directory)
    seconds = time.perf_counter() - start
    result = dict(result, _seconds=seconds)
    temporary = directory / f"{DONE}.tmp"
    temporary.write_text(json.dumps({"fingerprint": fingerprint(spec), "result": result}, indent=2, default=str))
    os.replace(temporary, directory / DONE)
    return result, seconds, False
