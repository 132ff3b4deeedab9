"""From metrics to statuses: metric -> probe -> risk -> area -> whole audit."""

from __future__ import annotations

from collections.abc import Iterable

from reports import AreaReport, Metric, ProbeReport, RiskReport, Status, Summary
from taxonomy import Automation, Taxonomy

# The one severity order of statuses, least to most severe. not_evaluated sits above warn and
# below fail: a risk that could not be measured must not pass a policy's `max_status: warn`
# check, yet it is no evidence of failure. manual ranks with pass: a risk left to a person's review
# does not fail an automated gate (the review checklist carries it).
_SEVERITY = {Status.passed: 0, Status.manual: 0, Status.warn: 1, Status.not_evaluated: 2, Status.fail: 3,
             Status.error: 4}
# Statuses that carry no measurement. The roll-up's own rule on top of the order: the worst
# *evaluated* status wins, and these show only when nothing was evaluated (a risk with a passing
# probe and an unevaluable one is pass; an area with a failing risk and a manual one is fail).
_UNEVALUATED = frozenset({Status.not_evaluated, Status.manual})


def severity(status: Status) -> int:
    """Rank of ``status`` in the one severity order (higher is worse)."""
    return _SEVERITY[status]


def worst(statuses: Iterable[Status]) -> Status | None:
    """Most severe of the evaluated statuses (pass/warn/fail/error); None when there is none of them."""
    ranked = [s for s in statuses if s not in _UNEVALUATED]
    return max(ranked, key=severity) if ranked else None


def metric_status(m: Metric) -> Status | None:
    """Status of a metric against its bars; None for informational metrics.

    fail: the whole interval lies past the fail bar (clear evidence);
    warn: the point value is past the warn bar, or past the fail bar with an
    interval that still reaches the acceptable side.
    """
    t = m.threshold
    if t is None or m.higher_is_better is None:
        return None
    if m.value is None:
        return Status.not_evaluated
    hib = m.higher_is_better

    def past(x: float, bar: float) -> bool:
        return x < bar if hib else x > bar

    if t.fail is not None:
        best_case = (m.ci.high if hib else m.ci.low) if m.ci is not None else m.value
        if past(best_case, t.fail):
            return Status.fail
        if past(m.value, t.fail):
            return Status.warn
    if t.warn is not None and past(m.value, t.warn):
        return Status.warn
    return Status.passed


def combine(statuses: list[Status]) -> Status:
    """Roll several statuses up: the worst evaluated one, else the worst unevaluated one
    (not_evaluated over manual), else manual (nothing to roll up)."""
    w = worst(statuses)
    if w is not None:
        return w
    return max(statuses, key=severity, default=Status.manual)


def roll_up(tax: Taxonomy, probe_reports: list[ProbeReport]) -> tuple[list[AreaReport], Summary]:
    """Per-risk and per-area statuses, and the audit's summary, from the probes that ran."""
    by_id = {p.id: p for p in probe_reports}
    areas = []
    for area in tax.areas:
        risks = []
        for r in area.risks:
            ran = [by_id[p] for p in r.probes if p in by_id]
            if r.automation is Automation.manual and not ran:
                status, reason = Status.manual, "needs a person's judgement; see the review checklist"
            elif not ran:
                status, reason = Status.not_evaluated, "none of its probes ran in this audit"
            else:
                status = combine([p.status for p in ran])
                reason = ""
                if status is Status.not_evaluated:
                    reason = "its probes could not be evaluated on this model"
                if r.automation is Automation.partial:
                    reason = "automated evidence covers part of this risk; the rest needs review"
            risks.append(RiskReport(
                id=r.id, slug=r.slug, name=r.name, aliases=r.aliases, description=r.description,
                automation=r.automation.value, status=status, status_reason=reason,
                probes=[p.id for p in ran], probes_not_run=[p for p in r.probes if p not in by_id],
                crosswalk=r.crosswalk.model_dump(), review_questions=r.review_questions,
            ))
        areas.append(AreaReport(id=area.id, name=area.name, aliases=area.aliases,
                                status=combine([r.status for r in risks]), risks=risks))
    counts: dict[str, int] = {}
    for a in areas:
        for risk in a.risks:
            counts[risk.status.value] = counts.get(risk.status.value, 0) + 1
    summary = Summary(
        status=combine([a.status for a in areas]),
        risks_by_status=counts,
        probes_run=sum(1 for p in probe_reports if p.status is not Status.not_evaluated),
        probes_errored=sum(1 for p in probe_reports if p.status is Status.error),
    )
    return areas, summary
