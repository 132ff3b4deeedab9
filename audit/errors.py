"""Error classes that map to the CLI's exit codes (2 bad input, 3 runtime failure)."""

from __future__ import annotations


class AuditError(Exception):
    """Base class; ``exit_code`` tells the CLI how to exit. Messages are one line."""

    exit_code = 3


class BadInput(AuditError):
    """The user gave something unusable: a flag value, a path, a file's contents."""

    exit_code = 2


class RuntimeFailure(AuditError):
    """Something went wrong while running: the model, a scorer, the disk."""

    exit_code = 3
