"""``lm-audit prompts export`` (the generation requests an audit would make, for a system that is
audited from recorded outputs: ``--model outputs:FILE``) and ``lm-audit rescore`` (a finished run's
recorded outputs scored again, without the model)."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from audit.cli._gate import print_gate
from audit.cli._group import EXIT_POLICY, cli, shown
from audit.cli._options import (
    parse_datasets,
    parse_params,
    parse_scorers,
    scorer_options,
    split_list,
)
from audit.errors import BadInput
from probes import DEPTHS


@cli.group()
def prompts() -> None:
    """The requests an audit makes, for auditing a system from recorded outputs."""


@prompts.command("export")
@click.option("--areas", multiple=True, help="Risk areas, e.g. I,III.")
@click.option("--risks", multiple=True, help="Risks, by id or slug.")
@click.option("--probes", multiple=True, help="Probe ids (overrides --areas/--risks).")
@click.option("--depth", type=click.Choice(DEPTHS), default="standard", show_default=True)
@click.option("--limit", type=int, help="At most N items per probe.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-chat-template", is_flag=True, help="Export prompts as raw text (as for a model without a chat "
                                                        "template); the audit of the outputs must say the same.")
@click.option("--dataset", "datasets", multiple=True, help="User dataset file: PROBE_ID=PATH.")
@click.option("--param", "params", multiple=True, help="Probe parameter: PROBE_ID:KEY=VALUE.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Write here instead of standard output.")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def export(areas: tuple[str, ...], risks: tuple[str, ...], probes: tuple[str, ...], depth: str, limit: int | None,
           seed: int, no_chat_template: bool, datasets: tuple[str, ...], params: tuple[str, ...],
           out_file: Path | None, debug: bool) -> None:
    """Write every generation request an audit with these settings would make, one JSON line each:
    id, the probes that ask it, messages (or prompt), params. Fill in {"id", "output"} lines and audit
    them with `lm-audit run --model outputs:FILE` and the same settings. Log-likelihood requests need
    the model itself: those probes are not evaluated from recorded outputs."""
    from audit.config import AuditConfig
    from audit.models import RecordingBackend
    from audit.offline import enforce_offline
    from audit.runner import run_audit

    enforce_offline(False)
    if debug:
        logging.getLogger().setLevel(logging.DEBUG)
    os.environ.setdefault("TQDM_DISABLE", "1")
    selected = split_list(probes)
    recorder = RecordingBackend(chat_template=not no_chat_template)

    def notify(message: str) -> None:
        if message.startswith("running "):
            recorder.current_probe = message.split(" ", 1)[1]

    with tempfile.TemporaryDirectory(prefix="lm-audit-export-") as tmp:
        values: dict[str, Any] = {
            "model": "prompts-export", "areas": split_list(areas), "risks": split_list(risks), "probes": selected,
            "depth": depth, "limit": limit, "seed": seed, "chat_template": not no_chat_template,
            "datasets": parse_datasets(datasets, selected), "probe_params": parse_params(params),
            "out": str(Path(tmp) / "run"), "show_pii": True,
        }
        config = AuditConfig.model_validate(values)
        run_audit(config, model=recorder, notify=notify)
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in recorder.requests.values()]
    if out_file is not None:
        try:
            out_file.write_text("".join(lines), encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"{out_file}: cannot write ({exc.strerror or exc})", setting="out") from None
        click.echo(f"{len(lines)} requests written to {shown(out_file)}", err=True)
    else:
        sys.stdout.write("".join(lines))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@scorer_options
@click.option("--policy", help="Release policy YAML (or 'default'): exit 1 when a blocking check fails.")
@click.option("--junit", type=click.Path(path_type=Path), help="Write the policy checks as JUnit XML here.")
@click.option("--out", type=click.Path(path_type=Path), help="New run directory (default runs/<model>-<timestamp>).")
@click.option("--quiet", is_flag=True, help="No progress messages.")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def rescore(run_dir: Path, scorer_choices: tuple[str, ...], scorer_labels: tuple[str, ...],
            scorer_threshold: tuple[str, ...], policy: str | None, junit: Path | None, out: Path | None,
            quiet: bool, debug: bool) -> None:
    """Score a finished run's recorded outputs again, without the model: new scorers (--scorer), new
    statistics (this version's probes) or a new policy. Writes a new run directory whose report says
    which run it re-scored; the old run is only read."""
    from audit.config import AuditConfig, merge_settings
    from audit.models import ReplayBackend
    from audit.offline import enforce_offline
    from audit.runner import run_audit
    from probes import Capabilities
    from reports import load_report

    enforce_offline(False)
    if debug:
        logging.getLogger().setLevel(logging.DEBUG)
    if quiet:
        os.environ.setdefault("TQDM_DISABLE", "1")
    if not (run_dir / "report.json").is_file():
        raise BadInput(f"{run_dir}: no report.json: not a run directory", setting="run_dir")
    old = load_report(run_dir / "report.json")
    values = {k: v for k, v in old.config.items() if k not in ("out", "force", "resume", "policy", "junit")}
    scorers = parse_scorers(scorer_choices, scorer_labels, scorer_threshold)
    if scorers:
        values = merge_settings(values, {"scorers": scorers})
    values.update(out=None if out is None else str(out), policy=policy, junit=None if junit is None else str(junit))
    config = AuditConfig.model_validate(values)
    caps = Capabilities(chat_template=old.model.chat_template, loglikelihood=old.model.supports_loglikelihood)
    backend = ReplayBackend(run_dir, old.model, caps)

    def notify(message: str) -> None:
        if not quiet:
            click.echo(f"lm-audit: {shown(message)}", err=True)

    try:
        report = run_audit(config, model=backend, notify=notify,
                           rescore_of=f"{old.run.id} ({run_dir.resolve()})")
    finally:
        backend.close()
    click.echo(f"overall: {report.summary.status.value}  (re-score of {shown(old.run.id)})")
    for p in report.probes:
        if p.status.value == "not_evaluated" and p.notes:
            click.echo(f"  probe {shown(p.id)}: {shown(p.notes[0])}", err=True)
    click.echo(f"report: {shown(Path(report.run.directory) / 'report.json')}")
    click.echo(f"report: {shown(Path(report.run.directory) / 'report.md')}")
    click.echo(f"report: {shown(Path(report.run.directory) / 'report.html')}")
    if report.policy is not None:
        print_gate(report.policy)
        if report.policy.exit_code:
            raise click.exceptions.Exit(EXIT_POLICY)
