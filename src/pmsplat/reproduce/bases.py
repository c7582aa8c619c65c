"""The shipped synthetic bases: ``checkpoints/synthetic/<baseline>_base.safetensors`` + provenance.

``pmsplat pretrain`` (``make pretrain-synthetic BASELINE=<baseline>``) writes each base as float16
safetensors (the ``encoder.*`` tensors of the model wrapper) and ``<name>.provenance.json`` beside
it (command, commit, data hash, steps, wall time, machine, sha256, validation metrics). The
repository ships the MVSplat one; ``pmsplat reproduce`` fine-tunes it (:func:`checked_base`), and
``--from-scratch`` trains a short base instead.

Where the folder lies: ``$PMSPLAT_SYNTHETIC_BASES`` when set, else ``checkpoints/synthetic`` of the
source checkout this package is imported from (an editable install, as ``make setup`` makes), else
of the current directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pmsplat.errors import DataError

SHIPPED_FOLDER = Path("checkpoints") / "synthetic"
FOLDER_VARIABLE = "PMSPLAT_SYNTHETIC_BASES"  # another folder of bases (e.g. your own pretraining's)
_CHECKOUT = Path(__file__).resolve().parents[3]  # src/pmsplat/reproduce/bases.py -> the checkout


def shipped_folder() -> Path:
    """``$PMSPLAT_SYNTHETIC_BASES``, else ``checkpoints/synthetic`` of the checkout (when this
    package runs from one), else of the current directory."""
    if os.environ.get(FOLDER_VARIABLE):
        return Path(os.environ[FOLDER_VARIABLE])
    if (_CHECKOUT / "setup.py").is_file() and (_CHECKOUT / SHIPPED_FOLDER).is_dir():
        return _CHECKOUT / SHIPPED_FOLDER
    return SHIPPED_FOLDER


def shipped_base(baseline: str) -> Path:
    """The path of ``baseline``'s shipped base (it may not exist)."""
    return shipped_folder() / f"{baseline}_base.safetensors"


def provenance_path(weights: Path) -> Path:
    """``<name>.provenance.json`` beside ``<name>.safetensors``."""
    weights = Path(weights)
    return weights.with_name(weights.name[: -len(".safetensors")] + ".provenance.json")


def file_sha256(path: Path) -> str:
    """sha256 (full hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_provenance(weights: Path, remedy: str) -> dict[str, Any]:
    """The provenance of ``weights`` after checking that both files exist and that the weights'
    sha256 is the recorded one. Raises :class:`DataError` (one line ending in ``remedy``) on a
    missing file, an unreadable provenance or a sha256 mismatch."""
    weights = Path(weights)
    record_path = provenance_path(weights)
    for path in (weights, record_path):
        if not path.is_file():
            raise DataError(f"{path} is missing: {remedy}")
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{record_path} is not readable JSON ({error}): {remedy}") from error
    if not isinstance(record, dict) or not record.get("sha256"):
        raise DataError(f"{record_path} holds no sha256 of the weights: {remedy}")
    actual = file_sha256(weights)
    if actual != record["sha256"]:
        raise DataError(f"{weights}: sha256 {actual[:16]}... differs from the provenance's {str(record['sha256'])[:16]}... "
                        f"(corrupt or replaced): {remedy}")
    return record


def pretrain_remedy(baseline: str) -> str:
    """What to run when a shipped base is missing or corrupt."""
    return (f"run `make pretrain-synthetic BASELINE={baseline}` to (re)create it (hours on 2 CPU cores; "
            f"`git checkout -- {SHIPPED_FOLDER}` restores a shipped one), or pass --from-scratch to train a short base instead")


def checked_base(baseline: str) -> tuple[Path, dict[str, Any]]:
    """(path, provenance) of ``baseline``'s shipped base, its sha256 verified; one
    :class:`DataError` naming ``make pretrain-synthetic`` when it is missing or corrupt."""
    path = shipped_base(baseline)
    record = read_provenance(path, pretrain_remedy(baseline))
    if record.get("baseline", baseline) != baseline:
        raise DataError(f"{path}: its provenance names baseline {record.get('baseline')!r}, not {baseline!r}: "
                        f"{pretrain_remedy(baseline)}")
    return path.resolve(), record


def shipped_base_summary(path: Path, sha256: str | None) -> str:
    """``checkpoints/synthetic/<name>`` with its pretraining steps (from its provenance) and sha256,
    for the reports."""
    try:
        record = json.loads(provenance_path(path).read_text())
    except (OSError, ValueError, TypeError):
        record = {}
    steps = f"{record['steps']} pretraining steps, " if "steps" in record else ""
    return f"`{SHIPPED_FOLDER / Path(path).name}` ({steps}sha256 {str(sha256)[:12]}…)"
