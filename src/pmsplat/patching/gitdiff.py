"""Patches on in-memory trees, done by git: ``git apply`` applies and reverses, ``git diff`` writes
patches, and the ``unidiff`` package parses them (paths, hunks, counts, error reports).

A tree is a ``dict`` of repository-relative POSIX path -> bytes. Each call materialises only the
files a patch touches in a throwaway directory (its own ``git init``, no user or system git config)
and reads the result back, so the real checkout is never touched and a failure writes nothing.

Exactness: ``git apply`` never applies with fuzz (context and removed lines must match byte for
byte); it may place a hunk at another line, which ``git apply -v`` reports ("succeeded at N
(offset K lines)"): that is refused unless ``allow_offset``. A patch that does not apply is
explained hunk by hunk with :mod:`unidiff` (patch, file, hunk as written, each differing line).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from unidiff import PatchSet, UnidiffParseError

from pmsplat.patching.errors import PatchConflictError, PatchError, PatchFormatError

_UNSUPPORTED = re.compile(r"^(old mode|new mode|rename from|copy from|GIT binary patch|Binary files) ?", re.M)
_OFFSET = re.compile(r"^Hunk #(\d+) succeeded at (\d+) \(offset (-?\d+) lines?\)\.$", re.M)
_CHECKING = re.compile(r"^Checking patch (.+)\.\.\.$", re.M)


@dataclass(frozen=True)
class Patch:
    """A patch file: its text, the free-text description before the first file section, and the
    file sections parsed by unidiff."""

    text: str
    description: str
    files: PatchSet

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def added(self) -> int:
        return self.files.added

    @property
    def removed(self) -> int:
        return self.files.removed


@dataclass(frozen=True)
class HunkOffset:
    path: str
    hunk: int
    offset: int


def file_kind(change) -> str:
    """``create``, ``delete`` or ``modify`` (unidiff's ``is_added_file`` also says "added" for an
    empty file that gains lines)."""
    return "create" if change.source_file == "/dev/null" else "delete" if change.target_file == "/dev/null" \
        else "modify"


def parse_patch(text: str, source: str = "<patch>") -> Patch:
    """Parse a unified diff; refuse what the manager does not support (renames, copies, mode
    changes, binary files) and unsafe paths."""
    match = re.search(r"^(diff --git |--- )", text, re.M)
    description = text[: match.start()] if match else text
    unsupported = _UNSUPPORTED.search(text, match.start() if match else len(text))
    if unsupported:
        raise PatchFormatError(f"{source}: {unsupported.group(1)!r} sections (renames, copies, mode changes, "
                               "binary files) are not supported")
    try:
        files = PatchSet(text[len(description):])
    except UnidiffParseError as error:
        raise PatchFormatError(f"{source}: not a valid unified diff: {error}") from None
    seen: set[str] = set()
    for change in files:
        path = change.path
        if path.startswith("/") or ".." in path.split("/") or not path:
            raise PatchFormatError(f"{source}: unsafe path {path!r}")
        if path in seen:
            raise PatchFormatError(f"{source}: {path} appears twice")
        seen.add(path)
    return Patch(text, description, files)


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}
    command = ["git", "-c", "core.autocrlf=false", "-c", "core.quotepath=false", "-c", "core.fileMode=false",
               *args]
    try:
        return subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, env=env, timeout=120)
    except FileNotFoundError:
        raise PatchError("the patch manager needs git (`git apply`, `git diff`) on PATH") from None


def _scratch(files: dict[str, bytes], paths: list[str]) -> tempfile.TemporaryDirectory:
    scratch = tempfile.TemporaryDirectory(prefix="pmsplat-patches-")
    root = Path(scratch.name)
    _git(root, "init", "-q", ".")
    for path in paths:
        if path in files:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(files[path])
    return scratch


def _read_back(root: Path, files: dict[str, bytes], paths: list[str]) -> dict[str, bytes]:
    result = dict(files)
    for path in paths:
        target = root / path
        if target.is_file():
            result[path] = target.read_bytes()
        else:
            result.pop(path, None)
    return dict(sorted(result.items()))


def apply_patch(files: dict[str, bytes], patch: Patch, *, patch_name: str = "<patch>", reverse: bool = False,
                allow_offset: bool = False, only: str | None = None) -> tuple[dict[str, bytes], list[HunkOffset]]:
    """``files`` with ``patch`` applied (or reversed) by ``git apply``: (new files, hunks that moved).
    ``only`` restricts it to one path. Raises PatchConflictError (nothing changed) when it does not
    apply exactly, or needs an offset without ``allow_offset``."""
    paths = [p for p in patch.paths if only is None or p == only]
    if not paths:
        return files, []
    with _scratch(files, paths) as scratch:
        root = Path(scratch)
        args = ["apply", "-v", "--whitespace=nowarn", *(["-R"] if reverse else [])]
        args += [f"--include={only}"] if only else []
        result = _git(root, *args, "-", stdin=patch.text[len(patch.description):].encode("utf-8"))
        if result.returncode != 0:
            raise _explain_failure(files, patch, patch_name, reverse, paths, result.stderr.decode(errors="replace"))
        log = result.stderr.decode(errors="replace")
        offsets = _offsets(log)
        if offsets and not allow_offset:
            first = offsets[0]
            raise _conflict(patch, patch_name, first.path, first.hunk, reverse, [
                f"  it would match exactly at another line, offset {first.offset:+d}; hunks must sit at the line "
                "their header names (`pmsplat patches apply --allow-offset` rebases the patch)"])
        return _read_back(root, files, paths), offsets


def _offsets(log: str) -> list[HunkOffset]:
    offsets: list[HunkOffset] = []
    checks = list(_CHECKING.finditer(log))
    for match in _OFFSET.finditer(log):
        path = next((c.group(1) for c in reversed(checks) if c.start() < match.start()), "?")
        offsets.append(HunkOffset(path, int(match.group(1)), int(match.group(3))))
    return offsets


def _header(hunk) -> str:
    return f"@@ -{hunk.source_start},{hunk.source_length} +{hunk.target_start},{hunk.target_length} @@"


def _conflict(patch: Patch, name: str, path: str, hunk: int, reverse: bool, details: list[str]) -> PatchConflictError:
    change = next((f for f in patch.files if f.path == path), None)
    where = f"hunk #{hunk} {_header(change[hunk - 1])}" if change is not None and 0 < hunk <= len(change) else "the file"
    verb = "reverse-apply" if reverse else "apply"
    return PatchConflictError("\n".join([f"{name}: {path}: {where} does not {verb}", *details]),
                              patch=name, path=path, hunk=hunk)


def _split(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    return [line + "\n" for line in text.split("\n")[:-1]] + ([text.rsplit("\n", 1)[-1]] if not text.endswith("\n") else [])


def _explain_failure(files: dict[str, bytes], patch: Patch, name: str, reverse: bool, paths: list[str],
                     git_error: str) -> PatchConflictError:
    """Locate the first hunk that does not match exactly at its line, and show the differing lines."""
    for change in patch.files:
        if change.path not in paths:
            continue
        kind = file_kind(change)
        creates, deletes = (kind == "delete", kind == "create") if reverse else (kind == "create", kind == "delete")
        current = files.get(change.path)
        if creates and current is not None:
            return _conflict(patch, name, change.path, 0, reverse, ["  it creates the file, which already exists"])
        if not creates and current is None:
            return _conflict(patch, name, change.path, 0, reverse, ["  the file does not exist"])
        lines = _split(current or b"")
        for number, hunk in enumerate(change, 1):
            kept = ("-", " ") if not reverse else ("+", " ")
            start = (hunk.target_start if reverse else hunk.source_start) or 1
            expected = [line.value for line in hunk if line.line_type in kept]
            details = []
            for i, want in enumerate(expected):
                found = lines[start - 1 + i] if start - 1 + i < len(lines) else None
                if found is None or found.rstrip("\n") != want.rstrip("\n"):
                    details.append(f"  line {start + i}: the patch expects {want.rstrip(chr(10))!r} but the file has "
                                   + ("nothing (end of file)" if found is None else repr(found.rstrip("\n"))))
            if details:
                return _conflict(patch, name, change.path, number, reverse, details)
        if deletes:
            return _conflict(patch, name, change.path, 0, reverse,
                             ["  it deletes the file, but does not account for all of its content"])
    message = git_error.strip().splitlines()
    return PatchConflictError(f"{name}: does not {'reverse-' if reverse else ''}apply: " + " / ".join(message),
                              patch=name, path=paths[0], hunk=0)


def diff_trees(old: dict[str, bytes], new: dict[str, bytes], description: str = "") -> Patch:
    """The patch old -> new as ``git diff`` writes it (3 lines of context, ``a/``/``b/`` paths), without
    the ``index`` lines, after ``description``."""
    changed = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
    body = ""
    if changed:
        with _scratch(old, changed) as scratch:
            root = Path(scratch)
            _git(root, "add", "-A", ".")
            for path in changed:
                target = root / path
                if path in new:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(new[path])
                elif target.exists():
                    target.unlink()
            _git(root, "add", "-N", "--", *[p for p in changed if p not in old])
            result = _git(root, "diff", "--no-color", "--no-renames", "--no-ext-diff", "--no-textconv", "-U3",
                          "--src-prefix=a/", "--dst-prefix=b/")
            if result.returncode != 0:
                raise PatchError(f"git diff failed: {result.stderr.decode(errors='replace').strip()}")
            body = result.stdout.decode("utf-8")
        body = re.sub(r"^index [^\n]*\n", "", body, flags=re.M)
    if description and not description.endswith("\n"):
        description += "\n"
    return parse_patch(description + body)
