"""Reading and writing the pixelSplat-family chunk format (upstream-facts §2.1–2.3).

``<root>/<stage>/NNNNNN.torch`` is a ``torch.save`` of a list of example dicts::

    key: str                      scene id
    url: str                      source video URL ("" when none)
    timestamps: int64 (N,)        per-frame timestamps / frame numbers
    cameras: float32 (N, 18)      see :mod:`splatcore.dataset.cameras`
    images: list of N uint8 1-D   encoded JPEG/PNG file bytes

Optional extra keys (written by the synthetic benchmark, ignored by upstream loaders):
``depths`` float32 (N, H, W) z-depth along the camera's +z axis, and ``pointmaps`` float32
(N, H, W, 3) world points of the pixel centres. ``<root>/<stage>/index.json`` maps each scene key
to its chunk file name. The ``val`` stage reads the ``test`` directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from .cameras import check_camera_vectors
from ..errors import DataError, where

REQUIRED_KEYS = ("key", "cameras", "images")


def stage_directory_name(stage: str) -> str:
    """Directory read for a stage: ``train`` for train, ``test`` for val and test (upstream)."""
    return "train" if stage == "train" else "test"


def stage_directory(root: Path, stage: str) -> Path:
    """``<root>/<train|test>``, checked to exist."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"Dataset root {root} does not exist. Point dataset.roots at a directory holding train/ "
            "and test/ chunk folders (for the synthetic benchmark run `pmsplat data synth --out "
            f"{root}`)."
        )
    directory = root / stage_directory_name(stage)
    if not directory.is_dir():
        raise DataError(
            f"Dataset root {root} has no {directory.name}/ folder (needed for stage {stage!r}); "
            "expected <root>/train/*.torch and <root>/test/*.torch with index.json in each."
        )
    return directory


def read_index(directory: Path) -> dict[str, str]:
    """Read ``<directory>/index.json`` (scene key -> chunk file name)."""
    path = Path(directory) / "index.json"
    if not path.is_file():
        raise DataError(
            f"Missing {path}. Every stage folder needs an index.json mapping scene key -> chunk "
            "file name; regenerate it with the converter that wrote the chunks."
        )
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}); regenerate it.") from error
    if not isinstance(index, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in index.items()
    ):
        raise DataError(f"{path} must be a JSON object mapping scene key -> chunk file name.")
    return index


SKIP_MISSING_HINT = "dataset.skip_missing_chunks=true"


def without_missing_chunks(directory: Path, index: dict[str, str], skip: bool) -> tuple[dict[str, str], list[str]]:
    """``index`` without the scenes whose chunk file (listed in index.json) is missing on disk, and
    the sorted names of those missing files. A missing file is a :class:`DataError` naming the
    files and the fix unless ``skip`` (``dataset.skip_missing_chunks``), so that a partly copied
    dataset never trains on fewer scenes without a word."""
    directory = Path(directory)
    missing = sorted(name for name in set(index.values()) if not (directory / name).is_file())
    if not missing:
        return index, []
    lost = sum(1 for name in index.values() if name in missing)
    shown = ", ".join(missing[:5]) + (f" ... ({len(missing)} files)" if len(missing) > 5 else "")
    if not skip:
        raise DataError(
            f"{directory / 'index.json'} lists chunk files that do not exist: {shown} ({lost} of its {len(index)} "
            f"scenes). Restore them (re-download or re-convert the dataset), or pass {SKIP_MISSING_HINT} to use "
            "the other scenes."
        )
    kept = {key: name for key, name in index.items() if name not in missing}
    return kept, missing


def list_chunks(directory: Path, index: dict[str, str], use_index: bool) -> list[Path]:
    """Chunk paths of a stage folder in sorted order: every ``*.torch`` file, or (with
    ``use_index``) the unique file names listed in index.json. Missing listed files are errors."""
    directory = Path(directory)
    if use_index:
        paths = [directory / name for name in sorted(set(index.values()))]
        missing = [path for path in paths if not path.is_file()]
        if missing:
            raise DataError(
                f"{directory / 'index.json'} lists chunk files that do not exist: "
                f"{', '.join(p.name for p in missing[:5])}{' ...' if len(missing) > 5 else ''}."
            )
        return paths
    paths = sorted(directory.glob("*.torch"))
    if not paths:
        raise DataError(f"{directory} holds no *.torch chunk files.")
    return paths


def load_chunk(path: Path) -> list[dict]:
    """Load and structurally validate one chunk file. Raises :class:`DataError` naming the
    file (and scene) for a missing, truncated or corrupt file or a malformed example."""
    path = Path(path)
    try:
        examples = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise DataError(f"Chunk file {path} does not exist.") from error
    except Exception as error:  # torch.load raises many types for damaged files
        raise DataError(
            f"Chunk file {path} is corrupt or truncated and cannot be read ({type(error).__name__}: "
            f"{str(error)[:200]}). Re-download or re-convert this chunk."
        ) from error
    if not isinstance(examples, list):
        raise DataError(
            f"Chunk file {path} must hold a list of example dicts, got {type(examples).__name__}."
        )
    for position, example in enumerate(examples):
        check_example(example, path, position)
    return examples


def check_example(example: object, path: Path, position: int) -> None:
    """Check the keys, types and lengths of one chunk example."""
    if not isinstance(example, dict):
        raise DataError(f"Item {position} of chunk {path} is a {type(example).__name__}, not a dict.")
    missing = [key for key in REQUIRED_KEYS if key not in example]
    scene = example.get("key") if isinstance(example.get("key"), str) else None
    if missing:
        raise DataError(
            f"Item {position} of chunk {path} lacks the key(s) {missing}{where(None, scene)}; each "
            "example needs key, cameras and images."
        )
    if scene is None:
        raise DataError(f"Item {position} of chunk {path} has a non-string 'key'.")
    cameras = check_camera_vectors(example["cameras"], path, scene)
    images = example["images"]
    if not isinstance(images, (list, tuple)) or not all(
        isinstance(image, Tensor) and image.dtype == torch.uint8 and image.ndim == 1 for image in images
    ):
        raise DataError(
            f"'images' must be a list of 1-D uint8 tensors of encoded image bytes{where(path, scene)}."
        )
    if len(images) != cameras.shape[0]:
        raise DataError(
            f"{len(images)} images but {cameras.shape[0]} camera vectors{where(path, scene)}; every "
            "frame needs both."
        )
    timestamps = example.get("timestamps")
    if timestamps is not None and (not isinstance(timestamps, Tensor) or timestamps.shape != (len(images),)):
        raise DataError(f"'timestamps' must be a tensor of shape ({len(images)},){where(path, scene)}.")
    for extra, trailing in (("depths", ()), ("pointmaps", (3,))):
        values = example.get(extra)
        if values is None:
            continue
        if (
            not isinstance(values, Tensor)
            or values.ndim != 3 + len(trailing)
            or values.shape[0] != len(images)
            or tuple(values.shape[3:]) != trailing
        ):
            shape = "(N, H, W)" if not trailing else "(N, H, W, 3)"
            raise DataError(f"'{extra}' must be a tensor of shape {shape} with N = {len(images)}{where(path, scene)}.")


def write_chunk(path: Path, examples: list[dict]) -> None:
    """``torch.save`` a list of example dicts in the upstream layout (validated first)."""
    path = Path(path)
    for position, example in enumerate(examples):
        check_example(example, path, position)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(examples, path)


def write_index(directory: Path, index: dict[str, str]) -> None:
    """Write ``<directory>/index.json`` (scene key -> chunk file name)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.json").write_text(json.dumps(index, indent=1))


def chunk_file_name(number: int) -> str:
    """Upstream chunk naming: six-digit zero-padded, e.g. ``000012.torch``."""
    return f"{number:06d}.torch"
