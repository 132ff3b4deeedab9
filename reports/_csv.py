"""Spreadsheet exports: one row per metric of a report, and a probe's samples flattened.

Cells are sanitised text; a text cell that a spreadsheet would read as a formula (starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is prefixed with ``'``, so a model id or
a model output cannot run in the reader's spreadsheet. Numbers are written as numbers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from reports._sanitize import sanitize_text
from reports._schema import AuditReport

METRIC_COLUMNS = ("probe", "probe_version", "risks", "probe_status", "metric", "status", "value", "ci_low", "ci_high",
                  "ci_level", "n", "unit", "higher_is_better", "warn", "fail", "chance", "corrected_value",
                  "corrected_low", "corrected_high", "description")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = sanitize_text(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _write(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return buf.getvalue()


def render_metrics_csv(report: AuditReport) -> str:
    """One row per metric of every probe: value, interval, n, bars, status, corrected figure."""
    rows = []
    for p in report.probes:
        for m in p.metrics:
            t, c = m.threshold, m.corrected
            rows.append([p.id, p.version, " ".join(p.risks), p.status.value, m.name,
                         m.status.value if m.status else "", m.value, m.ci.low if m.ci else None,
                         m.ci.high if m.ci else None, m.ci.level if m.ci else None, m.n, m.unit,
                         m.higher_is_better, t.warn if t else None, t.fail if t else None, m.chance,
                         c.value if c else None, c.ci.low if c and c.ci else None, c.ci.high if c and c.ci else None,
                         m.description])
    return _write(METRIC_COLUMNS, rows)


def render_samples_csv(records: Sequence[dict[str, Any]]) -> str:
    """A probe's samples (its samples/PROBE.jsonl records) as CSV: one row per sample, one column per
    top-level field in first-seen order; nested values as JSON text."""
    header: list[str] = []
    for r in records:
        header += [k for k in r if k not in header]
    return _write(header, ([r.get(k) for k in header] for r in records))


__all__ = ["METRIC_COLUMNS", "render_metrics_csv", "render_samples_csv"]
