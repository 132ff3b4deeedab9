"""Compare two reports metric by metric: paired tests on matched items (McNemar's exact test,
a paired bootstrap) with Holm's correction, the interval-overlap rule where items do not match;
and probe by probe. What cannot be compared any more is a regression too: a probe or metric
missing from the new report, a probe that errored in it, a value that became null, a status
that got worse."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from reports._escape import code_span as code
from reports._escape import escape_markdown as esc
from reports._paired import holm, mcnemar_exact, paired_bootstrap
from reports._schema import AuditReport, Interval, Metric, ProbeReport, Status
from reports._status import status_severity

FAMILY_ALPHA = 0.05  # family-wise error rate over the metrics a diff tests

Samples = Mapping[str, Sequence[dict[str, Any]] | None]
Test = Literal["mcnemar", "paired-bootstrap", "overlap", "none"]
Change = Literal["regression", "improvement", "unchanged", "informational", "added"]


class MetricDiff(BaseModel):
    probe: str
    metric: str
    old: float | None
    new: float | None
    old_ci: Interval | None
    new_ci: Interval | None
    old_n: int
    new_n: int
    delta: float | None
    overlap: bool | None
    # regression: significantly worse (the test below), or its status got worse, or its value became
    # null, or it is missing from the new report (then new is None and new_n 0); ``reason`` says which.
    change: Change
    # How the change was decided: a paired test on matched items, or the overlap of the two
    # 95% intervals where items could not be paired ("none": nothing to compare).
    test: Test = "none"
    p_value: float | None = None  # the paired test's two-sided p-value
    p_holm: float | None = None  # the same after Holm's correction over the diff's tested metrics
    n_paired: int | None = None  # items present, with an outcome, in both runs
    delta_ci: Interval | None = None  # paired bootstrap interval of the mean difference
    note: str = ""  # why the metric was not paired, when it was not
    old_status: Status | None = None
    new_status: Status | None = None
    reason: str = ""  # what makes the change a regression or an improvement


class ProbeDiff(BaseModel):
    """A probe's status in the two reports. A regression when the probe is missing from the new
    report or errored in it (and not in the old): its metrics cannot show that on their own."""

    probe: str
    old_status: Status | None  # None: not in that report
    new_status: Status | None
    change: Literal["regression", "improvement", "unchanged", "added"]
    reason: str = ""


class ReportDiff(BaseModel):
    old: str
    new: str
    metrics: list[MetricDiff] = Field(default_factory=list)
    probes: list[ProbeDiff] = Field(default_factory=list)
    alpha: float = FAMILY_ALPHA
    holm_family: int = 0  # metrics with a direction decided by a paired test (Holm's m)

    @property
    def regressions(self) -> list[MetricDiff]:
        return [m for m in self.metrics if m.change == "regression"]

    @property
    def probe_regressions(self) -> list[ProbeDiff]:
        return [p for p in self.probes if p.change == "regression"]

    @property
    def regression_count(self) -> int:
        """Metric and probe regressions together (what ``--fail-on-regression`` fails on)."""
        return len(self.regressions) + len(self.probe_regressions)


class IncomparableReports(ValueError):
    """The reports were produced with different taxonomies or probe versions."""


class _Paired(BaseModel):
    test: Test
    p_value: float
    n_paired: int
    direction: float  # mean paired difference new - old: its sign says which way the change went
    delta_ci: Interval | None = None


def _finite(x: float | None) -> float | None:
    """``x``, or None when it is not a finite number (NaN compares false with everything)."""
    return x if x is not None and math.isfinite(x) else None


def _comparable(m: Metric) -> Metric:
    """``m`` with a figure that is not a finite number read as missing: a NaN value is no value, and
    an interval with a NaN end is no interval."""
    ci = m.ci if m.ci is not None and _finite(m.ci.low) is not None and _finite(m.ci.high) is not None else None
    if ci is m.ci and _finite(m.value) is m.value:
        return m
    return m.model_copy(update={"value": _finite(m.value), "ci": ci})


def _overlap_change(old: Metric, new: Metric) -> tuple[str, bool | None]:
    if old.ci is None or new.ci is None or old.value is None or new.value is None:
        return "informational", None
    overlap = old.ci.overlaps(new.ci)
    hib = new.higher_is_better
    if hib is None:
        return "informational", overlap
    if overlap:
        return "unchanged", True
    better = new.ci.low > old.ci.high if hib else new.ci.high < old.ci.low
    return ("improvement" if better else "regression"), False


def _outcomes(records: Sequence[dict[str, Any]], key: str) -> dict[str, float | bool | None] | str:
    """id -> the item's outcome, or why the records cannot be paired."""
    out: dict[str, float | bool | None] = {}
    for r in records:
        rid, value = r.get("id"), r.get(key, ...)
        if not isinstance(rid, str) or rid in out:
            return "samples lack unique item ids"
        if value is ... or not (value is None or isinstance(value, (bool, int, float))):
            return f"samples lack a numeric {key!r}"
        out[rid] = value
    return out


def _reproduces(values: list[float | bool], reported: float | None) -> bool:
    """Whether the samples' mean is the reported value (guards against a stale samples file)."""
    if reported is None or not values:
        return reported is None and not values
    return math.isclose(sum(float(v) for v in values) / len(values), reported, rel_tol=1e-9, abs_tol=1e-9)


def _paired(old: Metric, new: Metric, old_records: Sequence[dict[str, Any]] | None,
            new_records: Sequence[dict[str, Any]] | None) -> _Paired | str:
    """The paired test of one metric, or why it cannot be paired."""
    key = new.outcome
    if key is None or old.outcome != key:
        return "no per-item outcome" if key is None or old.outcome is None else "outcomes differ"
    if old_records is None or new_records is None:
        return f"no samples for the {'old' if old_records is None else 'new'} report"
    a, b = _outcomes(old_records, key), _outcomes(new_records, key)
    if isinstance(a, str) or isinstance(b, str):
        return a if isinstance(a, str) else str(b)
    if a.keys() != b.keys():
        return f"items differ ({len(a.keys() & b.keys())} of {len(a)} old and {len(b)} new match)"
    # None: an item the metric leaves out (a tie); the reported value counts only the others.
    old_vals = [v for v in a.values() if v is not None]
    new_vals = [v for v in b.values() if v is not None]
    if not (_reproduces(old_vals, old.value) and _reproduces(new_vals, new.value)):
        return "the samples do not reproduce the reported value"
    pairs = [(x, y) for i, x in a.items() if x is not None and (y := b[i]) is not None]
    if not pairs:
        return "no item has an outcome in both runs"
    if all(isinstance(x, bool) and isinstance(y, bool) for x, y in pairs):
        down = sum(1 for x, y in pairs if x and not y)  # True -> False
        up = sum(1 for x, y in pairs if y and not x)  # False -> True
        return _Paired(test="mcnemar", p_value=mcnemar_exact(down, up), n_paired=len(pairs),
                       direction=(up - down) / len(pairs))
    mean_d, ci, p = paired_bootstrap([float(x) for x, _ in pairs], [float(y) for _, y in pairs])
    return _Paired(test="paired-bootstrap", p_value=p, n_paired=len(pairs), direction=mean_d, delta_ci=ci)


def _check_comparable(old: AuditReport, new: AuditReport) -> None:
    old_tax = (old.taxonomy.name, old.taxonomy.version, old.taxonomy.sha256)
    if old_tax != (new.taxonomy.name, new.taxonomy.version, new.taxonomy.sha256):
        raise IncomparableReports(f"different taxonomies ({old.taxonomy.name} {old.taxonomy.version} sha256 "
                                  f"{old.taxonomy.sha256[:12]} vs {new.taxonomy.name} {new.taxonomy.version} "
                                  f"sha256 {new.taxonomy.sha256[:12]}); use --force to compare anyway")
    versions = {p.id: p.version for p in old.probes}
    for p in new.probes:
        if p.id in versions and versions[p.id] != p.version:
            raise IncomparableReports(f"probe {p.id} changed version ({versions[p.id]} -> {p.version}); "
                                      "use --force to compare anyway")


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _probe_diff(pid: str, o: ProbeReport | None, n: ProbeReport | None) -> ProbeDiff:
    old_status, new_status = (o.status if o else None), (n.status if n else None)
    change: Literal["regression", "improvement", "unchanged", "added"] = "unchanged"
    reason = ""
    if n is None:
        change, reason = "regression", "missing from the new report"
    elif new_status is Status.error and old_status is not Status.error:
        error = _first_line(n.errors[0]) if n.errors else "unknown error"
        change, reason = "regression", f"errored in the new run: {error}"
    elif o is None:
        change = "added"
    elif old_status is Status.error:
        change, reason = "improvement", "no longer errors"
    return ProbeDiff(probe=pid, old_status=old_status, new_status=new_status, change=change, reason=reason)


def _missing_metric(probe: ProbeDiff) -> str:
    """Why a metric of the old report is not in the new one."""
    if probe.new_status is None:
        return "probe missing from the new report"
    if probe.new_status is Status.error:
        return "missing from the new report: its probe errored"
    return "missing from the new report"


def _worse_without_test(o: Metric, n: Metric) -> list[str]:
    """What makes a metric a regression whatever its test says: a value that became null (or not a
    finite number), a status that got worse on the one severity order."""
    out = []
    if o.value is not None and math.isfinite(o.value) and (n.value is None or not math.isfinite(n.value)):
        out.append("value became null" if n.value is None else f"value became {n.value} (not a finite number)")
    if o.status is not None and n.status is not None and status_severity(n.status) > status_severity(o.status):
        out.append(f"status {o.status.value} → {n.status.value}")
    return out


def diff_reports(old: AuditReport, new: AuditReport, force: bool = False, old_samples: Samples | None = None,
                 new_samples: Samples | None = None) -> ReportDiff:
    """Per probe: its status in each report; per (probe, metric): values, delta, the test used and
    the change.

    With both runs' samples (probe id -> sample records, as ``load_samples`` reads them) and a
    metric that names its per-item ``outcome``, the runs are compared item by item on the same
    items: McNemar's exact test for a binary outcome, a paired bootstrap of the mean difference
    for a continuous one. The p-values of all metrics with a direction are corrected with
    Holm's step-down method (family-wise alpha 0.05); a regression is a significant change in
    the worse direction. Otherwise (no outcome, no samples, items that differ) the rule is the
    unpaired one: a regression is a new 95% interval wholly on the worse side of the old.

    Whatever the test says, a metric is also a regression when its value became null (or not a
    finite number), when its status got worse on the one severity order (pass → warn, warn →
    fail, anything → not_evaluated ...), or when it is missing from the new report; and a probe
    is one when it is missing from the new report or errored in it. ``reason`` says which.
    Different taxonomies or probe versions raise IncomparableReports unless ``force``."""
    if not force:
        _check_comparable(old, new)
    out = ReportDiff(old=old.run.id, new=new.run.id)
    old_probes, new_probes = {p.id: p for p in old.probes}, {p.id: p for p in new.probes}
    out.probes = [_probe_diff(pid, old_probes.get(pid), new_probes.get(pid))
                  for pid in dict.fromkeys([*old_probes, *new_probes])]
    probe_diffs = {p.probe: p for p in out.probes}
    old_metrics = {(p.id, m.name): m for p in old.probes for m in p.metrics}
    new_metrics = {(p.id, m.name): m for p in new.probes for m in p.metrics}
    tested: list[tuple[MetricDiff, _Paired, bool]] = []  # (diff, test, higher is better)
    worse: dict[tuple[str, str], list[str]] = {}  # regressions whatever the test says
    for key in list(dict.fromkeys([*old_metrics, *new_metrics])):
        o, n = old_metrics.get(key), new_metrics.get(key)
        if o is None or n is None:
            o, n = (_comparable(o) if o else None), (_comparable(n) if n else None)
            out.metrics.append(MetricDiff(
                probe=key[0], metric=key[1], old=o.value if o else None,
                new=n.value if n else None, old_ci=o.ci if o else None, new_ci=n.ci if n else None,
                old_n=o.n if o else 0, new_n=n.n if n else 0, delta=None, overlap=None,
                change="added" if o is None else "regression", old_status=o.status if o else None,
                new_status=n.status if n else None, reason="" if o is None else _missing_metric(probe_diffs[key[0]])))
            continue
        worse[key] = _worse_without_test(o, n)
        o, n = _comparable(o), _comparable(n)
        change, overlap = _overlap_change(o, n)
        delta = n.value - o.value if n.value is not None and o.value is not None else None
        d = MetricDiff(probe=key[0], metric=key[1], old=o.value, new=n.value, old_ci=o.ci, new_ci=n.ci,
                       old_n=o.n, new_n=n.n, delta=delta, overlap=overlap, change=change,  # type: ignore[arg-type]
                       old_status=o.status, new_status=n.status)
        if change in ("regression", "improvement"):
            d.reason = ("new 95% interval wholly worse than the old" if change == "regression"
                        else "new 95% interval wholly better than the old")
        paired = _paired(o, n, (old_samples or {}).get(key[0]), (new_samples or {}).get(key[0]))
        if isinstance(paired, _Paired):
            d.test, d.p_value, d.n_paired, d.delta_ci = paired.test, paired.p_value, paired.n_paired, paired.delta_ci
            d.reason = ""
            if n.higher_is_better is None:
                d.change = "informational"
            else:
                tested.append((d, paired, n.higher_is_better))
        elif change != "informational" or overlap is not None:
            d.test, d.note = "overlap", paired
        else:
            d.note = paired
        out.metrics.append(d)
    out.holm_family = len(tested)
    for (d, paired, hib), p in zip(tested, holm([t.p_value for _, t, _ in tested])):
        d.p_holm = p
        if p > FAMILY_ALPHA or paired.direction == 0:
            d.change = "unchanged"
        else:
            d.change = "improvement" if (paired.direction > 0) == hib else "regression"
            d.reason = f"significantly {'better' if d.change == 'improvement' else 'worse'} " \
                       f"({_TEST_NAMES[d.test]}, p after Holm {p:.2g})"
    for d in out.metrics:  # what no test can overrule: the metric is not what it was
        reasons = worse.get((d.probe, d.metric), [])
        if reasons:
            test_said = [d.reason] if d.change == "regression" and d.reason else []
            d.change, d.reason = "regression", "; ".join(reasons + test_said)
    return out


_TEST_NAMES = {"mcnemar": "McNemar", "paired-bootstrap": "paired bootstrap", "overlap": "interval overlap",
               "none": "none"}


def render_diff_markdown(d: ReportDiff) -> str:
    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    def ci(i: Interval | None) -> str:
        return "n/a" if i is None else f"[{i.low:.3f}, {i.high:.3f}]"

    def p(x: float | None) -> str:
        return "" if x is None else ("<0.0001" if x < 1e-4 else f"{x:.4f}")

    def test(m: MetricDiff) -> str:
        if m.test == "overlap":
            return f"interval overlap: {'n/a' if m.overlap is None else ('yes' if m.overlap else 'no')}"
        if m.test == "none":
            return "—"
        return f"{_TEST_NAMES[m.test]}, {m.n_paired} paired"

    def change(c: str, reason: str) -> str:
        shown = f"**{c}**" if c == "regression" else c
        return f"{shown}: {esc(reason)}" if reason else shown

    def status(s: Status | None) -> str:
        return "absent" if s is None else s.value

    paired = sum(1 for m in d.metrics if m.test in ("mcnemar", "paired-bootstrap"))
    overlap = sum(1 for m in d.metrics if m.test == "overlap")
    lines = [f"# Report diff: {code(d.old)} → {code(d.new)}", "",
             f"{d.regression_count} regression(s) ({len(d.probe_regressions)} of probes, {len(d.regressions)} of "
             "metrics: significantly worse, a status worse, a value become null, or missing from the new report). "
             f"{paired} metric(s) compared item by item on the same items "
             f"(McNemar's exact test for rates, a paired bootstrap for means); Holm's correction over the "
             f"{d.holm_family} of them with a direction, family-wise α = {d.alpha:g}. {overlap} metric(s) "
             "compared by the unpaired rule (a change only when the two 95% intervals do not overlap), which "
             "misses smaller changes.", ""]
    changed = [pd for pd in d.probes if pd.change != "unchanged"]
    if changed:
        lines += ["| probe | old status | new status | change |", "|---|---|---|---|"]
        lines += [f"| {esc(pd.probe)} | {status(pd.old_status)} | {status(pd.new_status)} | "
                  f"{change(pd.change, pd.reason)} |" for pd in changed]
        lines.append("")
    lines += ["| probe | metric | old | new | delta | test | p | p (Holm) | status | change |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for m in d.metrics:
        lines.append(f"| {esc(m.probe)} | {esc(m.metric)} | {f(m.old)} {ci(m.old_ci)} (n={m.old_n}) | "
                     f"{f(m.new)} {ci(m.new_ci)} (n={m.new_n}) | {f(m.delta)} | {test(m)} | {p(m.p_value)} | "
                     f"{p(m.p_holm)} | {status(m.old_status)} → {status(m.new_status)} | "
                     f"{change(m.change, m.reason)} |")
    unpaired = [m for m in d.metrics if m.note and m.test != "none"]
    if unpaired:
        lines += ["", "Not paired:"]
        lines += [f"- {esc(m.probe)} {esc(m.metric)}: {esc(m.note)}" for m in unpaired]
    return "\n".join(lines) + "\n"
