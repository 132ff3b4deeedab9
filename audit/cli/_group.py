"""The ``lm-audit`` click group, the exit codes and the helpers every command prints with."""

from __future__ import annotations

import logging

import click

from audit._version import __version__
from reports import sanitize_text

EXIT_OK, EXIT_POLICY, EXIT_BAD_INPUT, EXIT_RUNTIME, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def echo_err(message: str) -> None:
    click.echo(f"lm-audit: {message}", err=True)


def one_line(text: str) -> str:
    """The first non-blank line, made safe for a terminal (``reports.sanitize_text``: no escape
    sequences, control characters or bidi overrides): every message the CLI prints is one line."""
    lines = [ln.strip() for ln in sanitize_text(text).strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def shown(text: object) -> str:
    """Report-derived text (names, messages, model output) as the CLI prints it: sanitised
    (``reports.sanitize_text``) and on one line."""
    return sanitize_text(text, newlines=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="lm-audit")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def cli(debug: bool) -> None:
    """Audit a language model against the Weidinger et al. taxonomy of ethical and social risks."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not debug:  # presidio warns about every recognizer of another language it skips
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
