"""Unified-diff parsing, generation and exact application (pmsplat.patching), checked against git
and GNU patch as independent references where they are installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmsplat.patching import PatchConflictError, PatchFormatError
from pmsplat.patching.diffgen import diff_file, diff_trees
from pmsplat.patching.patchapply import apply_file_patch, apply_patch
from pmsplat.patching.unidiff import parse_patch, split_lines

GIT = shutil.which("git")
GNU_PATCH = shutil.which("patch")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")
needs_patch = pytest.mark.skipif(GNU_PATCH is None, reason="GNU patch is not installed")

# (old, new) file versions; None = the file does not exist. Covers the awkward cases.
CASES = {
    "modify-middle": ("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n", "a\nb\nc\nD\ne\nf\ng\nh\ni\nJ\nk\n"),
    "two-hunks": ("".join(f"{i}\n" for i in range(30)),
                  "".join(f"{i}\n" for i in range(30) if i not in (3, 25)) + "x\n"),
    "add-newline-at-eof": ("x\ny", "x\ny\n"),
    "drop-newline-at-eof": ("x\ny\n", "x\ny"),
    "no-newline-both": ("x\ny", "x\nz"),
    "append-after-no-newline": ("x\ny", "x\ny\nz"),
    "new-file": (None, "one\ntwo\n"),
    "new-file-no-newline": (None, "one\ntwo"),
    "deleted-file": ("one\ntwo\n", None),
    "empty-to-text": ("", "text\n"),
    "crlf": ("a\r\nb\r\nc\r\n", "a\r\nB\r\nc\r\n"),
    "insert-at-top": ("b\nc\n", "a\nb\nc\n"),
    "unicode": ("π = 3.14\n", "π = 3.14159\n# café\n"),
}


def _roundtrip(old: str | None, new: str | None) -> None:
    change = diff_file("pkg/file.py", old, new)
    assert change is not None
    result, offsets = apply_file_patch(change, old)
    assert result == new and offsets == []
    back, _ = apply_file_patch(change.reversed(), new)
    assert back == old
    tree_patch = diff_trees({} if old is None else {"pkg/file.py": old.encode()},
                            {} if new is None else {"pkg/file.py": new.encode()}, "A description.\n\n")
    assert parse_patch(tree_patch.format()) == tree_patch


@pytest.mark.parametrize("case", sorted(CASES))
def test_generate_apply_reverse_and_reparse(case):
    _roundtrip(*CASES[case])


_line = st.sampled_from(["a\n", "b\n", "c\n", "\n", "  x = 1\n", "c\r\n"])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    old=st.none() | st.lists(_line, max_size=25),
    new=st.none() | st.lists(_line, max_size=25),
    old_tail=st.sampled_from(["", "end"]),
    new_tail=st.sampled_from(["", "end", "END"]),
)
def test_roundtrip_property(old, new, old_tail, new_tail):
    old_text = None if old is None else "".join(old) + old_tail
    new_text = None if new is None else "".join(new) + new_tail
    if old_text == new_text:
        assert diff_file("f", old_text, new_text) is None
        return
    _roundtrip(old_text, new_text)


def test_split_lines_only_splits_on_newline():
    assert split_lines("a\x0cb\u2028c\r\nd") == ["a\x0cb\u2028c\r\n", "d"]
    assert split_lines("") == []


def _git_diff(tmp_path: Path, old: str | None, new: str | None) -> str:
    """The patch git itself writes for old -> new (index vs work tree) of pkg/file.py."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-c", "core.autocrlf=false", *args], cwd=tmp_path, capture_output=True,
                              check=True)

    git("init", "-q", ".")
    target = tmp_path / "pkg" / "file.py"
    target.parent.mkdir()
    if old is not None:
        target.write_bytes(old.encode())
        git("add", "pkg/file.py")
    if new is None:
        target.unlink()
    else:
        target.write_bytes(new.encode())
    if old is None:
        git("add", "-N", "pkg/file.py")
    return git("diff", "--no-color", "--no-renames").stdout.decode()


@needs_git
@pytest.mark.parametrize("case", sorted(CASES))
def test_parses_and_applies_patches_written_by_git(tmp_path, case):
    old, new = CASES[case]
    text = _git_diff(tmp_path, old, new)
    patch = parse_patch(text)
    [change] = patch.files
    assert change.path == "pkg/file.py"
    assert change.kind == ("create" if old is None else "delete" if new is None else "modify")
    result, offsets = apply_file_patch(change, old)
    assert result == new and offsets == []


def _materialise(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)


def _read_all(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".git" not in p.parts and not p.name.endswith(".patch")}


def _all_cases_as_trees() -> tuple[dict[str, bytes], dict[str, bytes]]:
    old_tree, new_tree = {}, {}
    for name, (old, new) in CASES.items():
        if old is not None:
            old_tree[f"base/{name}.py"] = old.encode()
        if new is not None:
            new_tree[f"base/{name}.py"] = new.encode()
    return old_tree, new_tree


@needs_git
def test_git_apply_accepts_our_patches_and_agrees_byte_for_byte(tmp_path):
    old_tree, new_tree = _all_cases_as_trees()
    patch = diff_trees(old_tree, new_tree, "Every awkward case in one patch.\n\n")
    ours, _ = apply_patch(old_tree, patch)
    assert ours == new_tree
    _materialise(tmp_path, old_tree)
    (tmp_path / "all.patch").write_bytes(patch.format().encode())
    subprocess.run(["git", "init", "-q", "."], cwd=tmp_path, check=True)
    check = subprocess.run(["git", "apply", "--check", "all.patch"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    subprocess.run(["git", "apply", "all.patch"], cwd=tmp_path, check=True)
    assert _read_all(tmp_path) == new_tree
    subprocess.run(["git", "apply", "-R", "all.patch"], cwd=tmp_path, check=True)
    assert _read_all(tmp_path) == old_tree


@needs_patch
def test_gnu_patch_applies_our_patches_without_fuzz_or_offset(tmp_path):
    old_tree, new_tree = _all_cases_as_trees()
    # GNU patch cannot create/delete *empty* files from a patch; every case here has content.
    patch = diff_trees(old_tree, new_tree)
    _materialise(tmp_path, old_tree)
    (tmp_path / "all.patch").write_bytes(patch.format().encode())
    result = subprocess.run([GNU_PATCH, "-p1", "-F0", "-s", "-i", "all.patch"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "offset" not in result.stdout and "fuzz" not in result.stdout
    after = {k: v for k, v in _read_all(tmp_path).items() if not k.endswith((".orig", ".rej"))}
    assert after == new_tree


def test_conflict_names_patch_file_hunk_and_lines():
    old = "".join(f"line {i}\n" for i in range(1, 21))
    new = old.replace("line 15\n", "line fifteen\n").replace("line 3\n", "line three\n")
    change = diff_file("pkg/file.py", old, new)
    edited = old.replace("line 14\n", "line 14 edited\n")
    with pytest.raises(PatchConflictError) as info:
        apply_file_patch(change, edited, patch_name="0001-x.patch")
    error = info.value
    assert (error.patch, error.path, error.hunk) == ("0001-x.patch", "pkg/file.py", 2)
    message = str(error)
    assert "hunk #2 @@ -12,7 +12,7 @@" in message
    assert "line 14: the patch expects 'line 14'" in message
    assert "'line 14 edited'" in message
    assert "line 15" not in message.split("\n", 1)[1].replace("line 15:", "")  # only the bad line is shown


def test_strict_refuses_an_offset_which_allow_offset_applies_and_reports():
    old = "".join(f"{i}\n" for i in range(20))
    new = old.replace("10\n", "ten\n")
    change = diff_file("f.py", old, new)
    shifted = "new top 1\nnew top 2\n" + old
    with pytest.raises(PatchConflictError, match=r"match exactly at line 10, offset \+2"):
        apply_file_patch(change, shifted)
    result, offsets = apply_file_patch(change, shifted, allow_offset=True)
    assert result == "new top 1\nnew top 2\n" + new
    assert [(o.hunk, o.offset) for o in offsets] == [(1, 2)]


def test_fuzz_is_never_applied_even_with_allow_offset():
    old = "".join(f"{i}\n" for i in range(20))
    change = diff_file("f.py", old, old.replace("10\n", "ten\n"))
    fuzzy_target = old.replace("8\n", "eight\n")  # a context line differs: `patch` would apply with fuzz
    with pytest.raises(PatchConflictError, match="line 9: the patch expects '8'"):
        apply_file_patch(change, fuzzy_target, allow_offset=True)


@pytest.mark.parametrize(
    ("old", "kind", "message"),
    [("exists\n", "create", "already exists"), (None, "modify", "does not exist"),
     ("a\nb\nextra\n", "delete", "does not account for")],
)
def test_whole_file_conflicts(old, kind, message):
    before = {"create": None, "modify": "a\n", "delete": "a\nb\n"}[kind]
    after = {"create": "x\n", "modify": "b\n", "delete": None}[kind]
    change = diff_file("f.py", before, after)
    with pytest.raises(PatchConflictError, match=message):
        apply_file_patch(change, old)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n", "truncated"),
        ("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n+c\n", "unexpected line|more lines"),
        ("--- f\n+++ f\n@@ -1 +1 @@\n-a\n+b\n", "lacks the a/ or b/ prefix"),
        ("--- a/f\n+++ b/g\n@@ -1 +1 @@\n-a\n+b\n", "renames are not supported"),
        ("diff --git a/f b/f\nold mode 100644\nnew mode 100755\n", "not supported"),
        ("diff --git a/f b/f\nindex 1..2\nGIT binary patch\nliteral 1\n", "binary"),
        ("--- a/../f\n+++ b/../f\n@@ -1 +1 @@\n-a\n+b\n", "unsafe"),
        ("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n--- a/f\n+++ b/f\n@@ -5 +5 @@\n-a\n+b\n", "appears twice"),
        ("--- a/f\n+++ b/f\n@@ -3 +3 @@\n-a\n+b\n@@ -1 +1 @@\n-a\n+b\n", "overlaps or precedes"),
    ],
)
def test_malformed_or_unsupported_patches_are_rejected(text, message):
    with pytest.raises(PatchFormatError, match=message):
        parse_patch(text, source="x.patch")


def test_inconsistent_new_side_header_is_rejected():
    patch = parse_patch("--- a/f\n+++ b/f\n@@ -2 +5 @@\n-b\n+B\n")
    with pytest.raises(PatchFormatError, match="new-side line number"):
        apply_file_patch(patch.files[0], "a\nb\nc\n")


def test_description_and_git_noise_are_handled():
    text = ("Subject: add the hook\n\nLonger text.\n---\n stats | 1 +\n\n"
            "diff --git a/f b/f\nindex 0123abc..4567def 100644\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n")
    patch = parse_patch(text)
    assert patch.description.startswith("Subject: add the hook\n") and patch.paths == ["f"]
    assert apply_file_patch(patch.files[0], "a\n")[0] == "b\n"
    # an empty context line whose leading space an editor stripped still counts as context
    stripped = parse_patch("--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n x\n\n-y\n+Y\n")
    assert apply_file_patch(stripped.files[0], "x\n\ny\n")[0] == "x\n\nY\n"


def test_empty_file_creation_uses_git_headers():
    patch = diff_trees({}, {"pkg/__init__.py": b""})
    text = patch.format()
    assert text == "diff --git a/pkg/__init__.py b/pkg/__init__.py\nnew file mode 100644\n"
    assert apply_patch({}, parse_patch(text))[0] == {"pkg/__init__.py": b""}
    assert apply_patch({"pkg/__init__.py": b""}, parse_patch(text), reverse=True)[0] == {}
