"""On-disk layout of the offline teacher cache (written by ``pmsplat teacher precompute``).

::

    <cache>/manifest.json          identity: teacher (name + resolved options), teacher resolution
                                   (H', W'), image pipeline (crop-shim shape, filter), dataset
                                   stage + roots + fingerprint, frame policy, format version
    <cache>/scenes.json            sorted scene keys the cache must hold (the dataset index)
    <cache>/scenes/<slug>.safetensors   one file per scene, memory-mapped when read:
                                     points      float16 (N, H', W', 3)  teacher frame
                                     confidence  float16 (N, H', W')     (when the teacher has one)
                                     thumbnails  float16 (N, 3, T, T)    area-averaged input images
    <cache>/scenes/<slug>.json     the scene's record, written *after* its data file: scene key,
                                   frame count, file size + sha256, per-frame CRC32 of points and
                                   confidence, or ``status: skipped`` with the loader's reason

A scene is complete when its record exists and its data file has the recorded size. Every file
is written to a temporary name in the same folder and renamed (atomic on POSIX), so an
interrupted run leaves either a finished scene or nothing usable; several processes on disjoint
shards can share one cache folder (the manifest is created exclusively once and compared by the
others).

N is the number of frames of the scene (frame i = position i in the chunk's frame list, the
``index`` the view samplers return). Points are in the teacher's own world frame (see
:mod:`pmsplat.teachers.cache` for what the frame is computed from).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import zlib
from pathlib import Path

import numpy as np

from pmsplat.errors import DataError

FORMAT = "pmsplat-teacher-cache"
VERSION = 1
MANIFEST = "manifest.json"
SCENE_LIST = "scenes.json"
SCENE_DIR = "scenes"
TMP_MARK = ".tmp-"

#: Manifest fields that are bookkeeping, not identity (ignored when two manifests are compared).
NON_IDENTITY_FIELDS = ("created", "command", "dataset_roots")


def scene_slug(scene: str) -> str:
    """A file-system-safe, collision-free file stem for a scene key (keys may hold '/')."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", scene)[:48]
    return f"{readable}-{hashlib.sha1(scene.encode()).hexdigest()[:10]}"


def scene_paths(cache: Path, scene: str) -> tuple[Path, Path]:
    """(data file, record file) of a scene."""
    stem = Path(cache) / SCENE_DIR / scene_slug(scene)
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def temporary_name(path: Path) -> Path:
    """``<path>.tmp-<host>-<pid>``: unique per writer, also across machines sharing the folder."""
    host = re.sub(r"[^A-Za-z0-9_.-]+", "_", platform.node()) or "host"
    return path.with_name(f"{path.name}{TMP_MARK}{host}-{os.getpid()}")


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary name in the same folder, then rename over ``path`` (readers never
    see partial files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    with open(temporary, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def atomic_write_json(path: Path, value: dict | list) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode())


def create_exclusive_json(path: Path, value: dict | list) -> bool:
    """Create ``path`` with ``value`` unless it exists (atomic: temp file + hard link). Returns
    True when this call created it, False when another process got there first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    temporary.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)


def read_json(path: Path, what: str) -> dict | list:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{what} {path} is not valid JSON ({error}); it is corrupt — delete it and re-run "
                        "`pmsplat teacher precompute` for this cache.") from error


def sha256_file(path: Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def frame_crc32(array: np.ndarray) -> list[int]:
    """CRC32 of each frame (leading axis) of a C-contiguous array's bytes."""
    return [zlib.crc32(np.ascontiguousarray(frame).tobytes()) for frame in array]


def dataset_fingerprint(stage_directories: list[Path]) -> dict:
    """Version of a dataset split: sha256 over each stage folder's index.json bytes and the names
    and byte sizes of its ``*.torch`` chunks. Cheap (no chunk is read) and stable under copying;
    a chunk rewritten in place with the very same size is not detected here (the cache teacher's
    image-thumbnail check catches changed images when they are served)."""
    digest = hashlib.sha256()
    chunks = 0
    for directory in stage_directories:
        directory = Path(directory)
        index = directory / "index.json"
        digest.update(b"index\0" + (index.read_bytes() if index.is_file() else b"<missing>"))
        for chunk in sorted(directory.glob("*.torch")):
            digest.update(f"{chunk.name}\0{chunk.stat().st_size}\0".encode())
            chunks += 1
    return {"sha256": digest.hexdigest(), "chunks": chunks}


def identity_view(manifest: dict) -> dict:
    """The manifest without its bookkeeping fields."""
    return {key: value for key, value in manifest.items() if key not in NON_IDENTITY_FIELDS}


def describe_differences(expected: dict, found: dict, prefix: str = "") -> list[str]:
    """Human-readable list of the keys whose values differ between two nested dicts."""
    lines = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key, "<absent>"), found.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            lines += describe_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: cache has {b!r}, expected {a!r}")
    return lines


def read_manifest(cache: Path) -> dict:
    """Read and check ``<cache>/manifest.json`` (format and version)."""
    cache = Path(cache)
    if not cache.is_dir():
        raise DataError(f"Teacher cache {cache} does not exist. Build it with `pmsplat teacher precompute --out {cache} ...`.")
    manifest = read_json(cache / MANIFEST, "Teacher-cache manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{cache / MANIFEST} is not a pmsplat teacher-cache manifest.")
    if manifest.get("version") != VERSION:
        raise DataError(
            f"Teacher cache {cache} has format version {manifest.get('version')}, this pmsplat reads version "
            f"{VERSION}. Rebuild it with `pmsplat teacher precompute`."
        )
    return manifest


def read_record(cache: Path, scene: str) -> dict | None:
    """The record of a scene, or None when the scene has not been (completely) computed."""
    data_path, record_path = scene_paths(cache, scene)
    if not record_path.is_file():
        return None
    record = read_json(record_path, f"Record of scene {scene!r}")
    if not isinstance(record, dict) or record.get("scene") != scene:
        raise DataError(f"Record {record_path} does not belong to scene {scene!r}; the cache is corrupt. "
                        "Delete the file and re-run `pmsplat teacher precompute` (it redoes that scene only).")
    return record


def record_is_complete(cache: Path, record: dict | None, checksum: bool = False) -> bool:
    """A record whose data file exists with the recorded size (or a skipped scene); with
    ``checksum`` the file's sha256 must also equal the record's (a bit flip keeps the size)."""
    if record is None:
        return False
    if record.get("status") == "skipped":
        return True
    data_path = Path(cache) / SCENE_DIR / record["file"]
    if not (data_path.is_file() and data_path.stat().st_size == record["bytes"]):
        return False
    return not checksum or sha256_file(data_path) == record.get("sha256")
