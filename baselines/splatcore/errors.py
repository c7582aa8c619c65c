"""The errors of the shared core (and, through their roots, of the baselines built on it).

One root, :class:`SplatcoreError`; ``mvsplat.errors.MVSplatError`` and
``depthsplat.errors.DepthSplatError`` derive from it. Raise the subclass that says what the caller
can do about the problem; each also derives from the built-in exception callers already expect
(``except ValueError`` keeps working for a bad config or input, ``except FileNotFoundError`` for
missing weights). The ``pmsplat`` command prints any of them as one line
``pmsplat <command>: <message>`` (see ``pmsplat.errors``), so a message says what is wrong and how
to fix it. Baselines must not import pmsplat, so the core keeps its own root.
"""

from __future__ import annotations


class SplatcoreError(Exception):
    """Root of every error the shared core and the vendored baselines raise on purpose."""


class ConfigError(SplatcoreError, ValueError):
    """A configuration value (model, network, loss, decoder, dataset, optimizer...) is unknown,
    out of range or inconsistent with the others."""


class InputError(SplatcoreError, ValueError):
    """A tensor or batch given to a function has a wrong shape, dtype, device or value."""


class DataError(SplatcoreError):
    """A data file (dataset root, index, chunk, image, camera vector, weight source) is missing,
    corrupt or not the expected one."""


class MissingWeightsError(SplatcoreError, FileNotFoundError):
    """Pretrained weights (LPIPS / VGG16, a checkpoint) are needed but cannot be found or read."""


class CheckpointError(MissingWeightsError):
    """A checkpoint is missing, unreadable, or does not match the model."""


class BackendUnavailableError(SplatcoreError, RuntimeError):
    """The requested rendering backend cannot run here (gsplat without CUDA, gsplat missing)."""


def where(file: object | None = None, scene: str | None = None, frame: int | None = None) -> str:
    """A short "(file ..., scene ..., frame ...)" suffix for error messages."""
    parts = []
    if file is not None:
        parts.append(f"file {file}")
    if scene is not None:
        parts.append(f"scene {scene!r}")
    if frame is not None:
        parts.append(f"frame {frame}")
    return f" ({', '.join(parts)})" if parts else ""
