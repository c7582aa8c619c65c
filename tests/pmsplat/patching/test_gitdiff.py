"""Patches on in-memory trees (pmsplat.patching.gitdiff: git apply / git diff, parsed with unidiff):
generation, exact application and reversal, error reports, checked against git and GNU patch as
independent references where they are installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmsplat.patching import PatchConflictError, PatchFormatError
from pmsplat.patching.gitdiff import apply_patch, diff_trees, file_kind, parse_patch

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


PATH = "pkg/file.py"


def _tree(text: str | None, path: str = PATH) -> dict[str, bytes]:
    return {} if text is None else {path: text.encode()}


def _diff(old: str | None, new: str | None, path: str = PATH):
    return diff_trees(_tree(old, path), _tree(new, path))


def _apply(patch, text: str | None, path: str = PATH, **kwargs) -> tuple[str | None, list]:
    files, offsets = apply_patch(_tree(text, path), patch, **kwargs)
    return (files[path].decode() if path in files else None), offsets


def _roundtrip(old: str | None, new: str | None) -> None:
    change = _diff(old, new)
    assert change.paths == [PATH]
    result, offsets = _apply(change, old)
    assert result == new and offsets == []
    back, _ = _apply(change, new, reverse=True)
    assert back == old
    tree_patch = diff_trees(_tree(old), _tree(new), "A description.\n\n")
    reparsed = parse_patch(tree_patch.text)
    assert reparsed.text == tree_patch.text and reparsed.description == "A description.\n\n"
    assert str(reparsed.files) == str(tree_patch.files)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generate_apply_reverse_and_reparse(case):
    _roundtrip(*CASES[case])


_line = st.sampled_from(["a\n", "b\n", "c\n", "\n", "  x = 1\n", "c\r\n", "form\x0cfeed\n"])


@settings(max_examples=40, deadline=None, derandomize=True)
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
        assert _diff(old_text, new_text).paths == []
        return
    _roundtrip(old_text, new_text)


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
    assert file_kind(change) == ("create" if old is None else "delete" if new is None else "modify")
    result, offsets = _apply(patch, old)
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
    assert apply_patch(new_tree, patch, reverse=True)[0] == old_tree
    _materialise(tmp_path, old_tree)
    (tmp_path / "all.patch").write_bytes(patch.text.encode())
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
    (tmp_path / "all.patch").write_bytes(patch.text.encode())
    result = subprocess.run([GNU_PATCH, "-p1", "-F0", "-s", "-i", "all.patch"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "offset" not in result.stdout and "fuzz" not in result.stdout
    after = {k: v for k, v in _read_all(tmp_path).items() if not k.endswith((".orig", ".rej"))}
    assert after == new_tree


def test_conflict_names_patch_file_hunk_and_lines():
    old = "".join(f"line {i}\n" for i in range(1, 21))
    new = old.replace("line 15\n", "line fifteen\n").replace("line 3\n", "line three\n")
    change = _diff(old, new)
    edited = old.replace("line 14\n", "line 14 edited\n")
    with pytest.raises(PatchConflictError) as info:
        _apply(change, edited, patch_name="0001-x.patch")
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
    change = _diff(old, new, "f.py")
    shifted = "new top 1\nnew top 2\n" + old
    with pytest.raises(PatchConflictError, match=r"offset \+2"):
        _apply(change, shifted, "f.py")
    result, offsets = _apply(change, shifted, "f.py", allow_offset=True)
    assert result == "new top 1\nnew top 2\n" + new
    assert [(o.path, o.hunk, o.offset) for o in offsets] == [("f.py", 1, 2)]


def test_fuzz_is_never_applied_even_with_allow_offset():
    old = "".join(f"{i}\n" for i in range(20))
    change = _diff(old, old.replace("10\n", "ten\n"), "f.py")
    fuzzy_target = old.replace("8\n", "eight\n")  # a context line differs: `patch` would apply with fuzz
    with pytest.raises(PatchConflictError, match="line 9: the patch expects '8'"):
        _apply(change, fuzzy_target, "f.py", allow_offset=True)


@pytest.mark.parametrize(
    ("old", "kind", "message"),
    [("exists\n", "create", "already exists"), (None, "modify", "does not exist"),
     ("a\nb\nextra\n", "delete", "does not account for")],
)
def test_whole_file_conflicts(old, kind, message):
    before = {"create": None, "modify": "a\n", "delete": "a\nb\n"}[kind]
    after = {"create": "x\n", "modify": "b\n", "delete": None}[kind]
    change = _diff(before, after, "f.py")
    with pytest.raises(PatchConflictError, match=message):
        _apply(change, old, "f.py")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n", "not a valid unified diff"),
        ("diff --git a/f b/f\nold mode 100644\nnew mode 100755\n", "not supported"),
        ("diff --git a/f b/f\nindex 1..2\nGIT binary patch\nliteral 1\n", "binary"),
        ("diff --git a/f b/g\nsimilarity index 90%\nrename from f\nrename to g\n", "renames"),
        ("--- a/../f\n+++ b/../f\n@@ -1 +1 @@\n-a\n+b\n", "unsafe"),
        ("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n--- a/f\n+++ b/f\n@@ -5 +5 @@\n-a\n+b\n", "appears twice"),
    ],
)
def test_malformed_or_unsupported_patches_are_rejected(text, message):
    with pytest.raises(PatchFormatError, match=message):
        parse_patch(text, source="x.patch")


def test_description_and_git_noise_are_handled():
    text = ("Subject: add the hook\n\nLonger text.\n---\n stats | 1 +\n\n"
            "diff --git a/f b/f\nindex 0123abc..4567def 100644\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n")
    patch = parse_patch(text)
    assert patch.description.startswith("Subject: add the hook\n") and patch.paths == ["f"]
    assert _apply(patch, "a\n", "f")[0] == "b\n"


def test_empty_file_creation_uses_git_headers():
    patch = diff_trees({}, {"pkg/__init__.py": b""})
    text = patch.text
    assert text == "diff --git a/pkg/__init__.py b/pkg/__init__.py\nnew file mode 100644\n"
    assert apply_patch({}, parse_patch(text))[0] == {"pkg/__init__.py": b""}
    assert apply_patch({"pkg/__init__.py": b""}, parse_patch(text), reverse=True)[0] == {}
