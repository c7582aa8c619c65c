"""The root error of the vendored MVSplat encoder (baselines must not import pmsplat)."""

from splatcore.errors import SplatcoreError


class MVSplatError(SplatcoreError, ValueError):
    """A configuration value or an input batch the MVSplat port cannot use (the message says which)."""
