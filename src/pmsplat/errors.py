"""The error convention of pmsplat (and of the baselines it serves), and the error types of pmsplat.

One root per package:

- ``pmsplat``: :class:`PmsplatError` (this module; the patch manager's ``PatchError`` derives from it);
- ``splatcore`` (the shared core): ``splatcore.errors.SplatcoreError``;
- ``mvsplat`` / ``depthsplat``: ``MVSplatError`` / ``DepthSplatError``, both subclasses of
  ``SplatcoreError`` (the baselines must not import pmsplat, so they cannot use this module).

Raise the most specific class of *your own* package that says what is wrong (bad input, bad
config, a missing or corrupt file, missing weights, a missing optional package); those classes also
derive from the built-in exception that fits (``ValueError``, ``FileNotFoundError``,
``ImportError``), so ``except ValueError`` keeps working. Write the message for the person at the
terminal: what is wrong, where (file, key, scene), and how to fix it. Add a new class only when a
caller catches it or a test checks it.

Commands do not catch these errors themselves: ``pmsplat.cli.main`` turns any of the roots, a
missing file (``FileNotFoundError``) and a missing optional dependency (``ImportError``) into one
line ``pmsplat <command>: <message>`` on stderr (``<command>`` with its sub-command, e.g.
``pmsplat teacher check``), with no traceback, and exits with the command's error code (2 for
``train``, ``evaluate``, ``reproduce``, ``parity`` and ``data``; 1 for ``teacher`` and ``patches``,
whose failures are checks that did not pass). Anything else is a bug and keeps its traceback.
"""


class PmsplatError(Exception):
    """Root of the errors pmsplat raises on bad input or a bad environment."""


class InputError(PmsplatError, ValueError):
    """An argument has the wrong shape, dtype, device, or holds non-finite / degenerate values."""


class DegenerateInputError(InputError):
    """A point set cannot define the requested fit (too few, identical or collinear points)."""


class DataError(PmsplatError):
    """A dataset file, chunk, index or cache entry is missing, corrupt or inconsistent."""


class MissingDependencyError(PmsplatError, ImportError):
    """An optional package is needed for the requested feature but is not installed."""

    def __init__(self, package: str, feature: str, pip_command: str):
        self.package = package
        self.pip_command = pip_command
        super().__init__(
            f"{feature} needs the optional package '{package}', which is not installed. "
            f"Install it with:  {pip_command}"
        )


class MissingWeightsError(PmsplatError, FileNotFoundError):
    """A checkpoint or pretrained weight file was asked for but does not exist."""
