"""``lm-audit report render`` and ``lm-audit report schema`` (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from audit.cli._group import cli


@cli.group()
def report() -> None:
    """Render a report or print its JSON Schema (no model needed)."""


@report.command(name="render")
@click.argument("report_file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md")
@click.option("--out", type=click.Path(path_type=Path), help="Write here instead of standard output.")
def report_render(report_file: Path, fmt: str, out: Path | None) -> None:
    """Render REPORT_FILE (a report.json) as Markdown."""
    from reports import atomic_write_text, load_report, render_markdown

    rep = load_report(report_file)
    text = render_markdown(rep) if fmt == "md" else rep.model_dump_json(indent=2)
    if out:
        atomic_write_text(out, text)
    else:
        click.echo(text)


@report.command(name="schema")
def report_schema() -> None:
    """Print the report's JSON Schema."""
    from reports import report_json_schema

    click.echo(json.dumps(report_json_schema(), indent=2))
