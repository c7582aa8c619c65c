"""Apply a :class:`FilePatch` / :class:`Patch` exactly: no fuzz ever, and by default no offset.

Every context and removed line must match the file byte for byte at the line number the hunk
header names. With ``allow_offset=True`` a hunk whose lines match exactly elsewhere (the file
changed above it) is applied there and its offset reported; fuzz (ignoring mismatched context) is
never done. A failure raises :class:`PatchConflictError` naming the patch, the file, the hunk and
the conflicting lines; the input is never modified (application is pure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pmsplat.patching.diffgen import decode_text
from pmsplat.patching.errors import PatchConflictError, PatchFormatError
from pmsplat.patching.unidiff import FilePatch, Hunk, Patch, split_lines

MAX_SHOWN_MISMATCHES = 4


@dataclass(frozen=True)
class HunkOffset:
    """A hunk applied ``offset`` lines away from where its header says (only with allow_offset)."""

    path: str
    hunk: int  # 1-based
    offset: int


def apply_file_patch(
    change: FilePatch, text: str | None, *, patch_name: str = "<patch>", allow_offset: bool = False,
    reverse: bool = False,
) -> tuple[str | None, list[HunkOffset]]:
    """Apply one file's change to ``text`` (``None`` = file absent); returns the new text and offsets.

    ``reverse`` only changes the wording of error messages (pass an already reversed change).
    """
    verb = "reverse-apply" if reverse else "apply"
    where = f"{patch_name}: {change.path}"
    if change.kind == "create" and text is not None:
        raise PatchConflictError(
            f"{where}: cannot {verb}: the patch creates this file but it already exists.",
            patch=patch_name, path=change.path, hunk=0)
    if change.kind != "create" and text is None:
        raise PatchConflictError(
            f"{where}: cannot {verb}: the file does not exist (the patch "
            f"{'modifies' if change.kind == 'modify' else 'deletes'} it).",
            patch=patch_name, path=change.path, hunk=0)
    lines = split_lines(text or "")
    out: list[str] = []
    offsets: list[HunkOffset] = []
    cursor = 0  # first line of `lines` not yet copied
    shift = 0  # accumulated offset of earlier hunks (allow_offset only)
    size_delta = 0  # new_count - old_count of earlier hunks
    for number, hunk in enumerate(change.hunks, 1):
        expected_new = hunk.old_index + size_delta
        if (hunk.new_start - 1 if hunk.new_count else hunk.new_start) != expected_new:
            raise PatchFormatError(
                f"{where}: hunk #{number} {hunk.header()}: the new-side line number disagrees with the "
                f"old side and earlier hunks (expected +{expected_new + (1 if hunk.new_count else 0)}); "
                "the patch was edited by hand — regenerate it with `pmsplat patches refresh`")
        size_delta += hunk.new_count - hunk.old_count
        old = hunk.old_lines
        position = hunk.old_index + shift
        if not (cursor <= position <= len(lines) - len(old) and lines[position:position + len(old)] == old):
            found = _search(lines, old, position, cursor)
            if found is None or not allow_offset:
                raise PatchConflictError(
                    _conflict_message(where, verb, number, hunk, lines, found, reverse),
                    patch=patch_name, path=change.path, hunk=number)
            shift += found - position
            position = found
        if position != hunk.old_index:
            offsets.append(HunkOffset(change.path, number, position - hunk.old_index))
        out += lines[cursor:position]
        out += hunk.new_lines
        cursor = position + len(old)
        if hunk.new_lines and not hunk.new_lines[-1].endswith("\n") and cursor < len(lines):
            raise PatchConflictError(
                f"{where}: hunk #{number} {hunk.header()} ends without a newline but is not at the end "
                "of the file.", patch=patch_name, path=change.path, hunk=number)
    out += lines[cursor:]
    result = "".join(out)
    if change.kind == "delete":
        if result:
            raise PatchConflictError(
                f"{where}: cannot {verb}: the patch deletes this file, but the file has "
                f"{len(split_lines(result))} line(s) the patch does not account for.",
                patch=patch_name, path=change.path, hunk=0)
        return None, offsets
    return result, offsets


def apply_patch(
    files: Mapping[str, bytes], patch: Patch, *, patch_name: str = "<patch>", reverse: bool = False,
    allow_offset: bool = False,
) -> tuple[dict[str, bytes], list[HunkOffset]]:
    """Apply (or with ``reverse`` undo) ``patch`` to ``files`` (path -> bytes); returns a new mapping."""
    if reverse:
        patch = patch.reversed()
    result = dict(files)
    offsets: list[HunkOffset] = []
    for change in patch.files:
        before = files.get(change.path)
        text = None if before is None else decode_text(change.path, before)
        after, moved = apply_file_patch(change, text, patch_name=patch_name, allow_offset=allow_offset,
                                        reverse=reverse)
        offsets += moved
        if after is None:
            result.pop(change.path, None)
        else:
            result[change.path] = after.encode("utf-8")
    return result, offsets


def _search(lines: list[str], old: list[str], position: int, cursor: int) -> int | None:
    """The start nearest to ``position`` (not before ``cursor``) where ``old`` matches exactly."""
    last = len(lines) - len(old)
    for distance in range(0, max(position - cursor, last - position) + 1):
        for candidate in (position - distance, position + distance):
            if cursor <= candidate <= last and lines[candidate:candidate + len(old)] == old:
                return candidate
    return None


def _show(text: str) -> str:
    return repr(text[:-1]) if text.endswith("\n") else repr(text) + " (no newline at end of file)"


def _conflict_message(where: str, verb: str, number: int, hunk: Hunk, lines: list[str],
                      found: int | None, reverse: bool) -> str:
    old = hunk.old_lines
    start = hunk.old_index
    header = hunk.reversed().header() if reverse else hunk.header()  # as written in the patch file
    message = [f"{where}: hunk #{number} {header} does not {verb}: its lines do not match the file "
               f"at line {start + 1}."]
    mismatches = 0
    for k, expected in enumerate(old):
        actual = lines[start + k] if start + k < len(lines) else None
        if actual == expected:
            continue
        mismatches += 1
        if mismatches > MAX_SHOWN_MISMATCHES:
            message.append("  ... (more conflicting lines)")
            break
        message.append(f"  line {start + k + 1}: the patch expects {_show(expected)}")
        message.append(f"  {' ' * len(str(start + k + 1))}       the file has    "
                       f"{'end of file' if actual is None else _show(actual)}")
    if mismatches == 0:
        message.append(f"  the file has only {len(lines)} line(s)." if start + len(old) > len(lines)
                       else "  it overlaps the previous hunk once that hunk's offset is taken into account.")
    if found is not None:
        message.append(f"  (the hunk's lines match exactly at line {found + 1}, offset {found - start:+d}: "
                       "the file changed above the hunk. `--allow-offset` applies it there and rebases "
                       "the patch.)")
    return "\n".join(message)
