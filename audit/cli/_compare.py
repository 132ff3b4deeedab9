"""``lm-audit compare``: several report.json files side by side (no model needed)."""

from __future__ import annotations

from pathlib import Path

import click

from audit.cli._group import cli
from audit.errors import BadInput


@cli.command(name="compare")
@click.argument("report_files", nargs=-1, type=click.Path(path_type=Path), metavar="REPORT REPORT [REPORT ...]")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md", show_default=True,
              help="md, html (one self-contained page, with charts against model size) or json.")
@click.option("--out", type=click.Path(path_type=Path), help="Write here instead of standard output.")
@click.option("--force", is_flag=True, help="Compare reports of different taxonomies or probe versions.")
def compare_cmd(report_files: tuple[Path, ...], fmt: str, out: Path | None, force: bool) -> None:
    """Compare several audits: one column per report, one row per metric.

    The first report is the reference (column A): each other column's metrics measured on the
    same items are tested against it item by item (McNemar's exact test for rates, a paired
    bootstrap for means; Holm's correction over all of them). Each row with a direction marks its
    best and worst column. When the models' parameter counts differ, the HTML draws each gated
    metric against model size. The JSON is ASCII (every other character escaped)."""
    from reports import (
        IncomparableReports,
        atomic_write_text,
        compare_reports,
        load_report,
        load_samples,
        render_compare_html,
        render_compare_json,
        render_compare_markdown,
    )

    if len(report_files) < 2:
        given = f": {report_files[0]}" if report_files else ""
        raise BadInput(f"compare needs at least 2 reports, got {len(report_files)}{given}")
    reports = [load_report(path) for path in report_files]  # ReportError names the file
    try:
        c = compare_reports(reports, [load_samples(r, path) for r, path in zip(reports, report_files)], force=force,
                            paths=[str(path) for path in report_files])
    except IncomparableReports as exc:
        raise BadInput(str(exc)) from None
    render = {"md": render_compare_markdown, "html": render_compare_html, "json": render_compare_json}[fmt]
    text = render(c)
    if out:
        atomic_write_text(out, text if text.endswith("\n") else text + "\n")
    else:
        click.echo(text, nl=not text.endswith("\n"))
