"""Errors raised by the dataset code (splatcore does not import pmsplat, so they live here).

Every message names what is wrong (file, scene, frame when known) and how to fix it.
"""

from __future__ import annotations


class DatasetError(Exception):
    """Base class of dataset errors."""


class DatasetConfigError(DatasetError, ValueError):
    """A dataset, view-sampler or data-loader option is invalid."""


class DatasetFormatError(DatasetError):
    """A dataset file (root, index.json, chunk, image bytes, camera vector) is missing or corrupt."""


def where(file: object | None = None, scene: str | None = None, frame: int | None = None) -> str:
    """A short "(file ..., scene ..., frame ...)" suffix for error messages."""
    parts = []
    if file is not None:
        parts.append(f"file {file}")
    if scene is not None:
        parts.append(f"scene {scene!r}")
    if frame is not None:
        parts.append(f"frame {frame}")
    return f" ({', '.join(parts)})" if parts else ""
