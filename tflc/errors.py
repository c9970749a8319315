"""The errors tflc raises on purpose. The CLI turns each into one line and an exit code."""
from __future__ import annotations


class TflcError(Exception):
    """Base class. ``exit_code`` is what the CLI returns for it."""

    exit_code = 2


class ModelFormatError(TflcError):
    """The input is not a readable .tflite model (truncated, corrupt, not a flatbuffer...)."""


class UnsupportedModelError(TflcError):
    """A well-formed model that uses something tflc cannot handle (e.g. an unknown operator)."""


class UsageError(TflcError):
    """Bad command-line arguments or options."""


class VerificationError(TflcError):
    """The IR broke an invariant, or a written model does not match its input."""

    exit_code = 1

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


class RuntimeFailure(TflcError):
    """LiteRT refused or crashed on a model."""
