"""Errors raised by the vendored DepthSplat encoder (baselines must not import pmsplat)."""


class DepthSplatError(Exception):
    """Base class of the errors this package raises on bad input or configuration."""


class DepthSplatConfigError(DepthSplatError, ValueError):
    """A configuration value is unknown or inconsistent with the others."""


class DepthSplatInputError(DepthSplatError, ValueError):
    """An input tensor has the wrong shape, size or values."""
