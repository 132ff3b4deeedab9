"""The lm-audit command line: the only package that prints.

One module per command group; ``main`` maps every failure to an exit code and a one-line
message. Exit codes: 0 success, 1 policy violation, 2 bad input, 3 runtime failure, 130 interrupted.
"""

from audit.cli._group import cli
from audit.cli._main import main

__all__ = ["cli", "main"]
