"""Error types that the CLI turns into one line and exit code 2."""
from __future__ import annotations


class SeqdlError(Exception):
    """An expected failure caused by the user's input (a file, an option)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        message = super().__str__()
        return f"{self.path}: {message}" if self.path else message


class CheckpointError(SeqdlError, ValueError):
    """A checkpoint or model file that is missing, corrupt or of the wrong kind or shape."""
