"""Error classes that map to the CLI's exit codes (2 bad input, 3 runtime failure).

Library messages name the *setting* (``batch_size``, ``pii.nlp_model``), not a command-line
flag: a Python API user never typed ``--batch-size``. ``BadInput(detail, setting=...)``
keeps the two apart, and the CLI prints the flag that sets it (``cli_message``).
"""

from __future__ import annotations


class AuditError(Exception):
    """Base class; ``exit_code`` tells the CLI how to exit. Messages are one line."""

    exit_code = 3


class BadInput(AuditError):
    """The user gave something unusable: a setting's value, a path, a file's contents.

    ``setting``: the ``AuditConfig`` field (dotted for nested ones) the value came from, when
    one did; ``detail`` then starts with the value, e.g. ``BadInput("0: must be at least 1",
    setting="batch_size")`` reads ``batch_size 0: must be at least 1``.
    """

    exit_code = 2

    def __init__(self, detail: str, *, setting: str | None = None) -> None:
        self.detail = detail
        self.setting = setting
        super().__init__(f"{setting} {detail}" if setting else detail)


class RuntimeFailure(AuditError):
    """Something went wrong while running: the model, a scorer, the disk."""

    exit_code = 3
