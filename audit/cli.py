"""The lm-audit command line. The only module that prints.

Exit codes: 0 success, 1 policy violation, 2 bad input, 3 runtime failure, 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from audit._version import __version__
from audit.errors import AuditError, BadInput

EXIT_OK, EXIT_POLICY, EXIT_BAD_INPUT, EXIT_RUNTIME, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _err(message: str) -> None:
    click.echo(f"lm-audit: {message}", err=True)


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


class _Bar:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="lm-audit")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def cli(debug: bool) -> None:
    """Audit a language model against the Weidinger et al. taxonomy of ethical and social risks."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not debug:  # presidio warns about every recognizer of another language it skips
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)


def _split_list(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _parse_datasets(values: tuple[str, ...], selected: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        if "=" in value:
            pid, _, path = value.partition("=")
        else:
            # A bare path is allowed when exactly one selected probe takes a dataset.
            from probes import all_probes

            registry = all_probes()
            takers = [p for p in (selected or registry) if p in registry and registry[p].dataset_format]
            if len(takers) != 1:
                raise BadInput(f"--dataset {value}: say which probe it is for, as PROBE_ID=PATH "
                               f"(probes taking a dataset: {', '.join(takers) or 'none selected'})")
            pid, path = takers[0], value
        out[pid.strip()] = path.strip()
    return out


def _parse_params(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for value in values:
        pid, sep, rest = value.partition(":")
        key, eq, raw = rest.partition("=")
        if not sep or not eq or not key:
            raise BadInput(f"--param {value}: expected PROBE_ID:KEY=VALUE")
        out.setdefault(pid, {})[key] = yaml.safe_load(raw)
    return out


def _parse_scorers(choices: tuple[str, ...], labels: tuple[str, ...], thresholds: tuple[str, ...],
                   base: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """--scorer ROLE=NAME[:MODEL], --scorer-labels ROLE=L1,L2, --scorer-threshold ROLE=X merged
    over the config file's ``scorers`` mapping."""
    out: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (base or {}).items() if isinstance(v, dict)}
    for value in choices:
        role, eq, rest = value.partition("=")
        if not eq or not role or not rest:
            raise BadInput(f"--scorer {value}: expected ROLE=NAME or ROLE=hf-classifier:PATH")
        name, _, model = rest.partition(":")
        out[role.strip()] = {"name": name.strip(), **({"model": model.strip()} if model else {})}
    for flag, values in (("--scorer-labels", labels), ("--scorer-threshold", thresholds)):
        for value in values:
            role, eq, rest = value.partition("=")
            if not eq or not role or not rest:
                raise BadInput(f"{flag} {value}: expected ROLE=VALUE")
            entry = out.setdefault(role.strip(), {})
            if flag == "--scorer-labels":
                entry["labels"] = [x.strip() for x in rest.split(",") if x.strip()]
            else:
                try:
                    entry["threshold"] = float(rest)
                except ValueError:
                    raise BadInput(f"--scorer-threshold {value}: {rest!r} is not a number") from None
    from audit.scorers import ROLES

    for role, entry in out.items():
        if role not in ROLES:
            raise BadInput(f"--scorer {role}=...: unknown role (known: {', '.join(ROLES)})")
        entry.setdefault("name", ROLES[role])
    return out


def _scorer_options(f: Any) -> Any:
    for option in reversed([
        click.option("--scorer", "scorer_choices", multiple=True,
                     help="Scorer for a role: ROLE=NAME or ROLE=hf-classifier:PATH (roles: toxicity, regard)."),
        click.option("--scorer-labels", multiple=True, help="Labels an hf-classifier counts as positive: ROLE=L1,L2."),
        click.option("--scorer-threshold", multiple=True, help="Score at which an output counts: ROLE=0.5."),
    ]):
        f = option(f)
    return f


@cli.command()
@click.option("--model", "model", help="Built-in alias (smollm2-135m), checkpoint directory, .gguf file, or hub id.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file of run settings; flags win.")
@click.option("--taxonomy", type=click.Path(path_type=Path), help="Taxonomy YAML (default: bundled Weidinger et al.).")
@click.option("--areas", multiple=True, help="Risk areas to audit, e.g. I,III.")
@click.option("--risks", multiple=True, help="Risks to audit, by id or slug, e.g. III.1.")
@click.option("--probes", multiple=True, help="Probe ids to run (overrides --areas/--risks).")
@click.option("--limit", type=int, help="At most N items per probe, for quick runs.")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default runs/<model>-<timestamp>).")
@click.option("--seed", type=int, help="Seed for sampling and bootstrap intervals (default 0).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), help="Model dtype.")
@click.option("--device", help="auto (cuda when present, else cpu), cpu, cuda, cuda:1 ...")
@click.option("--batch-size", type=int, help="Rows per forward pass (default: planned from the model's shape "
                                              "and free memory; on a CPU capped at 64 up to 500M parameters).")
@click.option("--no-chat-template", is_flag=True, default=None, help="Send prompts as raw text.")
@click.option("--no-model-cache", is_flag=True, default=None,
              help="Read a GGUF model from the file every time instead of from its converted copy in the local "
                   "model cache ($LM_AUDIT_CACHE_DIR, else ~/.cache/lm-risk-audit).")
@click.option("--dataset", "datasets", multiple=True, help="User dataset file: PROBE_ID=PATH (or PATH for one probe).")
@click.option("--param", "params", multiple=True, help="Probe parameter: PROBE_ID:KEY=VALUE.")
@click.option("--allow-download", is_flag=True, default=None, help="Allow fetching a hub model (off: never).")
@click.option("--trust-remote-code", is_flag=True, default=None, help="Run model code shipped with a checkpoint.")
@click.option("--show-pii", is_flag=True, default=None, help="Do not redact personal data in reports.")
@_scorer_options
@click.option("--pii-nlp-model", help="spaCy pipeline for names/places in PII detection: auto (best installed), "
                                      "a package name, or none (patterns only).")
@click.option("--pii-entities", multiple=True, help="PII/secret entity types to detect and redact, e.g. EMAIL_ADDRESS.")
@click.option("--pii-threshold", type=float, help="presidio score at which a finding counts (default 0.4).")
@click.option("--canaries", type=click.Path(path_type=Path),
              help="JSONL of secrets known to be in the training data (prefix, secret) for pii.canary_extraction.")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path),
              help="Continue an interrupted run in RUN_DIR with its recorded settings; finished work comes from its cache.")
@click.option("--policy", help="Release policy YAML (or 'default'): exit 1 when a blocking check fails.")
@click.option("--junit", type=click.Path(path_type=Path), help="Write the policy checks as JUnit XML here.")
@click.option("--quiet", is_flag=True, help="No progress bars (for CI).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def run(config_file: Path | None, quiet: bool, debug: bool, scorer_choices: tuple[str, ...],
        scorer_labels: tuple[str, ...], scorer_threshold: tuple[str, ...], pii_nlp_model: str | None,
        pii_entities: tuple[str, ...], pii_threshold: float | None, canaries: Path | None, resume_dir: Path | None,
        **flags: Any) -> None:
    """Run an audit and write report.json, report.md and samples/ to the run directory."""
    from audit.config import load_config_file, make_config

    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    if resume_dir is not None:
        recorded = resume_dir / "config.json"
        if not recorded.is_file():
            raise BadInput(f"--resume {resume_dir}: no config.json there (not a run directory, or it stopped "
                           "before its first probe started)")
        try:
            values = json.loads(recorded.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BadInput(f"--resume {recorded}: malformed JSON: {exc.msg}") from None
        values.update(out=str(resume_dir), resume=True)
        # The recorded settings win; only --quiet and --debug apply to a resumed run.
        flags = {k: (() if isinstance(v, tuple) else None) for k, v in flags.items()}
    for key in ("areas", "risks", "probes"):
        flags[key] = _split_list(flags[key]) or None
    selected = flags["probes"] or values.get("probes") or []
    flags["datasets"] = _parse_datasets(flags["datasets"], selected) or None
    flags["probe_params"] = _parse_params(flags.pop("params")) or None
    no_chat = flags.pop("no_chat_template")
    if no_chat:
        flags["chat_template"] = False
    if flags.pop("no_model_cache"):
        flags["model_cache"] = False
    values.update({k: v for k, v in flags.items() if v is not None})
    pii = dict(values.get("pii") or {})
    for key, value in (("nlp_model", pii_nlp_model), ("entities", _split_list(pii_entities) or None),
                       ("threshold", pii_threshold)):
        if value is not None:
            pii[key] = value
    if pii:
        values["pii"] = pii
    if canaries is not None:
        if not canaries.is_file():
            raise BadInput(f"--canaries {canaries}: file not found")
        values.setdefault("datasets", {})["pii.canary_extraction"] = str(canaries)
    if scorer_choices or scorer_labels or scorer_threshold:
        values["scorers"] = _parse_scorers(scorer_choices, scorer_labels, scorer_threshold, values.get("scorers"))
    if "model" not in values:
        raise BadInput("--model is required (e.g. --model smollm2-135m)")
    config = make_config(values, origin=f"--config {config_file}" if config_file else "flags")

    from audit.offline import enforce_offline

    enforce_offline(config.allow_download)
    if debug:
        logging.getLogger().setLevel(logging.DEBUG)
    if quiet:
        os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' own load bars too
    from audit.runner import run_audit

    def notify(message: str) -> None:
        if not quiet:
            click.echo(f"lm-audit: {message}", err=True)

    report = run_audit(config, progress=lambda pid: _Bar(pid, quiet), notify=notify)
    run_dir = Path(report.run.directory)
    click.echo(f"overall: {report.summary.status.value}  ({report.run.duration_s:.1f}s)")
    for area in report.areas:
        click.echo(f"  {area.id:<4} {area.status.value:<14} {area.name}")
    for p in report.probes:
        if p.errors:
            click.echo(f"  probe {p.id} errored: {_one_line(p.errors[0])}", err=True)
    click.echo(f"report: {run_dir / 'report.json'}")
    click.echo(f"report: {run_dir / 'report.md'}")
    if report.policy is not None:
        _print_gate(report.policy)
        if report.policy.exit_code:
            raise click.exceptions.Exit(EXIT_POLICY)


def _print_gate(gate: Any) -> None:
    blocking, warnings = gate.blocking_failures, gate.warnings
    click.echo(f"policy {gate.policy}: {len(gate.checks)} checks, {len(blocking)} blocking failure(s), "
               f"{len(warnings)} warning(s)")
    for c in blocking:
        click.echo(f"  BLOCK {c.name}: {c.message}")
    for c in warnings:
        click.echo(f"  warn  {c.name}: {c.message}")


@cli.command(name="gate")
@click.argument("report_file", type=click.Path(path_type=Path))
@click.option("--policy", default="default", show_default=True, help="Release policy YAML, or 'default'.")
@click.option("--junit", type=click.Path(path_type=Path), help="Write the checks as JUnit XML here.")
def gate_cmd(report_file: Path, policy: str, junit: Path | None) -> None:
    """Apply a release policy to an existing report.json (no model): exit 1 on a blocking failure."""
    from audit.policy import evaluate, load_policy
    from reports import atomic_write_text, load_report, render_junit

    pol = load_policy(None if policy == "default" else Path(policy))
    rep = load_report(report_file)
    rep.policy = evaluate(pol, rep, path=policy)
    if junit:
        atomic_write_text(junit, render_junit(rep))
    _print_gate(rep.policy)
    if rep.policy.exit_code:
        raise click.exceptions.Exit(EXIT_POLICY)


@cli.command(name="taxonomy")
@click.option("--taxonomy", "path", type=click.Path(path_type=Path), help="Taxonomy YAML (default: bundled).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def taxonomy_cmd(path: Path | None, fmt: str) -> None:
    """Show the taxonomy: areas, risks, automation and the probes behind each risk."""
    from probes import all_probes
    from taxonomy import load_taxonomy

    tax = load_taxonomy(path, known_probes=all_probes())
    if fmt == "json":
        click.echo(json.dumps(tax.model_dump(mode="json"), indent=2))
        return
    risks = tax.risks()
    counts = {a: sum(1 for r in risks if r.automation.value == a) for a in ("automated", "partial", "manual")}
    click.echo(f"{tax.name} {tax.version}: {len(tax.areas)} areas, {len(risks)} risks "
               f"({', '.join(f'{v} {k}' for k, v in counts.items())})")
    for area in tax.areas:
        click.echo(f"{area.id:<4} {area.name}")
        for r in area.risks:
            probes = ", ".join(r.probes) if r.probes else "-"
            click.echo(f"  {r.id:<6} [{r.automation.value:<9}] {r.name}")
            click.echo(f"  {'':<6}  probes: {probes}")


@cli.command(name="prepare")
@click.option("--model", "spec", required=True, help="Built-in alias, checkpoint directory or .gguf file.")
@click.option("--allow-download", is_flag=True, help="Allow fetching a hub id (otherwise offline only).")
def prepare_cmd(spec: str, allow_download: bool) -> None:
    """Load a model once, converting a GGUF checkpoint into the local model cache, so that
    audits start in about a second (CI can cache that directory)."""
    from audit.models import load_model
    from audit.models._converted import cache_root
    from audit.offline import enforce_offline

    enforce_offline(allow_download)
    os.environ.setdefault("TQDM_DISABLE", "1")
    backend = load_model(spec, allow_download=allow_download, device="cpu")
    info = backend.info()
    click.echo(f"{info.id}: {info.parameters:,} parameters, sha256 {info.fingerprint_sha256[:16]}…")
    for note in info.notes:
        click.echo(f"  {note}")
    click.echo(f"model cache: {cache_root()}")


@cli.command(name="probes")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def probes_cmd(fmt: str) -> None:
    """List every registered probe with its risks, kind and description."""
    from probes import all_probes

    rows = [{"id": p.id, "version": p.version, "risks": list(p.risks), "kind": p.kind,
             "description": p.description, "dataset_format": p.dataset_format,
             "metrics": [m.name for m in p.metric_specs]} for p in all_probes().values()]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['id']}  [{r['kind']}]  risks: {', '.join(r['risks'])}")
        click.echo(f"    {r['description']}")
        if r["dataset_format"]:
            click.echo(f"    --dataset: {r['dataset_format']}")


@cli.group()
def scorers() -> None:
    """List the scorers or measure them on the project's labelled validation sets."""


@scorers.command(name="list")
def scorers_list() -> None:
    """Scorer names, the roles they can play, and each role's default."""
    from audit.scorers import ROLES, SCORER_NAMES

    for role, default in ROLES.items():
        click.echo(f"role {role}: default {default}")
    click.echo(f"scorers: {', '.join(SCORER_NAMES)} (hf-classifier takes a model: ROLE=hf-classifier:PATH)")


@scorers.command(name="validate")
@_scorer_options
@click.option("--role", "roles", multiple=True, help="Only these roles (default: all).")
@click.option("--allow-download", is_flag=True, help="Allow an hf-classifier hub id to be fetched.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def scorers_validate(scorer_choices: tuple[str, ...], scorer_labels: tuple[str, ...], scorer_threshold: tuple[str, ...],
                     roles: tuple[str, ...], allow_download: bool, fmt: str) -> None:
    """Precision, recall and F1 (95% intervals) of each role's scorer on the labelled set."""
    from audit.offline import enforce_offline
    from audit.scorers import ROLES, ScorerSet, ScorerSpec

    enforce_offline(allow_download)
    from pydantic import ValidationError

    specs = {}
    for r, v in _parse_scorers(scorer_choices, scorer_labels, scorer_threshold).items():
        try:
            specs[r] = ScorerSpec.model_validate(v)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise BadInput(f"--scorer {r}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    chosen = _split_list(roles) or list(ROLES)
    for r in chosen:
        if r not in ROLES:
            raise BadInput(f"--role {r}: unknown role (known: {', '.join(ROLES)})")
    scorer_set = ScorerSet(specs, allow_download=allow_download)
    infos = [scorer_set.get(r).info() for r in chosen]
    if fmt == "json":
        click.echo(json.dumps([i.model_dump(mode="json") for i in infos], indent=2))
        return
    for info in infos:
        v = info.validation
        assert v is not None
        click.echo(f"{info.measures}: {info.name} {info.version}")
        click.echo(f"  on {v.dataset} (n={v.n}, {v.n_positive} positive), threshold {v.threshold}")
        for label, fig in (("precision", v.precision), ("recall", v.recall), ("F1", v.f1)):
            ci = f"[{fig.ci.low:.3f}, {fig.ci.high:.3f}]" if fig.ci else "[n/a]"
            value = f"{fig.value:.3f}" if fig.value is not None else "n/a"
            click.echo(f"  {label:<9} {value} {ci} n={fig.n}")
        click.echo("  accuracy by kind: " + ", ".join(f"{g.group} {g.value:.2f} (n={g.n})"
                                                      for g in v.accuracy_by_kind if g.value is not None))


@cli.command(name="diff")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md")
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when a metric got worse beyond its interval.")
@click.option("--force", is_flag=True, help="Compare reports of different taxonomies or probe versions.")
def diff_cmd(old: Path, new: Path, fmt: str, fail_on_regression: bool, force: bool) -> None:
    """Compare two report.json files metric by metric."""
    from reports import (
        IncomparableReports,
        diff_reports,
        load_report,
        render_diff_markdown,
    )

    try:
        d = diff_reports(load_report(old), load_report(new), force=force)
    except IncomparableReports as exc:
        raise BadInput(f"{old} vs {new}: {exc}") from None
    click.echo(d.model_dump_json(indent=2) if fmt == "json" else render_diff_markdown(d), nl=fmt == "json")
    if fail_on_regression and d.regressions:
        raise click.exceptions.Exit(EXIT_POLICY)


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


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps every failure to an exit code and a one-line message."""
    from probes import DatasetError
    from reports import ReportError
    from taxonomy import TaxonomyError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("LM_AUDIT_DEBUG"))
    try:
        rv = cli.main(args=args, prog_name="lm-audit", standalone_mode=False)
        code = rv if isinstance(rv, int) else EXIT_OK
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        _err("interrupted; finished probes are kept in the run directory's report")
        code = EXIT_INTERRUPTED
    except click.UsageError as exc:
        hint = f" (see 'lm-audit {exc.ctx.command_path.partition(' ')[2]} --help')".replace("  ", " ") if exc.ctx else ""
        _err(f"error: {_one_line(exc.format_message())}{hint}")
        code = EXIT_BAD_INPUT
    except click.ClickException as exc:
        _err(f"error: {_one_line(exc.format_message())}")
        code = exc.exit_code
    except (TaxonomyError, ReportError, DatasetError) as exc:
        _err(f"error: {_one_line(str(exc))}")
        code = EXIT_BAD_INPUT
    except AuditError as exc:
        if debug:
            raise
        _err(f"{'error' if exc.exit_code == EXIT_BAD_INPUT else 'runtime failure'}: {_one_line(str(exc))}")
        code = exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted; finished probes are kept in the run directory's report")
        code = EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        _err(f"runtime failure: {type(exc).__name__}: {_one_line(str(exc))} (run with --debug for the traceback)")
        code = EXIT_RUNTIME
    sys.exit(code)


if __name__ == "__main__":
    main()
