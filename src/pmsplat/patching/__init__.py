"""The patch manager behind ``pmsplat patches``: keeps the PM-Loss changes to each vendored
baseline as a short series of unified diffs, and proves they are the *whole* difference.

Model (quilt-style, patches kept applied): the files under ``baselines/`` are what runs, so
editable installs and IDEs see the patched code. ``patches/<baseline>/series`` lists the diffs;
the pristine (unpatched) tree is obtained by reverse-applying them in memory and is pinned by a
content hash in ``patches/manifest.json``. See ``patches/README.md`` for the commands.

Modules: :mod:`.gitdiff` (``git apply`` / ``git diff`` on in-memory trees, parsing with the
``unidiff`` package), :mod:`.tree` (read, hash, atomic writes), :mod:`.repository` (manifest,
series), :mod:`.state` (applied count, drift), :mod:`.operations` (the commands).
"""

from pmsplat.patching.errors import (
    ManifestError,
    PatchConflictError,
    PatchError,
    PatchFormatError,
    StateError,
    VerificationError,
)
from pmsplat.patching.repository import Repository, find_root

__all__ = [
    "ManifestError",
    "PatchConflictError",
    "PatchError",
    "PatchFormatError",
    "Repository",
    "StateError",
    "VerificationError",
    "find_root",
]
