"""Errors of the loss package."""


class LossError(Exception):
    """Base class of loss errors."""


class LossConfigError(LossError, ValueError):
    """A loss config is invalid (unknown name, bad weight, ...)."""


class LossInputError(LossError, ValueError):
    """A loss got a prediction/batch it cannot use (e.g. no rendered depth)."""


class LossWeightsMissingError(LossError, FileNotFoundError):
    """A loss needs pretrained weights (LPIPS/VGG) that are not available."""
