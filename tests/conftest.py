"""Shared test fixtures.

Runtime type checking: pytest.ini enables jaxtyping's import hook with beartype for the packages
pmsplat, splatcore, mvsplat and depthsplat, so every annotated function is shape-checked in tests.

``../shared`` (next to the repository) holds upstream data (parity tensors, evaluation indices).
Tests that need it use the ``shared_dir`` fixture and skip with a clear reason when it is absent.
GPU tests carry ``@pytest.mark.gpu`` and are skipped when CUDA is unavailable.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from testkit import REPO_ROOT
from testkit.tiny_mvsplat import make_tiny_synthetic

SHARED_DIR = Path(os.environ.get("PMSPLAT_SHARED", REPO_ROOT.parent / "shared"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is available on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder; skips the test when it is not present."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"../shared not found at {SHARED_DIR} (set PMSPLAT_SHARED to its path)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """One train + two test scenes of 32x32 synthetic data (testkit.tiny_mvsplat), built once."""
    return make_tiny_synthetic(tmp_path_factory.mktemp("tiny_synthetic"))


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)
