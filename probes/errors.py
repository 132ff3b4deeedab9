"""Errors a probe raises. The CLI maps ``DatasetError`` to exit code 2 (bad input)."""

from __future__ import annotations


class DatasetError(ValueError):
    """A prompt set or user-supplied dataset that cannot be used. One line: file, line or key, problem."""
