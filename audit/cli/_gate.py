"""``lm-audit gate`` (a release policy on an existing report) and ``lm-audit diff`` (two reports)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from audit.cli._group import EXIT_POLICY, cli, shown
from audit.errors import BadInput

if TYPE_CHECKING:
    from reports import PolicyReport


def print_gate(gate: PolicyReport) -> None:
    """The policy's verdict: a count line, then each blocking failure and warning."""
    blocking, warnings = gate.blocking_failures, gate.warnings
    click.echo(f"policy {shown(gate.policy)}: {len(gate.checks)} checks, {len(blocking)} blocking failure(s), "
               f"{len(warnings)} warning(s)")
    for c in blocking:
        click.echo(f"  BLOCK {shown(c.name)}: {shown(c.message)}")
    for c in warnings:
        click.echo(f"  warn  {shown(c.name)}: {shown(c.message)}")


@cli.command(name="gate")
@click.argument("report_file", type=click.Path(path_type=Path))
@click.option("--policy", default="default", show_default=True, help="Release policy YAML, or 'default'.")
@click.option("--junit", type=click.Path(path_type=Path), help="Write the checks as JUnit XML here.")
def gate_cmd(report_file: Path, policy: str, junit: Path | None) -> None:
    """Apply a release policy to an existing report.json (no model): exit 1 on a blocking failure.

    A partial report (its run interrupted, ended on an error, or never finished) is a blocking
    failure unless the policy says ``allow_incomplete: true``."""
    from audit.policy import evaluate, load_policy
    from reports import atomic_write_text, load_report, render_junit

    pol = load_policy(None if policy == "default" else Path(policy))
    rep = load_report(report_file)
    rep.policy = evaluate(pol, rep, path=policy, require_complete=True)
    if junit:
        atomic_write_text(junit, render_junit(rep))
    print_gate(rep.policy)
    if rep.policy.exit_code:
        raise click.exceptions.Exit(EXIT_POLICY)


@cli.command(name="diff")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md")
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 on a regression: a metric significantly worse (paired test after Holm's correction, "
                   "or beyond its interval where items cannot be paired), a metric whose status got worse or "
                   "whose value became null, a metric or probe missing from NEW, or a probe that errored in NEW.")
@click.option("--force", is_flag=True, help="Compare reports of different taxonomies or probe versions.")
def diff_cmd(old: Path, new: Path, fmt: str, fail_on_regression: bool, force: bool) -> None:
    """Compare two report.json files metric by metric.

    Metrics measured on the same items are compared item by item from the runs' samples files
    (McNemar's exact test for rates, a paired bootstrap for means; Holm's correction across
    metrics); the rest by whether the 95% intervals overlap. The output names the test used, and
    what made each regression one. The JSON is ASCII (every other character escaped), so it is
    safe to print whatever the reports' names hold."""
    from reports import (
        IncomparableReports,
        diff_reports,
        load_report,
        load_samples,
        render_diff_markdown,
    )

    old_report, new_report = load_report(old), load_report(new)
    try:
        d = diff_reports(old_report, new_report, force=force, old_samples=load_samples(old_report, old),
                         new_samples=load_samples(new_report, new))
    except IncomparableReports as exc:
        raise BadInput(f"{old} vs {new}: {exc}") from None
    # Markdown escapes and sanitises every report string; JSON is kept lossless and made inert by
    # escaping everything outside ASCII (control characters, bidi overrides, lone surrogates).
    text = json.dumps(d.model_dump(mode="json"), indent=2, ensure_ascii=True) if fmt == "json" \
        else render_diff_markdown(d)
    click.echo(text, nl=fmt == "json")
    if fail_on_regression and d.regression_count:
        raise click.exceptions.Exit(EXIT_POLICY)
