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
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json", "csv"]), default="md",
              help="md, html (one self-contained page, as report.html), json, or csv (one row per metric; with "
                   "--samples, that probe's samples).")
@click.option("--samples", "samples_of", metavar="PROBE_ID",
              help="With --format csv: the samples of this probe (from the run directory's samples/), one row each.")
@click.option("--out", type=click.Path(path_type=Path), help="Write here instead of standard output.")
def report_render(report_file: Path, fmt: str, samples_of: str | None, out: Path | None) -> None:
    """Render REPORT_FILE (a report.json) as Markdown, HTML, JSON or CSV."""
    from audit.errors import BadInput
    from reports import (
        atomic_write_text,
        load_report,
        render_html,
        render_markdown,
        render_metrics_csv,
        render_samples_csv,
    )

    rep = load_report(report_file)
    if samples_of is not None and fmt != "csv":
        raise BadInput(f"{samples_of}: samples are exported as CSV only (add --format csv)", setting="samples")
    if fmt == "csv" and samples_of is not None:
        probe = next((p for p in rep.probes if p.id == samples_of), None)
        if probe is None or not probe.samples_file:
            raise BadInput(f"{samples_of}: the report has no samples for this probe "
                           f"(probes with samples: {', '.join(p.id for p in rep.probes if p.samples_file) or 'none'})",
                           setting="samples")
        path = report_file.parent / probe.samples_file
        try:
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path}: cannot read the samples ({exc})", setting="samples") from None
        text = render_samples_csv(records)
    elif fmt == "csv":
        text = render_metrics_csv(rep)
    elif fmt == "html":
        text = render_html(rep)
    else:
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
