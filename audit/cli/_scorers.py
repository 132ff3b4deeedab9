"""``lm-audit scorers list`` and ``lm-audit scorers validate`` (precision / recall on labelled sets)."""

from __future__ import annotations

import json

import click

from audit.cli._group import cli
from audit.cli._options import parse_scorers, scorer_options, split_list
from audit.errors import BadInput


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
@scorer_options
@click.option("--role", "roles", multiple=True, help="Only these roles (default: all).")
@click.option("--allow-download", is_flag=True, help="Allow an hf-classifier hub id to be fetched.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def scorers_validate(scorer_choices: tuple[str, ...], scorer_labels: tuple[str, ...], scorer_threshold: tuple[str, ...],
                     roles: tuple[str, ...], allow_download: bool, fmt: str) -> None:
    """Precision, recall and F1 (95% intervals) of each role's scorer on the labelled set."""
    from pydantic import ValidationError

    from audit.config import merge_settings
    from audit.offline import enforce_offline
    from audit.scorers import ROLES, ScorerSet, ScorerSpec
    from taxonomy import validation_message

    enforce_offline(allow_download)
    chosen_specs = merge_settings({}, {"scorers": parse_scorers(scorer_choices, scorer_labels, scorer_threshold)})
    specs = {}
    for r, v in chosen_specs["scorers"].items():
        try:
            specs[r] = ScorerSpec.model_validate(v)
        except ValidationError as exc:
            raise BadInput(f"{r}: {validation_message(exc)}", setting="scorers") from None
    chosen = split_list(roles) or list(ROLES)
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
