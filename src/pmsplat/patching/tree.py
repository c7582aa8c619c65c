"""Baseline file trees: reading, the pristine content hash, and all-or-nothing writes.

A tree is a ``dict`` mapping repository-relative POSIX paths to file bytes. Caches are ignored:
directories named in :data:`IGNORED_DIRS` and files with a suffix in :data:`IGNORED_SUFFIXES`.

Hash: the *listing* of a tree is one line ``<sha256 of the bytes>  <path>`` per file, sorted by
path (the ``sha256sum`` format, so ``sha256sum -c`` can check it); the tree hash is the sha256 of
the listing's UTF-8 bytes. It depends on paths and bytes only (not on mtimes or modes).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from pmsplat.patching.errors import ManifestError, PatchError

IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".ipynb_checkpoints"})
IGNORED_SUFFIXES = (".pyc", ".pyo")
_TEMP_SUFFIX = ".pmsplat-patches-tmp"


def is_ignored(path: str) -> bool:
    parts = path.split("/")
    return any(part in IGNORED_DIRS for part in parts[:-1]) or parts[-1].endswith(IGNORED_SUFFIXES)


def read_tree(root: Path, owned: Sequence[str]) -> dict[str, bytes]:
    """All files under the owned paths (directories or files, relative to ``root``), minus caches."""
    tree: dict[str, bytes] = {}
    for entry in owned:
        base = root / entry
        if base.is_symlink():
            raise PatchError(f"{entry} is a symbolic link; baselines must be plain files and folders")
        if base.is_file():
            tree[entry] = base.read_bytes()
            continue
        if not base.is_dir():
            continue  # an owned path that does not exist yet holds no file
        for folder, subdirs, names in os.walk(base):
            subdirs[:] = sorted(d for d in subdirs if d not in IGNORED_DIRS)
            for name in sorted(names):
                full = Path(folder) / name
                relative = full.relative_to(root).as_posix()
                if is_ignored(relative) or name.endswith(_TEMP_SUFFIX):
                    continue
                if full.is_symlink() or not full.is_file():
                    raise PatchError(f"{relative} is a symbolic link or special file; baselines must "
                                     "hold plain files only (replace it with a copy)")
                tree[relative] = full.read_bytes()
            for name in subdirs:
                if (Path(folder) / name).is_symlink():
                    raise PatchError(f"{(Path(folder) / name).relative_to(root).as_posix()} is a "
                                     "symbolic link; baselines must be plain files and folders")
    return tree


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_listing(tree: Mapping[str, bytes]) -> dict[str, str]:
    """path -> sha256 of the bytes."""
    return {path: file_digest(data) for path, data in sorted(tree.items())}


def format_listing(listing: Mapping[str, str]) -> str:
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(listing.items()))


def parse_listing(text: str, source: str) -> dict[str, str]:
    listing: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not path:
            raise ManifestError(f"{source}, line {number}: expected '<sha256>  <path>', got {line!r}. "
                                "Regenerate it with `pmsplat patches record-pristine`.")
        listing[path] = digest
    return listing


def listing_hash(listing: Mapping[str, str]) -> str:
    return hashlib.sha256(format_listing(listing).encode("utf-8")).hexdigest()


def write_files(root: Path, changes: Mapping[str, bytes | None]) -> None:
    """Write (bytes) or delete (``None``) files under ``root``, all or nothing.

    Every new content is first written to a temporary file next to its target; only when all
    writes succeeded are they moved into place (``os.replace``) and deletions done. If that phase
    fails, the files already changed are restored from memory before the error propagates.
    """
    staged: list[tuple[Path, Path]] = []
    originals: dict[Path, bytes | None] = {}
    created_dirs: list[Path] = []
    try:
        for relative, data in sorted(changes.items()):
            target = root / relative
            originals[target] = target.read_bytes() if target.is_file() else None
            if data is None:
                continue
            missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
            for folder in reversed(missing):
                folder.mkdir()
                created_dirs.append(folder)
            temp = target.with_name(target.name + _TEMP_SUFFIX)
            temp.write_bytes(data)
            staged.append((temp, target))
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        for folder in reversed(created_dirs):
            _remove_if_empty(folder)
        raise
    done: list[Path] = []
    try:
        for temp, target in staged:
            os.replace(temp, target)
            done.append(target)
        for relative, data in sorted(changes.items()):
            if data is None and (root / relative).exists():
                (root / relative).unlink()
                done.append(root / relative)
                _prune_empty_parents(root / relative, root)
    except BaseException:
        for target in done:
            original = originals[target]
            if original is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(original)
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _prune_empty_parents(path: Path, root: Path) -> None:
    """Remove folders left empty by a deletion, up to (not including) ``root``."""
    folder = path.parent
    while folder != root and root in folder.parents and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
