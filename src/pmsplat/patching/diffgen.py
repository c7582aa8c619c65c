"""Generate unified diffs (:class:`Patch`) from two versions of a set of files, with difflib."""

from __future__ import annotations

from collections.abc import Mapping
from difflib import SequenceMatcher

from pmsplat.patching.errors import PatchError
from pmsplat.patching.unidiff import FilePatch, Hunk, HunkLine, Patch, split_lines

CONTEXT_LINES = 3
_SAFE_PATH_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+/@=,")


def decode_text(path: str, data: bytes) -> str:
    """File bytes as text for diffing; binary or non-UTF-8 files are refused with a clear message."""
    if b"\0" in data:
        raise PatchError(f"{path} is a binary file; patches can only change text files. Keep binary "
                         "assets out of the patch series (put them in the adapter or config).")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PatchError(f"{path} is not valid UTF-8 ({error}); patches can only change UTF-8 text "
                         "files. Re-encode the file as UTF-8.") from None


def diff_file(path: str, old: str | None, new: str | None, context: int = CONTEXT_LINES) -> FilePatch | None:
    """The change from ``old`` to ``new`` text (``None`` = file absent), or ``None`` if identical."""
    if old == new:
        return None
    if not set(path) <= _SAFE_PATH_CHARS:
        bad = sorted(set(path) - _SAFE_PATH_CHARS)
        raise PatchError(f"{path!r}: characters {bad} cannot be written in a patch header; rename the file")
    kind = "create" if old is None else "delete" if new is None else "modify"
    a, b = split_lines(old or ""), split_lines(new or "")
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    hunks: list[Hunk] = []
    if a or b:
        for group in matcher.get_grouped_opcodes(context):
            lines: list[HunkLine] = []
            for tag, a1, a2, b1, b2 in group:
                if tag == "equal":
                    lines += [HunkLine(" ", text) for text in a[a1:a2]]
                    continue
                lines += [HunkLine("-", text) for text in a[a1:a2]]
                lines += [HunkLine("+", text) for text in b[b1:b2]]
            i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
            old_count, new_count = i2 - i1, j2 - j1
            hunks.append(Hunk(i1 + 1 if old_count else i1, old_count,
                              j1 + 1 if new_count else j1, new_count, tuple(lines)))
    return FilePatch(path, kind, tuple(hunks))


def diff_trees(old: Mapping[str, bytes], new: Mapping[str, bytes], description: str = "") -> Patch:
    """The patch that turns the files ``old`` (path -> bytes) into ``new``; files sorted by path."""
    files: list[FilePatch] = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        change = diff_file(
            path,
            None if before is None else decode_text(path, before),
            None if after is None else decode_text(path, after),
        )
        if change is not None:
            files.append(change)
    return Patch(description, tuple(files))
