"""Unified diffs as data: parse a patch file into :class:`Patch`, and format it back.

Scope (everything else is rejected with a :class:`PatchFormatError`, never skipped):

- ``diff --git`` / ``---`` / ``+++`` / ``@@`` sections with ``a/`` and ``b/`` path prefixes
  (``patch -p1``, ``git apply``), several files per patch, several hunks per file;
- new files (``--- /dev/null``) and deleted files (``+++ /dev/null``), including empty ones
  (git style: a ``diff --git`` header with ``new file mode`` / ``deleted file mode`` and no hunk);
- ``\\ No newline at end of file`` markers on either side;
- free text before the first file section (the patch description), kept verbatim.

Not supported: renames, copies, mode changes, binary patches, quoted (escaped) paths.

Line convention: a line is a ``str`` that includes its ``"\\n"`` terminator, except the last line
of a file that does not end with a newline (see :func:`split_lines`). Carriage returns are ordinary
characters, so CRLF files round-trip byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pmsplat.patching.errors import PatchFormatError

NO_NEWLINE_MARKER = "\\ No newline at end of file"
DEV_NULL = "/dev/null"
KINDS = ("modify", "create", "delete")

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_IGNORED_GIT_HEADERS = ("index ",)
_UNSUPPORTED_GIT_HEADERS = (
    "old mode ", "new mode ", "similarity index ", "dissimilarity index ",
    "rename from ", "rename to ", "copy from ", "copy to ",
)  # fmt: skip


def split_lines(text: str) -> list[str]:
    """Split on ``"\\n"`` only, keeping terminators; ``"".join(split_lines(t)) == t``."""
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


@dataclass(frozen=True)
class HunkLine:
    """One line of a hunk: ``kind`` is ``" "`` (context), ``"-"`` (removed) or ``"+"`` (added)."""

    kind: str
    text: str  # with its "\n", except a last line without newline


@dataclass(frozen=True)
class Hunk:
    """A ``@@ -old_start,old_count +new_start,new_count @@`` block.

    Starts are 1-based line numbers; for an empty side (count 0) the start is the number of the
    line *after which* the hunk sits (0 = top of file), as GNU diff and git write it.
    """

    old_start: int
    old_count: int
    new_start: int
    new_count: int
    lines: tuple[HunkLine, ...]
    section: str = ""  # text after the closing "@@" (a function name in git's output), kept verbatim

    @property
    def old_lines(self) -> list[str]:
        return [line.text for line in self.lines if line.kind != "+"]

    @property
    def new_lines(self) -> list[str]:
        return [line.text for line in self.lines if line.kind != "-"]

    @property
    def old_index(self) -> int:
        """0-based index of the first old line (the insertion point for a pure insertion)."""
        return self.old_start - 1 if self.old_count else self.old_start

    @property
    def added(self) -> int:
        return sum(line.kind == "+" for line in self.lines)

    @property
    def removed(self) -> int:
        return sum(line.kind == "-" for line in self.lines)

    def header(self) -> str:
        return f"@@ -{_range(self.old_start, self.old_count)} +{_range(self.new_start, self.new_count)} @@"

    def reversed(self) -> Hunk:
        swap = {" ": " ", "-": "+", "+": "-"}
        lines = _reorder_changes([HunkLine(swap[line.kind], line.text) for line in self.lines])
        return Hunk(self.new_start, self.new_count, self.old_start, self.old_count, lines, self.section)


@dataclass(frozen=True)
class FilePatch:
    """The changes of one file. ``path`` is repository-relative (no ``a/``/``b/`` prefix)."""

    path: str
    kind: str  # "modify" | "create" | "delete"
    hunks: tuple[Hunk, ...]

    @property
    def added(self) -> int:
        return sum(hunk.added for hunk in self.hunks)

    @property
    def removed(self) -> int:
        return sum(hunk.removed for hunk in self.hunks)

    def reversed(self) -> FilePatch:
        kind = {"modify": "modify", "create": "delete", "delete": "create"}[self.kind]
        return FilePatch(self.path, kind, tuple(hunk.reversed() for hunk in self.hunks))


@dataclass(frozen=True)
class Patch:
    """A patch file: a free-text description followed by file sections (sorted by path when generated)."""

    description: str
    files: tuple[FilePatch, ...]

    @property
    def paths(self) -> list[str]:
        return [file.path for file in self.files]

    @property
    def added(self) -> int:
        return sum(file.added for file in self.files)

    @property
    def removed(self) -> int:
        return sum(file.removed for file in self.files)

    def reversed(self) -> Patch:
        return Patch(self.description, tuple(file.reversed() for file in self.files))

    def format(self) -> str:
        """The patch as text, readable by ``patch -p1`` and ``git apply``."""
        out = [self.description] if self.description else []
        for file in self.files:
            out.append(_format_file(file))
        return "".join(out)


def _range(start: int, count: int) -> str:
    return str(start) if count == 1 else f"{start},{count}"


def _reorder_changes(lines: list[HunkLine]) -> tuple[HunkLine, ...]:
    """Within each run of changed lines put removals before additions (the conventional order)."""
    result: list[HunkLine] = []
    run: list[HunkLine] = []
    for line in lines + [HunkLine(" ", "")]:
        if line.kind == " ":
            result += [x for x in run if x.kind == "-"] + [x for x in run if x.kind == "+"]
            run = []
            result.append(line)
        else:
            run.append(line)
    return tuple(result[:-1])


def _format_file(file: FilePatch) -> str:
    path = file.path
    out = [f"diff --git a/{path} b/{path}\n"]
    if file.kind == "create":
        out.append("new file mode 100644\n")
    elif file.kind == "delete":
        out.append("deleted file mode 100644\n")
    if file.hunks:
        out.append(f"--- {DEV_NULL if file.kind == 'create' else 'a/' + path}\n")
        out.append(f"+++ {DEV_NULL if file.kind == 'delete' else 'b/' + path}\n")
    for hunk in file.hunks:
        out.append(hunk.header() + hunk.section + "\n")
        for line in hunk.lines:
            if line.text.endswith("\n"):
                out.append(line.kind + line.text)
            else:
                out.append(line.kind + line.text + "\n" + NO_NEWLINE_MARKER + "\n")
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# parsing


def parse_patch(text: str, source: str = "<patch>") -> Patch:
    """Parse a unified diff. ``source`` names the file in error messages."""
    return _Parser(text, source).parse()


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.source = source
        self.i = 0

    def error(self, message: str, line_index: int | None = None) -> PatchFormatError:
        where = self.i if line_index is None else line_index
        return PatchFormatError(f"{self.source}, line {where + 1}: {message}")

    def at_file_start(self) -> bool:
        if self.i >= len(self.lines):
            return False
        line = self.lines[self.i]
        if line.startswith("diff --git "):
            return True
        nxt = self.lines[self.i + 1] if self.i + 1 < len(self.lines) else ""
        return line.startswith("--- ") and nxt.startswith("+++ ")

    def parse(self) -> Patch:
        description: list[str] = []
        while self.i < len(self.lines) and not self.at_file_start():
            line = self.lines[self.i]
            if line.startswith(("GIT binary patch", "Binary files ")):
                raise self.error("binary patches are not supported")
            description.append(line + "\n")
            self.i += 1
        files: list[FilePatch] = []
        while True:
            while self.i < len(self.lines) and self.lines[self.i].strip() == "":
                self.i += 1
            if self.i >= len(self.lines):
                break
            if not self.at_file_start():
                raise self.error(
                    f"unexpected line {self.lines[self.i]!r}: expected 'diff --git', '---' or the end "
                    "of the patch (a hunk header's line counts may be wrong)"
                )
            files.append(self.parse_file())
        seen: set[str] = set()
        for file in files:
            if file.path in seen:
                raise PatchFormatError(
                    f"{self.source}: {file.path} appears twice; merge its sections into one (regenerate "
                    "the patch with `pmsplat patches refresh`)"
                )
            seen.add(file.path)
        return Patch("".join(description), tuple(files))

    def parse_file(self) -> FilePatch:
        start = self.i
        git_path: str | None = None
        git_kind = "modify"
        if self.lines[self.i].startswith("diff --git "):
            git_path = self.parse_git_line(self.lines[self.i])
            self.i += 1
            while self.i < len(self.lines):
                line = self.lines[self.i]
                if line.startswith("new file mode "):
                    git_kind = "create"
                elif line.startswith("deleted file mode "):
                    git_kind = "delete"
                elif line.startswith(_UNSUPPORTED_GIT_HEADERS):
                    raise self.error(f"{line.split(' ')[0]} {line.split(' ')[1]} (renames, copies and mode "
                                     "changes) is not supported; express the change as content edits")
                elif line.startswith(("GIT binary patch", "Binary files ")):
                    raise self.error(f"binary patches are not supported ({git_path})")
                elif not line.startswith(_IGNORED_GIT_HEADERS):
                    break
                self.i += 1
        if self.i < len(self.lines) and self.lines[self.i].startswith("--- "):
            if self.i + 1 >= len(self.lines) or not self.lines[self.i + 1].startswith("+++ "):
                raise self.error("a '---' line must be followed by a '+++' line")
            old = self.parse_path(self.lines[self.i][4:])
            new = self.parse_path(self.lines[self.i + 1][4:])
            self.i += 2
            if old is None and new is None:
                raise self.error("both sides are /dev/null", start)
            kind = "create" if old is None else "delete" if new is None else "modify"
            path = new if new is not None else old
            if old is not None and new is not None and old != new:
                raise self.error(f"renames are not supported ({old} -> {new})", start)
            if git_path is not None and (git_path != path or git_kind != kind):
                raise self.error(f"the diff --git header ({git_kind} {git_path}) disagrees with the "
                                 f"---/+++ lines ({kind} {path})", start)
            hunks = self.parse_hunks(path)
            if not hunks:
                raise self.error(f"{path}: no hunk after the ---/+++ lines")
        else:
            if git_path is None:
                raise self.error("expected a '---' line")
            if git_kind == "modify":
                raise self.error(f"{git_path}: a diff --git section without changes (mode-only changes "
                                 "are not supported)", start)
            path, kind, hunks = git_path, git_kind, []
        assert path is not None
        file = FilePatch(path, kind, tuple(hunks))
        self.check_file(file, start)
        return file

    def parse_git_line(self, line: str) -> str:
        rest = line[len("diff --git "):]
        if rest.startswith('"'):
            raise self.error("quoted paths are not supported; rename the file to plain ASCII")
        half = (len(rest) - 1) // 2
        a, b = rest[:half], rest[half + 1:]
        if len(rest) % 2 == 0 or rest[half] != " " or not (a.startswith("a/") and b.startswith("b/")) \
                or a[2:] != b[2:]:
            raise self.error(f"cannot read the paths of {line!r} (expected 'diff --git a/PATH b/PATH'; "
                             "renames are not supported)")
        return self.check_path(a[2:])

    def parse_path(self, field: str) -> str | None:
        field = field.split("\t", 1)[0].rstrip("\r")
        if field == DEV_NULL:
            return None
        if field.startswith('"'):
            raise self.error("quoted paths are not supported; rename the file to plain ASCII")
        if not (field.startswith("a/") or field.startswith("b/")):
            raise self.error(f"path {field!r} lacks the a/ or b/ prefix (patches are applied with -p1)")
        return self.check_path(field[2:])

    def check_path(self, path: str) -> str:
        parts = path.split("/")
        if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise self.error(f"unsafe or malformed path {path!r} (must be relative, without '.' or '..')")
        return path

    def parse_hunks(self, path: str) -> list[Hunk]:
        hunks: list[Hunk] = []
        while self.i < len(self.lines) and self.lines[self.i].startswith("@@"):
            hunks.append(self.parse_hunk(path, len(hunks) + 1))
        return hunks

    def parse_hunk(self, path: str, number: int) -> Hunk:
        match = _HUNK_HEADER.match(self.lines[self.i])
        if not match:
            raise self.error(f"{path}: malformed hunk header {self.lines[self.i]!r}")
        old_start, new_start = int(match[1]), int(match[3])
        old_count = 1 if match[2] is None else int(match[2])
        new_count = 1 if match[4] is None else int(match[4])
        header_index = self.i
        self.i += 1
        lines: list[HunkLine] = []
        old_left, new_left = old_count, new_count
        while old_left > 0 or new_left > 0:
            if self.i >= len(self.lines):
                raise self.error(f"{path}: hunk #{number} is truncated: {old_left} old and {new_left} new "
                                 "lines missing", header_index)
            line = self.lines[self.i]
            kind, text = (line[0], line[1:]) if line else (" ", "")  # editors strip a lone space
            if kind == "\\":
                self.strip_newline(lines, path, number)
                continue
            if kind not in " -+":
                raise self.error(f"{path}: hunk #{number}: unexpected line {line!r} ({old_left} old and "
                                 f"{new_left} new lines still expected by the header)")
            if kind in " -":
                old_left -= 1
            if kind in " +":
                new_left -= 1
            if old_left < 0 or new_left < 0:
                raise self.error(f"{path}: hunk #{number} has more lines than its header "
                                 f"{self.lines[header_index]!r} says")
            lines.append(HunkLine(kind, text + "\n"))
            self.i += 1
        if self.i < len(self.lines) and self.lines[self.i].startswith("\\"):
            self.strip_newline(lines, path, number)
        return Hunk(old_start, old_count, new_start, new_count, tuple(lines), match[5])

    def strip_newline(self, lines: list[HunkLine], path: str, number: int) -> None:
        if not lines or not lines[-1].text.endswith("\n"):
            raise self.error(f"{path}: hunk #{number}: misplaced '{NO_NEWLINE_MARKER}' marker")
        lines[-1] = HunkLine(lines[-1].kind, lines[-1].text[:-1])
        self.i += 1

    def check_file(self, file: FilePatch, start: int) -> None:
        if file.kind == "create" and any(h.old_count or h.old_start for h in file.hunks):
            raise self.error(f"{file.path}: a new file's hunk must start at -0,0", start)
        if file.kind == "delete" and any(h.new_count or h.new_start for h in file.hunks):
            raise self.error(f"{file.path}: a deleted file's hunk must end at +0,0", start)
        if file.kind != "modify" and len(file.hunks) > 1:
            raise self.error(f"{file.path}: a created or deleted file must have a single hunk", start)
        previous_end = 0
        for number, hunk in enumerate(file.hunks, 1):
            if hunk.old_index < previous_end:
                raise self.error(f"{file.path}: hunk #{number} overlaps or precedes the previous hunk", start)
            previous_end = hunk.old_index + hunk.old_count
            for side in (hunk.old_lines, hunk.new_lines):
                if any(not text.endswith("\n") for text in side[:-1]):
                    raise self.error(f"{file.path}: hunk #{number}: '{NO_NEWLINE_MARKER}' on a line that "
                                     "is not the last one of its side", start)
