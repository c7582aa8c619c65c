"""Errors of the patch manager (all derive from :class:`PatchError`, a ``PmsplatError``; see
``pmsplat.errors`` for the convention). Each message says what is wrong and how to fix it; every
operation is all or nothing, so after any of them nothing was written."""

from __future__ import annotations

from pmsplat.errors import DataError, InputError, PmsplatError


class PatchError(PmsplatError):
    """Base class of every error the patch manager raises."""


class ManifestError(PatchError, DataError):
    """``patches/manifest.json``, a ``series`` file or a pristine listing is missing or malformed."""


class PatchFormatError(PatchError, InputError):
    """A patch file is not a unified diff the patch manager can read (or uses an unsupported feature)."""


class PatchConflictError(PatchError):
    """A patch does not apply to the files it targets. Nothing was written.

    ``patch``, ``path`` and ``hunk`` (1-based; 0 for a whole-file conflict) locate the failure.
    """

    def __init__(self, message: str, *, patch: str, path: str, hunk: int) -> None:
        self.patch = patch
        self.path = path
        self.hunk = hunk
        super().__init__(message)


class VerificationError(PatchError):
    """``pmsplat patches verify`` found the tree, the series and the manifest inconsistent."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("FAILED\n" + "\n".join(f"  {problem}" for problem in problems))


class StateError(PatchError):
    """The requested operation does not fit the current state of the tree (e.g. nothing applied)."""
