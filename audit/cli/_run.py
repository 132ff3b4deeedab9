"""``lm-audit run``: flags (over an optional ``--config`` file) to an ``AuditConfig``, then the audit.

The settings' layering and the resume rules live in ``audit.config``; this module only turns
flags into settings, runs, and prints the outcome.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from audit.cli._gate import print_gate
from audit.cli._group import EXIT_POLICY, cli, one_line, shown
from audit.cli._options import (
    parse_datasets,
    parse_params,
    parse_scorers,
    scorer_options,
    split_list,
)
from probes import DEPTHS, Progress


class _Bar(Progress):
    """A tqdm progress bar per probe (ETA included); silent with --quiet."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.quiet, self.bar = label, quiet, None

    def start(self, total: int, label: str = "") -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if self.bar is not None:
            self.bar.close()
        self.bar = tqdm(total=total, desc=self.label, unit=label or "it", file=sys.stderr, leave=True,
                        dynamic_ncols=True)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if self.bar.n >= (self.bar.total or 0):
                self.bar.close()
                self.bar = None


@cli.command()
@click.option("--model", "model", help="Built-in alias (smollm2-135m), checkpoint directory, .gguf file, or hub id.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file of run settings; flags win.")
@click.option("--taxonomy", type=click.Path(path_type=Path), help="Taxonomy YAML (default: bundled Weidinger et al.).")
@click.option("--areas", multiple=True, help="Risk areas to audit, e.g. I,III.")
@click.option("--risks", multiple=True, help="Risks to audit, by id or slug, e.g. III.1.")
@click.option("--probes", multiple=True, help="Probe ids to run (overrides --areas/--risks).")
@click.option("--limit", type=int, help="At most N items per probe: a smoke run, never evidence for a release.")
@click.option("--depth", type=click.Choice(DEPTHS),
              help="Items per probe: quick (a third), standard (default), thorough (every project item; the power "
                   "each probe states in its limitations).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Run directory (default runs/<model>-<timestamp>): new or empty; an earlier run's only with "
                   "--force or --resume.")
@click.option("--force", is_flag=True, default=None,
              help="Start over in an --out that holds an earlier run: its report, samples and cache are removed "
                   "(nothing else; never a directory that is not a run's or looks like a model checkpoint).")
@click.option("--seed", type=int, help="Seed for sampling and bootstrap intervals (default 0).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), help="Model dtype.")
@click.option("--device", help="auto (cuda when present, else cpu), cpu, cuda, cuda:1 ...")
@click.option("--batch-size", type=int, help="Rows per forward pass (default: planned from the model's shape "
                                              "and free memory; on a CPU capped at 64 up to 500M parameters).")
@click.option("--no-chat-template", is_flag=True, default=None, help="Send prompts as raw text.")
@click.option("--system-prompt", metavar="TEXT",
              help="Audit the model as deployed: this system prompt becomes the first message of every conversation "
                   "a probe sends (raw-text prompts are left alone). Recorded verbatim in the report with its sha256 "
                   "(so a report published as a CI job summary shows it); never printed to the console.")
@click.option("--system-prompt-file", type=click.Path(path_type=Path), metavar="PATH",
              help="Read the system prompt from this UTF-8 file (instead of --system-prompt).")
@click.option("--no-model-cache", is_flag=True, default=None,
              help="Read a GGUF model from the file every time instead of from its converted copy in the local "
                   "model cache ($LM_AUDIT_CACHE_DIR, else ~/.cache/lm-risk-audit).")
@click.option("--dataset", "datasets", multiple=True, help="User dataset file: PROBE_ID=PATH (or PATH for one probe).")
@click.option("--probe-file", "probe_files", multiple=True, type=click.Path(path_type=Path), metavar="SPEC",
              help="A probe written as data (YAML, see `lm-audit probes new`), run in addition to the taxonomy's "
                   "probes (repeatable).")
@click.option("--probe-dir", "probe_dirs", multiple=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Run every probe spec (*.yaml, *.yml) in DIR in addition to the taxonomy's probes (repeatable).")
@click.option("--param", "params", multiple=True, help="Probe parameter: PROBE_ID:KEY=VALUE.")
@click.option("--allow-download", is_flag=True, default=None, help="Allow fetching a hub model (off: never).")
@click.option("--trust-remote-code", is_flag=True, default=None, help="Run model code shipped with a checkpoint.")
@click.option("--show-pii", is_flag=True, default=None, help="Do not redact personal data in reports.")
@scorer_options
@click.option("--pii-nlp-model", help="spaCy pipeline for names/places in PII detection: auto (best installed), "
                                      "a package name, or none (patterns only).")
@click.option("--pii-entities", multiple=True, help="PII/secret entity types to detect and redact, e.g. EMAIL_ADDRESS.")
@click.option("--pii-threshold", type=float, help="presidio score at which a finding counts (default 0.4).")
@click.option("--served-model", help="With --model openai:URL: the model name on the server (needed when it serves "
                                     "several).")
@click.option("--api-key-env", metavar="VAR", help="With --model openai:URL: environment variable holding the API key "
                                                    "(the key is never written anywhere).")
@click.option("--chat/--completions", "api", default=None,
              help="With --model openai:URL: force the chat or the completions API (default: chat when the server "
                   "offers it; log-likelihood probes need --completions).")
@click.option("--concurrency", type=int, help="With --model openai:URL: requests in flight (default 4).")
@click.option("--request-timeout", type=float, help="With --model openai:URL: seconds per request (default 120).")
@click.option("--retries", type=int, help="With --model openai:URL: retries on 429, 5xx and connection errors "
                                          "(default 5, with exponential back-off).")
@click.option("--canaries", type=click.Path(path_type=Path),
              help="JSONL of secrets known to be in the training data (prefix, secret) for pii.canary_extraction.")
@click.option("--corpus", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="Training-corpus file or directory (text, JSONL, optionally .gz; repeatable): "
                   "contamination.membership checks the audit's items against it (13-gram overlap) instead of by "
                   "the model's likelihoods.")
@click.option("--resume", type=click.Path(path_type=Path), metavar="RUN_DIR",
              help="Continue an interrupted run in RUN_DIR with its recorded settings; finished work comes from its "
                   "cache. Only --policy, --junit, --quiet and --debug may change; --trust-remote-code, "
                   "--allow-download and --show-pii must be given again if the run had them.")
@click.option("--policy", help="Release policy YAML (or 'default'): exit 1 when a blocking check fails.")
@click.option("--junit", type=click.Path(path_type=Path), help="Write the policy checks as JUnit XML here.")
@click.option("--quiet", is_flag=True, help="No progress bars (for CI).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def run(config_file: Path | None, quiet: bool, debug: bool, scorer_choices: tuple[str, ...],
        scorer_labels: tuple[str, ...], scorer_threshold: tuple[str, ...], pii_nlp_model: str | None,
        pii_entities: tuple[str, ...], pii_threshold: float | None, **flags: Any) -> None:
    """Run an audit and write report.json, report.md, report.html and samples/ to the run directory."""
    from audit.config import layered, load_config_file

    file_values = load_config_file(config_file) if config_file else {}
    for key in ("areas", "risks", "probes"):
        flags[key] = split_list(flags[key]) or None
    selected = flags["probes"] or file_values.get("probes") or []
    flags["datasets"] = parse_datasets(flags["datasets"], selected) or None
    flags["corpus"] = list(flags["corpus"]) or None
    flags["probe_files"] = list(flags["probe_files"]) or None
    flags["probe_dirs"] = list(flags["probe_dirs"]) or None
    flags["probe_params"] = parse_params(flags.pop("params")) or None
    flags["chat_template"] = False if flags.pop("no_chat_template") else None
    flags["model_cache"] = False if flags.pop("no_model_cache") else None
    pii = {"nlp_model": pii_nlp_model, "entities": split_list(pii_entities) or None, "threshold": pii_threshold}
    flags["pii"] = {k: v for k, v in pii.items() if v is not None} or None
    flags["scorers"] = parse_scorers(scorer_choices, scorer_labels, scorer_threshold) or None
    api = flags.pop("api")
    endpoint = {"served_model": flags.pop("served_model"), "api_key_env": flags.pop("api_key_env"),
                "api": None if api is None else ("chat" if api else "completions"),
                "concurrency": flags.pop("concurrency"), "timeout_s": flags.pop("request_timeout"),
                "retries": flags.pop("retries")}
    flags["endpoint"] = {k: v for k, v in endpoint.items() if v is not None} or None
    config = layered(file_values, flags, source=config_file)

    from audit.offline import enforce_offline

    enforce_offline(config.allow_download)
    if debug:
        logging.getLogger().setLevel(logging.DEBUG)
    if quiet:
        os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' own load bars too
    from audit.runner import run_audit

    def notify(message: str) -> None:
        if not quiet:
            click.echo(f"lm-audit: {shown(message)}", err=True)

    report = run_audit(config, progress=lambda pid: _Bar(pid, quiet), notify=notify)
    run_dir = Path(report.run.directory)
    limit = report.config.get("limit")
    smoke = f"  (smoke run: --limit {limit}; not evidence for a release)" if report.run.smoke else ""
    click.echo(f"overall: {report.summary.status.value}{smoke}  ({report.run.duration_s:.1f}s)")
    for area in report.areas:
        click.echo(f"  {shown(area.id):<4} {area.status.value:<14} {shown(area.name)}")
    for p in report.probes:
        if p.errors:
            click.echo(f"  probe {shown(p.id)} errored: {one_line(p.errors[0])}", err=True)
    click.echo(f"report: {shown(run_dir / 'report.json')}")
    click.echo(f"report: {shown(run_dir / 'report.md')}")
    click.echo(f"report: {shown(run_dir / 'report.html')}")
    if report.policy is not None:
        print_gate(report.policy)
        if report.policy.exit_code:
            raise click.exceptions.Exit(EXIT_POLICY)
