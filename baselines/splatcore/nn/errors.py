"""Errors raised by the shared network building blocks (baselines must not import pmsplat)."""


class NetworkError(Exception):
    """Base class of the errors the splatcore network blocks raise."""


class NetworkConfigError(NetworkError, ValueError):
    """A constructor argument is unknown, out of range or inconsistent with the others."""


class NetworkInputError(NetworkError, ValueError):
    """An input tensor has a shape, size or value range the block cannot handle."""
