"""Errors of the model wrapper."""


class ModelError(Exception):
    """Base class of model-wrapper errors."""


class ModelConfigError(ModelError, ValueError):
    """An invalid optimizer/train/test/checkpointing setting or combination."""


class CheckpointError(ModelError, FileNotFoundError):
    """A checkpoint is missing, unreadable, or does not match the model."""
