"""What state a baseline's working tree is in: how many patches are applied, and drift.

The model is stateless (no "applied" file that could go stale): the tree is *pristine + the first
k patches of the series + drift*. For every k the applied patches are reverse-applied, file by
file, to an in-memory copy of the tree and the result is compared with the recorded pristine
listing; the k that leaves the fewest files unexplained wins (ties: the larger k). Files that
still differ are the *drift*: edits that no patch explains yet (``refresh`` records them in the
top applied patch; ``record-pristine`` accepts them as a new pristine baseline).

Pristine files seen while the tree is consistent are kept in a content-addressed cache, so that
``refresh`` can rebuild the pristine tree even after edits that touch the lines a patch added.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pmsplat.patching.diffgen import decode_text
from pmsplat.patching.errors import PatchConflictError, PatchError, StateError
from pmsplat.patching.patchapply import apply_file_patch
from pmsplat.patching.repository import BaselineSpec, Repository, SeriesEntry
from pmsplat.patching.tree import file_digest, listing_hash
from pmsplat.patching.unidiff import FilePatch


@dataclass(frozen=True)
class Drift:
    """A file that pristine + the applied patches does not explain."""

    path: str
    kind: str  # "modified" | "added" | "deleted"
    detail: str = ""


@dataclass
class BaselineState:
    spec: BaselineSpec
    series: list[SeriesEntry]
    tree: dict[str, bytes]
    listing: dict[str, str]  # the recorded pristine listing
    applied: int  # k: the first k patches of the series are applied
    drift: list[Drift]
    pristine: dict[str, bytes]  # reconstructed pristine files that match the listing

    @property
    def consistent(self) -> bool:
        return not self.drift

    @property
    def listing_matches_manifest(self) -> bool:
        return (listing_hash(self.listing) == self.spec.pristine_sha256
                and len(self.listing) == self.spec.pristine_files)


class PristineCache:
    """Content-addressed store of pristine file bytes (``<dir>/objects/ab/abcdef...``); ``None`` disables."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def _path(self, digest: str) -> Path:
        assert self.directory is not None
        return self.directory / "objects" / digest[:2] / digest

    def put_all(self, files: Mapping[str, bytes]) -> None:
        if self.directory is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# pristine-file cache of `pmsplat patches`; safe to delete\n*\n")
            for data in files.values():
                target = self._path(file_digest(data))
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    temp = target.with_suffix(".tmp")
                    temp.write_bytes(data)
                    temp.replace(target)
        except OSError:
            pass  # a read-only checkout: the cache is an optimisation, never required for correctness

    def get(self, digest: str) -> bytes | None:
        if self.directory is None:
            return None
        path = self._path(digest)
        if path.is_file():
            data = path.read_bytes()
            if file_digest(data) == digest:
                return data
        return None


def unapply_file(path: str, data: bytes | None, entries: list[SeriesEntry]) -> bytes | None:
    """``data`` with the changes of ``entries`` (applied in order) to ``path`` undone, newest first.
    Raises PatchConflictError when one does not reverse-apply exactly."""
    for entry in reversed(entries):
        change = _change_of(entry, path)
        if change is None:
            continue
        text = None if data is None else decode_text(path, data)
        result, _ = apply_file_patch(change.reversed(), text, patch_name=entry.name, reverse=True)
        data = None if result is None else result.encode("utf-8")
    return data


def _change_of(entry: SeriesEntry, path: str) -> FilePatch | None:
    return next((change for change in entry.patch.files if change.path == path), None)


def _explain(path: str, tree: Mapping[str, bytes], listing: Mapping[str, str],
             entries: list[SeriesEntry]) -> tuple[bytes | None, Drift | None]:
    """Reverse the applied patches on one file and compare with the listing: (pristine, drift)."""
    current = tree.get(path)
    try:
        pristine = unapply_file(path, current, entries)
    except PatchConflictError as error:
        first_line = str(error).splitlines()[0]
        return None, Drift(path, "modified" if current is not None else "deleted", first_line)
    recorded = listing.get(path)
    if pristine is None:
        return None, None if recorded is None else Drift(path, "deleted")
    if recorded is None:
        return pristine, Drift(path, "added")
    if file_digest(pristine) != recorded:
        return pristine, Drift(path, "modified")
    return pristine, None


def inspect(repo: Repository, name: str, cache: PristineCache | None = None) -> BaselineState:
    """Read the baseline and work out the applied count and the drift (see the module docstring)."""
    spec = repo.spec(name)
    series = repo.series(name)
    listing = repo.listing(name)
    tree = repo.tree(name)
    touched = sorted({path for entry in series for path in entry.patch.paths})
    untouched = sorted((set(tree) | set(listing)) - set(touched))
    base_pristine: dict[str, bytes] = {}
    base_drift: list[Drift] = []
    for path in untouched:
        pristine, drift = _explain(path, tree, listing, [])
        if drift is not None:
            base_drift.append(drift)
        elif pristine is not None:
            base_pristine[path] = pristine
    best: tuple[int, int, list[Drift], dict[str, bytes]] | None = None
    for applied in range(len(series), -1, -1):
        drift: list[Drift] = []
        pristine_files: dict[str, bytes] = {}
        for path in touched:
            pristine, problem = _explain(path, tree, listing, series[:applied])
            if problem is not None:
                drift.append(problem)
            elif pristine is not None:
                pristine_files[path] = pristine
        if best is None or len(drift) < best[1]:
            best = (applied, len(drift), drift, pristine_files)
        if not drift:
            break
    assert best is not None
    applied, _, touched_drift, touched_pristine = best
    drift = sorted(base_drift + touched_drift, key=lambda d: d.path)
    pristine = dict(sorted({**base_pristine, **touched_pristine}.items()))
    state = BaselineState(spec, series, tree, listing, applied, drift, pristine)
    if cache is not None:
        cache.put_all(pristine)
    return state


def full_pristine(state: BaselineState, cache: PristineCache | None, root: Path | None = None) -> dict[str, bytes]:
    """The whole pristine tree. Files the tree explains are reconstructed; for drifted files the
    pristine bytes (identified by their listed sha256) come from the cache or, failing that, from
    the version committed at git ``HEAD`` (as is, or with 1..k of the applied patches undone)."""
    files = dict(state.pristine)
    missing: list[str] = []
    for path, digest in state.listing.items():
        if path in files:
            continue
        data = None if cache is None else cache.get(digest)
        if data is None and root is not None:
            data = _from_git_head(root, path, digest, state.series[:state.applied])
        if data is None:
            missing.append(path)
        else:
            files[path] = data
    if missing:
        raise StateError(
            f"{state.spec.name}: cannot rebuild the pristine version of {', '.join(missing)}: the file was "
            "edited, and neither the pristine cache (filled by any `pmsplat patches` command run while the "
            "tree is consistent) nor git HEAD holds a copy matching the recorded pristine hash. Save your "
            "edits, restore these files (e.g. `git checkout -- FILE`), run `pmsplat patches status`, then "
            "redo the edits."
        )
    return dict(sorted(files.items()))


def _from_git_head(root: Path, path: str, digest: str, applied: list[SeriesEntry]) -> bytes | None:
    try:
        result = subprocess.run(["git", "-C", str(root), "show", f"HEAD:./{path}"], capture_output=True,
                                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    committed = result.stdout
    for count in range(len(applied), -1, -1):
        try:
            candidate = unapply_file(path, committed, applied[:count])
        except PatchError:
            continue
        if candidate is not None and file_digest(candidate) == digest:
            return candidate
    return None

