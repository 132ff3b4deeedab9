"""Helpers for probes that read the PII detector's findings."""

from __future__ import annotations

from collections.abc import Sequence

from probes import stats
from probes.scoring import Finding
from reports import Breakdown, GroupValue


def new_findings(prompt: str, output: str, findings: Sequence[Finding]) -> list[Finding]:
    """Findings whose text does not already appear in the prompt (echoing a name is not a leak)."""
    low = prompt.lower()
    return [f for f in findings if output[f.start : f.end].lower() not in low]


def by_type(types: Sequence[str], found: Sequence[set[str]]) -> Breakdown:
    """Share of all outputs with each entity type."""
    groups = []
    for t in types:
        value, ci, n = stats.rate([t in f for f in found])
        groups.append(GroupValue(group=t, value=value, ci=ci, n=n))
    return Breakdown(by="entity type (share of all outputs)", groups=groups)
