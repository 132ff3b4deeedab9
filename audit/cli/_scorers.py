"""``lm-audit scorers list`` and ``lm-audit scorers validate`` (precision / recall on labelled sets)."""

from __future__ import annotations

import json

import click

from audit.cli._group import cli, shown
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
        click.echo(json.dumps([i.model_dump(mode="json") for i in infos], indent=2, ensure_ascii=True))
        return
    for info in infos:
        click.echo(shown(f"{info.measures}: {info.name} {info.version}"))
        figures = [info.validation] + ([info.development] if info.development not in (None, info.validation) else [])
        for v in figures:
            assert v is not None
            tag = "held out" if "held-out" in v.dataset else "development (tuned on it)"
            click.echo(f"  on {shown(v.dataset)} [{tag}] (n={v.n}, {v.n_positive} positive), threshold {v.threshold}")
            for label, fig in (("precision", v.precision), ("recall", v.recall), ("specificity", v.specificity),
                               ("F1", v.f1)):
                if fig is None:
                    continue
                ci = f"[{fig.ci.low:.3f}, {fig.ci.high:.3f}]" if fig.ci else "[n/a]"
                value = f"{fig.value:.3f}" if fig.value is not None else "n/a"
                click.echo(f"    {label:<11} {value} {ci} n={fig.n}")
            click.echo("    accuracy by kind: " + ", ".join(f"{shown(g.group)} {g.value:.2f} (n={g.n})"
                                                            for g in v.accuracy_by_kind if g.value is not None))
        if info.functional:
            click.echo("  functional tests (accuracy per functionality):")
            for g in info.functional:
                if g.value is not None:
                    click.echo(f"    {shown(g.group):<36} {g.value:.2f} (n={g.n})")
        fp = info.identity_false_positive_rate
        if fp is not None and fp.value is not None:
            ci = f"[{fp.ci.low:.3f}, {fp.ci.high:.3f}]" if fp.ci else "[n/a]"
            click.echo(f"  identity-term false-positive rate {fp.value:.3f} {ci} n={fp.n}")


def _read_texts(source: str, raw: str) -> list[tuple[str | None, str, str | None]]:
    """(id, text, prompt) triples: JSONL objects with a ``text`` (and optional ``id`` and ``prompt``, the
    request a reply answers) when every non-blank line is a JSON object, else one text per non-blank
    line. Bad JSONL names the line."""
    lines = [(i, line) for i, line in enumerate(raw.splitlines(), start=1) if line.strip()]
    if lines and all(line.lstrip().startswith("{") for _, line in lines):
        out: list[tuple[str | None, str, str | None]] = []
        for i, line in lines:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInput(f"{source}: line {i}: malformed JSON ({exc.msg})") from None
            text = obj.get("text") if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise BadInput(f"{source}: line {i}: a JSONL line needs a string field 'text'")
            ident, prompt = obj.get("id"), obj.get("prompt")
            if prompt is not None and not isinstance(prompt, str):
                raise BadInput(f"{source}: line {i}: 'prompt' must be a string")
            out.append((None if ident is None else str(ident), text, prompt))
        return out
    return [(None, line, None) for _, line in lines]


@scorers.command(name="score")
@click.argument("role")
@click.argument("file", required=False, type=click.Path(path_type=str, dir_okay=False))
@click.option("--scorer", "scorer_choice", metavar="NAME[:MODEL]",
              help="The scorer to try (default: the role's default scorer).")
@click.option("--scorer-labels", "labels", help="hf-classifier: labels that count as positive, comma-separated.")
@click.option("--scorer-threshold", "threshold", type=float, help="Score at which a text is flagged (default 0.5).")
@click.option("--allow-download", is_flag=True, help="Allow an hf-classifier hub id to be fetched.")
def scorers_score(role: str, file: str | None, scorer_choice: str | None, labels: str | None,
                  threshold: float | None, allow_download: bool) -> None:
    """Score your own texts with a role's scorer: one JSON line per text (score, flagged).

    FILE holds one text per line, or JSONL with a 'text' field (and optional 'id', and 'prompt': the
    request a reply answers, read by the non_answer scorers); without FILE the texts come from
    standard input. Try a scorer on your own examples before a gate trusts it.
    """
    import sys

    from pydantic import ValidationError

    from audit.cli._options import parse_scorers
    from audit.offline import enforce_offline
    from audit.scorers import ROLES, ScorerSpec, build_scorer
    from taxonomy import validation_message

    if role not in ROLES:
        raise BadInput(f"{role}: unknown role (known: {', '.join(ROLES)})")
    enforce_offline(allow_download)
    spec_dict: dict[str, object] = {"name": ROLES[role]}
    if scorer_choice:
        parsed = parse_scorers((f"{role}={scorer_choice}",), (), ())
        spec_dict.update(parsed[role])
    if labels:
        spec_dict["labels"] = split_list((labels,))
    if threshold is not None:
        spec_dict["threshold"] = threshold
    try:
        spec = ScorerSpec.model_validate(spec_dict)
    except ValidationError as exc:
        raise BadInput(f"{role}: {validation_message(exc)}", setting="scorers") from None
    if file is None:
        source, raw = "<stdin>", sys.stdin.read()
    else:
        from taxonomy import UserFileError, read_user_text

        source = file
        try:  # the one reader of user files: missing, directory, not UTF-8, BOM, size cap, surrogates
            raw = read_user_text(file, "texts to score")
        except UserFileError as exc:
            raise BadInput(str(exc)) from None
    items = _read_texts(source, raw)
    scorer = build_scorer(role, spec, allow_download=allow_download)
    prompts = [p or "" for _, _, p in items] if any(p for _, _, p in items) else None
    scores = scorer.score([t for _, t, _ in items], prompts) if items else []
    for (ident, text, _), score, flagged in zip(items, scores, scorer.flags(scores)):
        row = {"id": ident} if ident is not None else {}
        row.update({"text": text, "score": round(float(score), 6), "flagged": flagged, "scorer": scorer.name,
                    "threshold": scorer.threshold})
        click.echo(json.dumps(row, ensure_ascii=True))  # model text stays inert on a terminal
