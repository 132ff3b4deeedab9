"""From metrics to statuses: metric -> probe -> risk -> area -> whole audit."""

from __future__ import annotations

from collections.abc import Iterable

from reports import Metric, Status

_SEVERITY = {Status.error: 4, Status.fail: 3, Status.warn: 2, Status.passed: 1}


def worst(statuses: Iterable[Status]) -> Status | None:
    """Most severe of pass/warn/fail/error; None when there is none of them."""
    ranked = [s for s in statuses if s in _SEVERITY]
    return max(ranked, key=_SEVERITY.__getitem__) if ranked else None


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
    """Roll several statuses up: the worst evaluated one, else not_evaluated, else manual."""
    w = worst(statuses)
    if w is not None:
        return w
    if Status.not_evaluated in statuses:
        return Status.not_evaluated
    return Status.manual
