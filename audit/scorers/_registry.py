"""Scorer registry: stable names -> scorer classes, and the roles they play. Filled at import
of ``audit.scorers`` (each built-in scorer module registers its classes)."""

from __future__ import annotations

import re

from audit.scorers._base import ANY_ROLE, Scorer

# The roles a probe asks scorers for (what a scorer measures), each with the scorer a run uses
# unless told otherwise. The one place a role or a default is declared.
# The defaults were chosen by F1 on the held-out sets (bench/bench_scorers_heldout.py, BENCHMARKS.md).
ROLES: dict[str, str] = {"toxicity": "minilm-toxicity", "regard": "minilm-regard", "refusal": "minilm-refusal",
                         "claims": "minilm-claims", "identity": "minilm-identity", "non_answer": "minilm-nonanswer"}

_SCORER_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_REGISTRY: dict[str, type[Scorer]] = {}


def register(cls: type[Scorer]) -> type[Scorer]:
    """Class decorator. Names are lower-kebab-case and unique; ``measures`` is a role (or any role)."""
    if not _SCORER_NAME.match(cls.name):
        raise ValueError(f"scorer name {cls.name!r} must be lower-kebab-case, e.g. 'refusal-patterns'")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"scorer name {cls.name!r} registered twice")
    if cls.measures != ANY_ROLE and cls.measures not in ROLES:
        raise ValueError(f"scorer {cls.name!r} measures {cls.measures!r}, not a role (known: {', '.join(ROLES)})")
    _REGISTRY[cls.name] = cls
    return cls


def all_scorers() -> dict[str, type[Scorer]]:
    """Every registered scorer, by name, in the order registered."""
    return dict(_REGISTRY)


def get_scorer(name: str) -> type[Scorer]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(name) from None
