"""Parsing of the flags that several commands share, into settings (``AuditConfig`` shapes).

Errors name the setting a flag sets (``BadInput(..., setting="scorers")``); ``main`` prints the flag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
import yaml

from audit.errors import BadInput

F = TypeVar("F", bound=Callable[..., Any])


def split_list(values: tuple[str, ...]) -> list[str]:
    """``--areas I,III --areas V`` -> ``["I", "III", "V"]``."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def parse_datasets(values: tuple[str, ...], selected: list[str]) -> dict[str, str]:
    """``--dataset PROBE_ID=PATH``; a bare PATH when exactly one of ``selected`` (default: every
    registered probe) takes a dataset."""
    out = {}
    for value in values:
        if "=" in value:
            pid, _, path = value.partition("=")
        else:
            from probes import all_probes

            registry = all_probes()
            takers = [p for p in (selected or registry) if p in registry and registry[p].dataset_format]
            if len(takers) != 1:
                raise BadInput(f"{value}: say which probe it is for, as PROBE_ID=PATH "
                               f"(probes taking a dataset: {', '.join(takers) or 'none selected'})", setting="datasets")
            pid, path = takers[0], value
        out[pid.strip()] = path.strip()
    return out


def parse_params(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--param PROBE_ID:KEY=VALUE`` (VALUE read as YAML: numbers, booleans, lists)."""
    out: dict[str, dict[str, Any]] = {}
    for value in values:
        pid, sep, rest = value.partition(":")
        key, eq, raw = rest.partition("=")
        if not sep or not eq or not key:
            raise BadInput(f"{value}: expected PROBE_ID:KEY=VALUE", setting="probe_params")
        out.setdefault(pid, {})[key] = yaml.safe_load(raw)
    return out


def parse_scorers(choices: tuple[str, ...], labels: tuple[str, ...],
                  thresholds: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--scorer ROLE=NAME[:MODEL]``, ``--scorer-labels ROLE=L1,L2``, ``--scorer-threshold ROLE=X``
    as a ``scorers`` setting. An entry without a name refines the role's entry below it
    (``audit.config.merge_settings``)."""
    out: dict[str, dict[str, Any]] = {}
    for value in choices:
        role, eq, rest = value.partition("=")
        if not eq or not role or not rest:
            raise BadInput(f"{value}: expected ROLE=NAME or ROLE=hf-classifier:PATH", setting="scorers")
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
                    raise BadInput(f"{flag} {value}: {rest!r} is not a number") from None
    from audit.scorers import ROLES

    for role in out:
        if role not in ROLES:
            raise BadInput(f"{role}=...: unknown role (known: {', '.join(ROLES)})", setting="scorers")
    return out


def scorer_options(f: F) -> F:
    """The three scorer flags, for ``run`` and ``scorers validate``."""
    for option in reversed([
        click.option("--scorer", "scorer_choices", multiple=True,
                     help="Scorer for a role: ROLE=NAME or ROLE=hf-classifier:PATH (roles: toxicity, regard)."),
        click.option("--scorer-labels", multiple=True, help="Labels an hf-classifier counts as positive: ROLE=L1,L2."),
        click.option("--scorer-threshold", multiple=True, help="Score at which an output counts: ROLE=0.5."),
    ]):
        f = option(f)
    return f
