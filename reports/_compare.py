"""Several audits side by side: one column per report, one row per (probe, metric), the best and
worst column of each row with a direction, and each other column's paired test against the first
(the reference). The paired tests are ``diff_reports``' own (McNemar's exact test, a paired
bootstrap), Holm-corrected over every test of the comparison."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from reports._diff import FAMILY_ALPHA, IncomparableReports, Samples, diff_reports
from reports._paired import holm
from reports._schema import AuditReport, Figure, Interval, Metric, Status, Threshold


class CompareColumn(BaseModel):
    """One report of the comparison."""

    key: str  # "A", "B", ...: A is the reference the paired tests compare with
    label: str  # the model id, with the run id where two columns share a model id
    model: str
    run: str
    parameters: int | None
    report: str  # the report's path as given ("" when compared from memory)
    status: Status
    smoke: bool = False  # a --limit run: a quick look, not evidence


class CompareCell(BaseModel):
    """A metric as one report has it."""

    value: float | None
    ci: Interval | None
    n: int
    status: Status | None
    corrected: Figure | None = None  # the scorer-corrected figure (gates read it), when measured through a scorer


class PairedTest(BaseModel):
    """One column's metric against the reference column's, item by item on the same items."""

    column: int  # index into Comparison.columns (never 0, the reference)
    test: Literal["mcnemar", "paired-bootstrap", "none"]
    p_value: float | None = None
    p_holm: float | None = None  # Holm over every test of the comparison with a direction
    n_paired: int | None = None
    delta: float | None = None  # this column's value - the reference's (raw values)
    delta_ci: Interval | None = None  # paired bootstrap interval of the mean difference (None for McNemar)
    # better / worse: significant after Holm in that direction; "unchanged": not significant;
    # informational: the metric has no direction; None: not paired (``note`` says why).
    verdict: Literal["better", "worse", "unchanged", "informational"] | None = None
    note: str = ""


class CompareRow(BaseModel):
    probe: str
    metric: str
    unit: str
    higher_is_better: bool | None
    bars: Threshold | None
    cells: list[CompareCell | None]  # one per column; None: the report has no such metric
    # The figure best/worst and the scale chart read: the scorer-corrected one when every cell with
    # a value has one (what gates read), else the raw value (never a mix of the two).
    figure: Literal["value", "corrected"] = "value"
    best: list[int] = Field(default_factory=list)  # column indices (ties share the mark)
    worst: list[int] = Field(default_factory=list)
    tests: list[PairedTest] = Field(default_factory=list)

    def shown(self, i: int) -> tuple[float | None, Interval | None]:
        """Column ``i``'s value and interval on the row's ``figure`` (None, None for an empty cell)."""
        c = self.cells[i]
        if c is None:
            return None, None
        if self.figure == "corrected" and c.corrected is not None:
            return _finite(c.corrected.value), c.corrected.ci
        return _finite(c.value), c.ci


class Comparison(BaseModel):
    columns: list[CompareColumn]
    rows: list[CompareRow]
    alpha: float = FAMILY_ALPHA
    holm_family: int = 0  # paired tests with a direction (Holm's m)
    # What differs between reports compared with force (--force) although their taxonomies or probe
    # versions differ; "" when nothing does.
    forced: str = ""

    @property
    def scale_rows(self) -> list[CompareRow]:
        """Gated metrics (a warn or fail bar) shown against model size; empty unless the columns'
        parameter counts differ (columns without a positive count are left out of the charts)."""
        sized = [i for i, c in enumerate(self.columns) if c.parameters is not None and c.parameters > 0]
        if len({self.columns[i].parameters for i in sized}) < 2:
            return []
        return [r for r in self.rows if r.bars is not None and (r.bars.warn is not None or r.bars.fail is not None)
                and any(r.shown(i)[0] is not None for i in sized)]


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def column_key(i: int) -> str:
    """A, B, ..., Z, then AA, AB, ... (spreadsheet style)."""
    key = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        key = chr(ord("A") + r) + key
    return key


def _labels(reports: Sequence[AuditReport]) -> list[str]:
    """Model ids; where two columns share one, with the run id; where that is shared too (the same
    report twice), with the column key."""
    labels = [r.model.id for r in reports]
    labels = [f"{lab} ({r.run.id})" if labels.count(lab) > 1 else lab for lab, r in zip(labels, reports)]
    return [f"{lab} [{column_key(i)}]" if labels.count(lab) > 1 else lab for i, lab in enumerate(labels)]


def _check_comparable(reports: Sequence[AuditReport], names: Sequence[str]) -> None:
    """Raise IncomparableReports, naming the files, when taxonomies or a probe's versions differ."""
    def tax(r: AuditReport) -> tuple[str, str, str]:
        return r.taxonomy.name, r.taxonomy.version, r.taxonomy.sha256

    for r, name in zip(reports[1:], names[1:]):
        if tax(r) != tax(reports[0]):
            a, b = reports[0].taxonomy, r.taxonomy
            raise IncomparableReports(f"{names[0]} and {name}: different taxonomies ({a.name} {a.version} sha256 "
                                      f"{a.sha256[:12]} vs {b.name} {b.version} sha256 {b.sha256[:12]}); "
                                      "use --force to compare anyway")
    first: dict[str, tuple[str, str]] = {}  # probe id -> (version, file) where first seen
    for r, name in zip(reports, names):
        for p in r.probes:
            seen = first.setdefault(p.id, (p.version, name))
            if seen[0] != p.version:
                raise IncomparableReports(f"{seen[1]} and {name}: probe {p.id} has different versions "
                                          f"({seen[0]} vs {p.version}); use --force to compare anyway")


def _rank(row: CompareRow) -> None:
    """Mark the best and worst columns of a row with a direction, when at least two values differ."""
    if row.higher_is_better is None:
        return
    values = {i: v for i in range(len(row.cells)) if (v := row.shown(i)[0]) is not None}
    if len(set(values.values())) < 2:
        return
    hi, lo = max(values.values()), min(values.values())
    top = [i for i, v in values.items() if v == hi]
    bottom = [i for i, v in values.items() if v == lo]
    row.best, row.worst = (top, bottom) if row.higher_is_better else (bottom, top)


def _figure(cells: Sequence[CompareCell | None]) -> Literal["value", "corrected"]:
    with_value = [c for c in cells if c is not None and _finite(c.value) is not None]
    corrected = all(c.corrected is not None and _finite(c.corrected.value) is not None for c in with_value)
    return "corrected" if with_value and corrected else "value"


def _cell(m: Metric) -> CompareCell:
    return CompareCell(value=m.value, ci=m.ci, n=m.n, status=m.status, corrected=m.corrected)


def compare_reports(reports: Sequence[AuditReport], samples: Sequence[Samples | None] | None = None,
                    force: bool = False, paths: Sequence[str] | None = None) -> Comparison:
    """Compare ``reports`` (the first is the reference, column A) metric by metric.

    ``samples``: per report, probe id -> sample records (``load_samples``), or None; with them, each
    metric that names a per-item ``outcome`` and was measured on the same items in a column and in
    the reference gets ``diff_reports``' paired test (McNemar's exact test for a rate, a paired
    bootstrap for a mean). The p-values of every such test with a direction, across all columns,
    are corrected together with Holm's method (family-wise alpha 0.05). A metric a report lacks is
    an empty cell. ``paths`` name the reports in messages and in the columns. Reports of different
    taxonomies or probe versions raise IncomparableReports unless ``force``."""
    if len(reports) < 2:
        raise ValueError(f"a comparison needs at least 2 reports, got {len(reports)}")
    if samples is not None and len(samples) != len(reports):
        raise ValueError(f"{len(samples)} samples mappings for {len(reports)} reports")
    if paths is not None and len(paths) != len(reports):
        raise ValueError(f"{len(paths)} paths for {len(reports)} reports")
    labels = _labels(reports)
    names = list(paths) if paths is not None else [f"{column_key(i)} ({lab})" for i, lab in enumerate(labels)]
    forced = ""
    try:
        _check_comparable(reports, names)
    except IncomparableReports as exc:
        if not force:
            raise
        forced = str(exc).removesuffix("; use --force to compare anyway")
    columns = [CompareColumn(key=column_key(i), label=labels[i], model=r.model.id, run=r.run.id,
                             parameters=r.model.parameters, report=paths[i] if paths is not None else "",
                             status=r.summary.status, smoke=r.run.smoke) for i, r in enumerate(reports)]
    metrics = [{(p.id, m.name): m for p in r.probes for m in p.metrics} for r in reports]
    rows: list[CompareRow] = []
    for key in dict.fromkeys(k for ms in metrics for k in ms):
        first = next(ms[key] for ms in metrics if key in ms)
        cells = [_cell(ms[key]) if key in ms else None for ms in metrics]
        row = CompareRow(probe=key[0], metric=key[1], unit=first.unit, higher_is_better=first.higher_is_better,
                         bars=first.threshold, cells=cells, figure=_figure(cells))
        _rank(row)
        rows.append(row)
    by_key = {(r.probe, r.metric): r for r in rows}
    family: list[tuple[PairedTest, bool]] = []  # (test, higher is better)
    for j in range(1, len(reports)):
        d = diff_reports(reports[0], reports[j], force=True,
                         old_samples=samples[0] if samples else None, new_samples=samples[j] if samples else None)
        for md in d.metrics:
            row = by_key[(md.probe, md.metric)]
            if row.cells[0] is None or row.cells[j] is None:
                continue
            if md.test in ("mcnemar", "paired-bootstrap"):
                t = PairedTest(column=j, test=md.test, p_value=md.p_value, n_paired=md.n_paired, delta=md.delta,
                               delta_ci=md.delta_ci)
                if row.higher_is_better is None:
                    t.verdict = "informational"
                else:
                    family.append((t, row.higher_is_better))
            else:
                t = PairedTest(column=j, test="none", delta=md.delta, note=md.note or "not paired")
            row.tests.append(t)
    for (t, hib), p in zip(family, holm([1.0 if t.p_value is None else t.p_value for t, _ in family])):
        t.p_holm = p
        if p > FAMILY_ALPHA or not t.delta:
            t.verdict = "unchanged"
        else:
            t.verdict = "better" if (t.delta > 0) == hib else "worse"
    return Comparison(columns=columns, rows=rows, holm_family=len(family), forced=forced)
