"""The patch manager on synthetic mini-repositories (tmp_path): apply/unapply/refresh round trips,
verify's failure modes, atomicity, new/deleted files, record-pristine, the CLI, and the real repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pmsplat.cli import main
from pmsplat.patching import PatchConflictError, PatchError, Repository, StateError, VerificationError
from pmsplat.patching import operations as ops
from pmsplat.patching.tree import read_tree
from testkit import REPO_ROOT


ALPHA_MODEL = "".join(f"model line {i}\n" for i in range(1, 31))
ALPHA_LOSS = "def loss(x):\n    return x * x\n"
BETA_MAIN = "beta = 1\n"


def _write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (patches, manifest and baselines), for byte-exact comparisons."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".cache" not in p.parts and ".git" not in p.parts}


def _baselines(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in _snapshot(root).items() if k.startswith("baselines/")}


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    """A mini repository: baselines alpha and beta, pristine recorded, empty series."""
    root = tmp_path / "repo"
    manifest = {"format_version": 1, "description": "test", "baselines": {
        name: {"paths": [f"baselines/{name}"], "upstream": [{"repository": f"https://x/{name}", "commit": "abc"}],
               "pristine": {"sha256": "", "files": 0}} for name in ("alpha", "beta")}}
    _write(root, "patches/manifest.json", json.dumps(manifest))
    for name in ("alpha", "beta"):
        _write(root, f"patches/{name}/series", "# series\n")
        _write(root, f"patches/{name}/pristine.sha256", "")
    _write(root, "baselines/alpha/model.py", ALPHA_MODEL)
    _write(root, "baselines/alpha/loss.py", ALPHA_LOSS)
    _write(root, "baselines/alpha/legacy.py", "old = True\n")
    _write(root, "baselines/alpha/__pycache__/model.cpython-311.pyc", "ignored bytes")
    _write(root, "baselines/beta/main.py", BETA_MAIN)
    ops.record_pristine(Repository(root))
    return root


def _new_patch(root: Path, baseline: str, name: str, edits: dict[str, str | None]) -> None:
    repo = Repository(root)
    ops.new_patch(repo, baseline, name, f"{name}: test patch")
    for path, text in edits.items():
        if text is None:
            (root / path).unlink()
        else:
            _write(root, path, text)
    ops.refresh(Repository(root), [baseline])


@pytest.fixture
def patched_root(repo_root: Path) -> Path:
    """alpha with two patches (a modification + a new file + a deleted file; then two files)."""
    _new_patch(repo_root, "alpha", "hook", {
        "baselines/alpha/model.py": ALPHA_MODEL.replace("model line 5\n", "model line 5\npm = PMHook()\n"),
        "baselines/alpha/pm_hook.py": "class PMHook:\n    weight = 0.005\n",
        "baselines/alpha/legacy.py": None,
    })
    _new_patch(repo_root, "alpha", "loss", {
        "baselines/alpha/model.py": (repo_root / "baselines/alpha/model.py").read_text()
        .replace("model line 25\n", "model line 25\nloss = loss + pm()\n"),
        "baselines/alpha/loss.py": ALPHA_LOSS.replace("x * x", "x * x + 0"),
    })
    return repo_root


def _verify_problems(root: Path) -> str:
    with pytest.raises(VerificationError) as info:
        ops.verify(Repository(root))
    return str(info.value)


# ------------------------------------------------------------------------------------------ basics


def test_hash_ignores_caches_and_changes_with_paths_or_bytes(repo_root):
    repo = Repository(repo_root)
    assert "baselines/alpha/__pycache__/model.cpython-311.pyc" not in repo.tree("alpha")
    reference = repo.spec("alpha").pristine_sha256
    assert ops.verify(repo)  # consistent
    (repo_root / "baselines/alpha/loss.py").rename(repo_root / "baselines/alpha/loss2.py")  # same bytes
    assert "added    baselines/alpha/loss2.py" in _verify_problems(repo_root)
    (repo_root / "baselines/alpha/loss2.py").rename(repo_root / "baselines/alpha/loss.py")
    _write(repo_root, "baselines/alpha/extra/__pycache__/x.pyc", "cache")
    assert ops.verify(Repository(repo_root))
    assert Repository(repo_root).spec("alpha").pristine_sha256 == reference


def test_verify_passes_with_patches_and_with_an_empty_series(patched_root):
    lines = ops.verify(Repository(patched_root))
    assert any(line.startswith("alpha: OK") and "2 patch(es)" in line for line in lines)
    assert any(line.startswith("beta: OK") and "0 patch(es)" in line for line in lines)
    text = (patched_root / "patches/alpha/0001-hook.patch").read_text()
    assert text.startswith("hook: test patch\n\n")
    assert "new file mode 100644\n--- /dev/null\n+++ b/baselines/alpha/pm_hook.py" in text
    assert "deleted file mode 100644\n--- a/baselines/alpha/legacy.py\n+++ /dev/null" in text


def test_unapply_apply_round_trip_is_byte_exact(repo_root):
    pristine = _baselines(repo_root)
    _new_patch(repo_root, "alpha", "hook", {
        "baselines/alpha/model.py": ALPHA_MODEL.replace("model line 5\n", "model line 5\npm = PMHook()\n"),
        "baselines/alpha/pm_hook.py": "class PMHook:\n    pass",  # no newline at end of file
        "baselines/alpha/legacy.py": None,
    })
    after_first = _baselines(repo_root)
    _new_patch(repo_root, "alpha", "loss", {"baselines/alpha/loss.py": ALPHA_LOSS + "# pm\n"})
    patched = _baselines(repo_root)

    ops.unapply(Repository(repo_root), ["alpha"], upto="1")
    assert _baselines(repo_root) == after_first
    ops.unapply(Repository(repo_root))
    assert _baselines(repo_root) == pristine
    assert not (repo_root / "baselines/alpha/pm_hook.py").exists()
    assert ops.status(Repository(repo_root))[2] == "  series: 2 patch(es), 0 applied"
    ops.apply(Repository(repo_root), ["alpha"], upto="0001-hook")
    assert _baselines(repo_root) == after_first
    ops.apply(Repository(repo_root))
    assert _baselines(repo_root) == patched
    ops.verify(Repository(repo_root))


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_series_is_accepted_by_git_apply(patched_root, tmp_path):
    ops.unapply(Repository(patched_root))
    pristine_copy = tmp_path / "copy"
    shutil.copytree(patched_root / "baselines", pristine_copy / "baselines")
    subprocess.run(["git", "init", "-q", "."], cwd=pristine_copy, check=True)
    ops.apply(Repository(patched_root))
    for name in ("0001-hook.patch", "0002-loss.patch"):
        patch = patched_root / "patches/alpha" / name
        check = subprocess.run(["git", "apply", "--check", str(patch)], cwd=pristine_copy, capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stderr
        subprocess.run(["git", "apply", str(patch)], cwd=pristine_copy, check=True)
    assert read_tree(pristine_copy, ["baselines/alpha"]) == read_tree(patched_root, ["baselines/alpha"])


# ----------------------------------------------------------------------------------------- refresh


def test_refresh_edit_of_patch_added_line_round_trips(patched_root):
    """An edit inside the lines a patch added cannot be reverse-applied: the pristine cache makes
    refresh work; the result unapplies to the exact pristine tree and re-applies to the edit."""
    before_0001 = (patched_root / "patches/alpha/0001-hook.patch").read_bytes()
    ops.unapply(Repository(patched_root))
    pristine = _baselines(patched_root)
    ops.apply(Repository(patched_root))
    model = patched_root / "baselines/alpha/model.py"
    model.write_text(model.read_text().replace("loss = loss + pm()", "loss = loss + 0.5 * pm()"))
    edited = _baselines(patched_root)
    status = "\n".join(ops.status(Repository(patched_root), ["alpha"]))
    assert "2 applied" in status and "modified baselines/alpha/model.py" in status
    assert "refresh alpha` records them in 0002-loss.patch" in status

    lines = ops.refresh(Repository(patched_root))
    assert "alpha: refreshed 0002-loss.patch" in lines[0]
    assert (patched_root / "patches/alpha/0001-hook.patch").read_bytes() == before_0001  # names/order kept
    assert "+loss = loss + 0.5 * pm()" in (patched_root / "patches/alpha/0002-loss.patch").read_text()
    ops.verify(Repository(patched_root))
    ops.unapply(Repository(patched_root))
    assert _baselines(patched_root) == pristine
    ops.apply(Repository(patched_root))
    assert _baselines(patched_root) == edited


def test_refresh_without_cache_uses_git_head_or_explains(patched_root):
    model = patched_root / "baselines/alpha/model.py"
    consistent = model.read_text()
    shutil.rmtree(patched_root / "patches/.cache")
    model.write_text(consistent.replace("loss = loss + pm()", "loss = 2 * pm()"))
    with pytest.raises(StateError, match=r"cannot rebuild the pristine version of baselines/alpha/model.py"):
        ops.refresh(Repository(patched_root), ["alpha"])
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    model.write_text(consistent)  # commit the consistent tree, then edit again with no cache
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(patched_root)]
    for args in (["init", "-q", "."], ["add", "-A"], ["commit", "-q", "-m", "consistent"]):
        subprocess.run(git + args, check=True, capture_output=True)
    shutil.rmtree(patched_root / "patches/.cache")
    model.write_text(consistent.replace("loss = loss + pm()", "loss = 2 * pm()") + "tail\n")
    ops.refresh(Repository(patched_root), ["alpha"])
    text = (patched_root / "patches/alpha/0002-loss.patch").read_text()
    assert "+loss = 2 * pm()" in text and "+tail" in text
    ops.verify(Repository(patched_root))


def test_refresh_a_lower_patch_after_unapplying_down_to_it(patched_root):
    ops.unapply(Repository(patched_root), ["alpha"], upto="1")
    hook = patched_root / "baselines/alpha/pm_hook.py"
    hook.write_text(hook.read_text().replace("0.005", "0.01"))
    assert "alpha: note: 1 drifted file(s) are kept as they are" in ops.apply(Repository(patched_root))
    with pytest.raises(StateError, match="unapply alpha --upto 0001-hook.patch"):
        ops.refresh(Repository(patched_root), ["alpha"], patch="0001-hook")
    ops.unapply(Repository(patched_root), ["alpha"], upto="1")
    before_0002 = (patched_root / "patches/alpha/0002-loss.patch").read_bytes()
    ops.refresh(Repository(patched_root), ["alpha"], patch="0001-hook")
    assert "+    weight = 0.01" in (patched_root / "patches/alpha/0001-hook.patch").read_text()
    ops.apply(Repository(patched_root))
    assert (patched_root / "patches/alpha/0002-loss.patch").read_bytes() == before_0002
    ops.verify(Repository(patched_root))


def test_refresh_and_new_refuse_impossible_requests(repo_root, patched_root):
    _write(repo_root, "baselines/beta/main.py", "beta = 2\n")
    with pytest.raises(StateError, match="no applied patch to record them in; start one with"):
        ops.refresh(Repository(repo_root), ["beta"])
    ops.unapply(Repository(patched_root), ["alpha"], upto="1")
    with pytest.raises(StateError, match="new patches go on top"):
        ops.new_patch(Repository(patched_root), "alpha", "third")
    assert ops.refresh(Repository(patched_root), ["alpha"]) == ["alpha: nothing to refresh (no drift)"]
    everything = ops.refresh(Repository(patched_root))  # no baseline named: report and skip beta
    assert everything[0] == "alpha: nothing to refresh (no drift)"
    assert everything[1].startswith("beta: skipped: 1 edited file(s) but no applied patch")


# -------------------------------------------------------------------------------- verify failures


def test_verify_fails_on_an_edited_patched_file(patched_root):
    model = patched_root / "baselines/alpha/model.py"
    model.write_text(model.read_text().replace("model line 12\n", "model line twelve\n"))
    message = _verify_problems(patched_root)
    assert "alpha: the tree differs from pristine + 2 applied patch(es) in 1 file(s)" in message
    assert "modified baselines/alpha/model.py" in message and "refresh alpha" in message
    # edit a line the patch added: the reverse application itself fails, naming the hunk
    model.write_text(model.read_text().replace("model line twelve\n", "model line 12\n")
                     .replace("pm = PMHook()", "pm = None"))
    message = _verify_problems(patched_root)
    assert "baselines/alpha/model.py  (0001-hook.patch: baselines/alpha/model.py: hunk #1" in message
    assert "does not reverse-apply" in message


def test_verify_fails_on_a_wrong_pristine_hash(patched_root):
    manifest_path = patched_root / "patches/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["baselines"]["alpha"]["pristine"]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    message = _verify_problems(patched_root)
    assert f"alpha: pristine hash mismatch: patches/manifest.json records sha256 {'0' * 64}" in message
    assert "record-pristine alpha" in message
    assert "beta" not in message


def test_verify_fails_on_a_tampered_pristine_listing(patched_root):
    listing = patched_root / "patches/alpha/pristine.sha256"
    listing.write_text(listing.read_text().replace("baselines/alpha/loss.py", "baselines/alpha/lost.py"))
    message = _verify_problems(patched_root)
    assert "pristine hash mismatch" in message
    assert "deleted  baselines/alpha/lost.py" in message and "added    baselines/alpha/loss.py" in message


@pytest.mark.skipif(shutil.which("patch") is None, reason="GNU patch is not installed")
def test_verify_fails_on_a_fuzzy_patch(patched_root, tmp_path):
    """Change one context line of a patch: GNU patch still applies it (with fuzz), verify must not."""
    patch_file = patched_root / "patches/alpha/0002-loss.patch"
    text = patch_file.read_text()
    assert " model line 23\n" in text
    fuzzy = text.replace(" model line 23\n", " model line twenty-three\n")
    patch_file.write_text(fuzzy)  # while applied: verify cannot reverse it
    message = _verify_problems(patched_root)
    assert "0002-loss.patch: baselines/alpha/model.py: hunk #1 @@ -24,6 +24,7 @@ does not reverse-apply" in message
    patch_file.write_text(text)
    ops.unapply(Repository(patched_root), ["alpha"], upto="1")
    patch_file.write_text(fuzzy)  # while unapplied: apply refuses it
    copy = tmp_path / "fuzz"
    shutil.copytree(patched_root / "baselines", copy / "baselines")
    gnu = subprocess.run(["patch", "-p1", "--dry-run", "-F2", "-i", str(patch_file)], cwd=copy,
                         capture_output=True, text=True)
    assert gnu.returncode == 0 and "fuzz" in gnu.stdout  # it *is* a fuzzy patch
    with pytest.raises(PatchConflictError, match=r"0002-loss.patch: baselines/alpha/model.py: hunk #1 .* "
                                                 r"does not apply"):
        ops.apply(Repository(patched_root))
    message = _verify_problems(patched_root)
    assert "only 1 of 2 patches are applied (next: 0002-loss.patch)" in message


def test_verify_fails_on_a_patch_that_needs_an_offset(patched_root):
    patch_file = patched_root / "patches/alpha/0002-loss.patch"
    text = patch_file.read_text()
    patch_file.write_text(text.replace("@@ -24,6 +24,7 @@", "@@ -22,6 +22,7 @@"))
    message = _verify_problems(patched_root)
    assert "0002-loss.patch: baselines/alpha/model.py: hunk #1 @@ -22,6 +22,7 @@ does not reverse-apply" in message


def test_verify_fails_on_unlisted_and_foreign_patches(patched_root):
    _write(patched_root, "patches/alpha/0003-stray.patch", "")
    assert "not listed in its series: 0003-stray.patch" in _verify_problems(patched_root)
    (patched_root / "patches/alpha/0003-stray.patch").unlink()
    _write(patched_root, "patches/beta/0001-x.patch", "--- a/baselines/alpha/loss.py\n+++ b/baselines/alpha/loss.py\n"
                                                      "@@ -1 +1 @@\n-def loss(x):\n+def loss(y):\n")
    _write(patched_root, "patches/beta/series", "0001-x.patch\n")
    assert "changes baselines/alpha/loss.py, which is outside the paths baseline 'beta' owns" in \
        _verify_problems(patched_root)


# ------------------------------------------------------------------------------------ atomicity


def test_conflict_leaves_everything_untouched_across_files_patches_and_baselines(patched_root):
    """Patch 1 applies, patch 2 applies to model.py but conflicts in loss.py (its second file); beta
    applies cleanly. Nothing at all may be written, and the error must locate the conflict."""
    _new_patch(patched_root, "beta", "b", {"baselines/beta/main.py": "beta = 1\npm = True\n"})
    ops.unapply(Repository(patched_root))
    _write(patched_root, "baselines/alpha/loss.py", ALPHA_LOSS.replace("x * x", "x ** 2"))
    ops.record_pristine(Repository(patched_root), ["alpha"])  # the baseline changed under the patch
    before = _snapshot(patched_root)
    with pytest.raises(PatchConflictError) as info:
        ops.apply(Repository(patched_root))
    assert (info.value.patch, info.value.path, info.value.hunk) == ("0002-loss.patch", "baselines/alpha/loss.py", 1)
    assert "line 2: the patch expects '    return x * x'" in str(info.value)
    assert "'    return x ** 2'" in str(info.value)
    assert _snapshot(patched_root) == before


def test_unapply_conflict_leaves_everything_untouched(patched_root):
    hook = patched_root / "baselines/alpha/pm_hook.py"
    hook.write_text("class PMHook:\n    weight = 1\n")  # overlaps 0001, not 0002
    before = _snapshot(patched_root)
    with pytest.raises(PatchConflictError, match="0001-hook.patch: baselines/alpha/pm_hook.py"):
        ops.unapply(Repository(patched_root))
    assert _snapshot(patched_root) == before
    ops.unapply(Repository(patched_root), ["alpha"], upto="1")  # 0002 alone is fine
    assert "loss = loss + pm()" not in (patched_root / "baselines/alpha/model.py").read_text()


def test_write_failure_midway_is_rolled_back(patched_root, monkeypatch):
    ops.unapply(Repository(patched_root))
    before = _snapshot(patched_root)
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        ops.apply(Repository(patched_root))
    assert calls["n"] == 2
    assert _snapshot(patched_root) == before
    assert not any(p.name.endswith(".pmsplat-patches-tmp") for p in patched_root.rglob("*"))


# ------------------------------------------------------------------ baseline updates (record-pristine)


def test_record_pristine_rebases_patches_when_the_baseline_changes_in_place(patched_root):
    assert "@@ -3,6 +3,7 @@" in (patched_root / "patches/alpha/0001-hook.patch").read_text()
    model = patched_root / "baselines/alpha/model.py"
    model.write_text("# upstream added a header\n# of two lines\n" + model.read_text())
    assert "modified baselines/alpha/model.py" in _verify_problems(patched_root)
    lines = ops.record_pristine(Repository(patched_root), ["alpha"])
    assert "alpha: rebased 0001-hook.patch (1 hunk(s) had moved)" in lines
    assert "@@ -5,6 +5,7 @@" in (patched_root / "patches/alpha/0001-hook.patch").read_text()
    ops.verify(Repository(patched_root))
    ops.unapply(Repository(patched_root))
    assert model.read_text() == "# upstream added a header\n# of two lines\n" + ALPHA_MODEL


def test_apply_with_offset_after_replacing_the_baseline(patched_root):
    ops.unapply(Repository(patched_root))
    _write(patched_root, "baselines/alpha/model.py", "# new upstream release\n" + ALPHA_MODEL)
    ops.record_pristine(Repository(patched_root), ["alpha"])
    with pytest.raises(PatchConflictError, match=r"offset \+1"):
        ops.apply(Repository(patched_root))
    lines = ops.apply(Repository(patched_root), ["alpha"], allow_offset=True)
    assert "    rebased 0001-hook.patch to apply with zero offset" in lines
    ops.verify(Repository(patched_root))


def test_record_pristine_refuses_a_half_patched_tree(patched_root):
    (patched_root / "baselines/alpha/pm_hook.py").unlink()  # 0001 half undone by hand
    with pytest.raises(StateError, match="cannot tell which patches are applied"):
        ops.record_pristine(Repository(patched_root), ["alpha"])


# --------------------------------------------------------------------------------------- the CLI


def test_cli_status_diff_verify(patched_root, capsys):
    root = ["patches", "--root", str(patched_root)]
    assert main(root + ["verify"]) == 0
    assert main(root + ["diff", "alpha", "--stat"]) == 0
    out = capsys.readouterr().out
    assert "    +2    -0    baselines/alpha/pm_hook.py (new file)" in out
    assert "    +0    -1    baselines/alpha/legacy.py (deleted)" in out
    assert "alpha: total +5 -2 = 7 changed lines in 4 file(s)" in out
    assert main(root + ["diff", "alpha"]) == 0
    assert "+class PMHook:" in capsys.readouterr().out
    (patched_root / "baselines/alpha/loss.py").write_text("edited\n")
    assert main(["patches", "verify", "--root", str(patched_root)]) == 1
    err = capsys.readouterr().err
    assert "pmsplat patches verify: FAILED" in err and "baselines/alpha/loss.py" in err
    assert main(root + ["apply", "nope"]) == 1
    assert "unknown baseline 'nope'; the manifest declares: alpha, beta" in capsys.readouterr().err


def test_cli_new_and_refresh(repo_root, capsys):
    root = ["patches", "--root", str(repo_root)]
    assert main(root + ["new", "beta", "pm-hook", "-m", "Hook PM-Loss into beta."]) == 0
    assert (repo_root / "patches/beta/series").read_text().endswith("\n0001-pm-hook.patch\n")
    _write(repo_root, "baselines/beta/main.py", BETA_MAIN + "pm = 1\n")
    assert main(root + ["refresh", "beta"]) == 0
    assert "beta: refreshed 0001-pm-hook.patch  +1 -0 in 1 file  — Hook PM-Loss into beta." in capsys.readouterr().out
    assert main(root + ["verify", "beta"]) == 0


def test_manifest_errors_are_clear(repo_root):
    manifest_path = repo_root / "patches/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["baselines"]["beta"]["paths"] = ["baselines/alpha/sub"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(PatchError, match="overlap; every file must belong to at most one baseline"):
        Repository(repo_root)
    manifest_path.write_text("{")
    with pytest.raises(PatchError, match="not valid JSON"):
        Repository(repo_root)


def test_verify_on_the_real_repository():
    """`pmsplat patches verify` on this checkout: pristine hashes recorded, series consistent.

    Fails by design when a vendored baseline changed without `pmsplat patches record-pristine` (the
    message, on stderr, lists the files and the command)."""
    assert main(["patches", "--root", str(REPO_ROOT), "verify"]) == 0, (
        "the real repository fails `pmsplat patches verify` (see stderr); if a baseline changed on purpose "
        "run `.venv/bin/pmsplat patches record-pristine` and commit patches/")
