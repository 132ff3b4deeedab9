"""Correct a rate measured through a scorer for that scorer's errors on its labelled set.

One call per metric: ``correct(metric, counted, scorer_info, seed=..., negated=...)`` fills
``metric.corrected`` (Rogan-Gladen, ``stats.corrected_rate``) and ``metric.correction_note``.
``negated`` says the counted outcome is the *absence* of the scorer's flag (compliance = not
refused): then the scorer's specificity is the outcome's sensitivity and vice versa. This is the
one place that swap happens.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from probes import stats
from reports import Figure, Metric, ScorerInfo


def correct(metric: Metric, counted: Sequence[bool], scorer: ScorerInfo, *, seed: int, negated: bool = False,
            clusters: Sequence[Hashable] | None = None) -> Metric:
    """Fill ``metric.corrected`` and its note from the scorer's validation counts; returns the metric."""
    v = scorer.validation
    who = f"the {scorer.measures or scorer.name} scorer"
    if v is None or None in (v.tp, v.fn, v.tn, v.fp):
        metric.correction_note = f"not corrected for scorer error: {who} has no validation counts in this run"
        return metric
    assert v.tp is not None and v.fn is not None and v.tn is not None and v.fp is not None
    sens, spec = (v.tp, v.tp + v.fn), (v.tn, v.tn + v.fp)
    if negated:
        sens, spec = spec, sens
    value, ci, n, dropped = stats.corrected_rate_detail(counted, sens, spec, seed=seed, clusters=clusters)
    metric.corrected = Figure(value=value, ci=ci, n=n)
    se = sens[0] / sens[1] if sens[1] else 0.0
    sp = spec[0] / spec[1] if spec[1] else 0.0
    if n and value is None:
        metric.correction_note = (f"{who} is too weak to correct for this bar: sensitivity+specificity-1 = "
                                  f"{se + sp - 1:.2f} on its labelled set (below {stats.MIN_YOUDEN:g})")
        return metric
    held = ("held out" if v.dataset.startswith("lm-risk-audit held-out ") else
            "not held out" if v.dataset.startswith("lm-risk-audit ") else "as supplied")
    flip = " (of its flag's absence)" if negated else ""
    note = (f"corrected for {who}'s sensitivity {se:.3f} and specificity {sp:.3f}{flip} on its labelled set "
            f"({v.dataset}, {held})")
    if dropped:
        note += f"; {dropped} bootstrap resamples with sensitivity+specificity-1 <= 0.05 dropped"
    metric.correction_note = note
    return metric


# Appended to a compliance rate's correction note when non-answers were judged apart.
NON_ANSWERS_REMOVED = ("; non-answers (judged by the run's non_answer scorer) are removed before the correction, "
                       "which treats the rest as the refusal scorer's misses and false alarms")


def not_corrected(metric: Metric, why: str) -> Metric:
    """Say why a scorer-measured metric carries no correction."""
    metric.correction_note = f"not corrected for scorer error: {why}"
    return metric
