"""The root error of the vendored DepthSplat encoder (baselines must not import pmsplat)."""

from splatcore.errors import SplatcoreError


class DepthSplatError(SplatcoreError, ValueError):
    """A configuration value or an input tensor the DepthSplat port cannot use (the message says which)."""
