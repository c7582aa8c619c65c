"""Errors raised by the splatting decoder (splatcore does not import pmsplat, so they live here).

Every message says what is wrong and how to fix it.
"""

from __future__ import annotations


class DecoderError(Exception):
    """Base class of decoder errors."""


class DecoderConfigError(DecoderError, ValueError):
    """A decoder config key has an invalid value (unknown name, backend, depth mode...)."""


class DecoderInputError(DecoderError, ValueError):
    """Gaussians or cameras given to the decoder have a wrong shape, dtype, device or value."""


class BackendUnavailableError(DecoderError, RuntimeError):
    """The requested rendering backend cannot run here (gsplat without CUDA, gsplat missing)."""
