"""The test tree mirrors the source tree: ``tests/<package>/<subpackage>/test_*.py`` tests
``<package>.<subpackage>`` (pmsplat in src/, the baselines in baselines/), so a contributor finds
the tests of a module next to its path. Only ``tests/benchmarks`` (the scripts in benchmarks/)
and the repository-wide tests at the top level are outside a package."""

from __future__ import annotations

from testkit import REPO_ROOT

TESTS = REPO_ROOT / "tests"
SOURCE_ROOTS = {"pmsplat": REPO_ROOT / "src" / "pmsplat", "splatcore": REPO_ROOT / "baselines" / "splatcore",
                "mvsplat": REPO_ROOT / "baselines" / "mvsplat", "depthsplat": REPO_ROOT / "baselines" / "depthsplat",
                "benchmarks": REPO_ROOT / "benchmarks"}


def test_every_test_folder_is_a_source_folder():
    files = sorted(TESTS.rglob("test_*.py"))
    assert len(files) > 50, "the suite was not found where this test expects it"
    misplaced = []
    for path in files:
        parts = path.relative_to(TESTS).parts
        if len(parts) == 1:
            continue  # repository-wide tests (import layers, this file)
        top, *folders = parts[:-1]
        source = SOURCE_ROOTS.get(top)
        if source is None or not source.joinpath(*folders).is_dir():
            misplaced.append(str(path.relative_to(REPO_ROOT)))
    assert not misplaced, f"test files whose folder mirrors no source folder: {misplaced}"


def test_no_prefix_named_files_left_at_the_top():
    top = sorted(p.name for p in TESTS.glob("test_*.py"))
    assert top == ["test_import_layers.py", "test_layout.py"], (
        f"put these under tests/<package>/<subpackage>/ next to the code they test: {top}")
