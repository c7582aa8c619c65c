"""The import contracts of ``.importlinter`` hold (checked with import-linter's ``lint-imports``):

- layers: pmsplat above the baselines (mvsplat, depthsplat: independent of each other) above the
  shared core (splatcore); the patch series' own imports are the only listed exceptions;
- inside pmsplat: the commands (``pmsplat.cli``, ``pmsplat.commands``) above every other module
  (an exhaustive contract: a new module of pmsplat must be listed in one of its layers);
- no import cycles between the modules of any package.

A failure prints import-linter's report, which lists each forbidden import with its line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import REPO_ROOT as REPO

CONFIG = REPO / ".importlinter"


def lint_imports(contract: str) -> subprocess.CompletedProcess:
    command = Path(sys.executable).with_name("lint-imports")
    if not command.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.fail("import-linter is not installed: pip install import-linter (it is in the 'dev' extra)")
        command = Path(found)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "baselines")])}
    return subprocess.run(
        [str(command), str(CONFIG), "--contract", contract, "--no-cache", "--no-logo"],
        capture_output=True, text=True, cwd=REPO, env=env,
    )


def _check(contract: str) -> None:
    done = lint_imports(contract)
    assert done.returncode == 0, f"import contract {contract!r} is broken:\n{done.stdout}\n{done.stderr}"


def test_pmsplat_above_the_baselines_above_the_core():
    _check("layers")


def test_commands_above_the_rest_of_pmsplat():
    _check("commands")


def test_no_import_cycles_inside_a_package():
    _check("acyclic")

