"""Error types and the message for a missing optional dependency."""


class PMSplatError(Exception):
    """Base class of the errors pmsplat raises on bad input or a bad environment."""


class InputError(PMSplatError, ValueError):
    """An argument has the wrong shape, dtype, device, or holds non-finite / degenerate values."""


class DegenerateInputError(InputError):
    """A point set cannot define the requested fit (too few, identical or collinear points)."""


class DataError(PMSplatError):
    """A dataset file, chunk, index or cache entry is missing, corrupt or inconsistent."""


class MissingDependencyError(PMSplatError, ImportError):
    """An optional package is needed for the requested feature but is not installed."""

    def __init__(self, package: str, feature: str, pip_command: str):
        self.package = package
        self.pip_command = pip_command
        super().__init__(
            f"{feature} needs the optional package '{package}', which is not installed. "
            f"Install it with:  {pip_command}"
        )


class MissingWeightsError(PMSplatError, FileNotFoundError):
    """A checkpoint or pretrained weight file was asked for but does not exist."""
