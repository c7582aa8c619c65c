"""Helpers shared by the tests (not tests themselves): the repository root, hand-built dataset
chunks, a tiny synthetic set with tiny MVSplat overrides. ``pytest.ini`` puts
``tests/support`` on the import path, so test modules import them as ``from testkit... import ...``."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
