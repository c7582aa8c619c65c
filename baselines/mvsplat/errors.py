"""Errors raised by the vendored MVSplat encoder (baselines must not import pmsplat)."""


class MVSplatError(Exception):
    """Base class of the errors this package raises on bad input or configuration."""


class MVSplatConfigError(MVSplatError, ValueError):
    """A configuration value is unknown, unsupported or inconsistent with the others."""


class MVSplatInputError(MVSplatError, ValueError):
    """An input batch has the wrong shape, size or values."""
