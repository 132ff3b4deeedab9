"""``lm-audit compare`` as Markdown and JSON (the HTML page: ``reports._compare_html``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from reports._compare import CompareColumn, CompareRow, Comparison, PairedTest
from reports._escape import code_span
from reports._escape import escape_markdown as esc
from reports._markdown import _ci, _fmt
from reports._schema import Interval, Status, Threshold

TEST_NAMES = {"mcnemar": "McNemar", "paired-bootstrap": "paired bootstrap", "none": "not paired"}


def code(text: str) -> str:
    return code_span(text, table=True)


def parameters_short(n: int | None) -> str:
    """1234567 -> "1.23M"; None -> "unknown"."""
    if n is None:
        return "unknown"
    for size, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if abs(n) >= size:
            return f"{n / size:.3g}{suffix}"
    return str(n)


def direction(hib: bool | None) -> str:
    return "informational" if hib is None else ("higher is better" if hib else "lower is better")


def bars_text(bars: Threshold | None) -> str:
    if bars is None or (bars.warn is None and bars.fail is None):
        return "no bars"
    parts = [f"{kind} {value:g}" for kind, value in (("warn", bars.warn), ("fail", bars.fail)) if value is not None]
    return ", ".join(parts)


def p_text(p: float | None) -> str:
    return "—" if p is None else ("<0.0001" if p < 1e-4 else f"{p:.4f}")


def signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def column_heading(c: CompareColumn) -> str:
    return f"{c.key} · {code(c.label)}"


def verdict_text(t: PairedTest, reference: str) -> str:
    if t.verdict in ("better", "worse"):
        return f"significantly {t.verdict} than {reference}"
    return {"unchanged": "no significant difference", "informational": "no direction"}.get(t.verdict or "", "—")


def _cell(row: CompareRow, i: int) -> str:
    c = row.cells[i]
    if c is None:
        return "—"
    text = f"{_fmt(c.value, row.unit)} {_ci(c.ci)} (n={c.n})"
    if c.corrected is not None:
        text += ("; corrected n/a (scorer too weak)" if c.corrected.value is None
                 else f"; corrected {_fmt(c.corrected.value, row.unit)} {_ci(c.corrected.ci)}")
    if c.status is not None:
        text += f" {c.status.value}"
    if i in row.best:
        text += " **best**"
    if i in row.worst:
        text += " **worst**"
    return text


def _interval(ci: Interval | None) -> str:
    return "" if ci is None else f" [{ci.low:+.3f}, {ci.high:+.3f}]"


def _status(s: Status) -> str:
    return f"**{s.value}**"


def render_compare_markdown(c: Comparison) -> str:
    """The comparison as GitHub-flavoured Markdown: the reports, one table with a row per metric and
    a column per report, the paired tests against column A, and (when the models' sizes differ)
    each gated metric by model size. Ids and names are code spans, other report text is escaped."""
    ref = c.columns[0]
    lines = [f"# Comparison of {len(c.columns)} audits", ""]
    if c.forced:
        lines += [f"**Compared with --force**: {esc(c.forced)}, so some rows may not measure the same thing "
                  "(the first difference found is named).", ""]
    lines += ["| column | model | run | parameters | status | report |", "|---|---|---|---|---|---|"]
    for col in c.columns:
        status = _status(col.status) + (" (smoke run: --limit)" if col.smoke else "")
        params = "unknown" if col.parameters is None else f"{col.parameters:,} ({parameters_short(col.parameters)})"
        lines.append(f"| {col.key} | {code(col.model)} | {code(col.run)} | {params} | {status} | "
                     f"{code(col.report) if col.report else '—'} |")
    lines += ["", "Each cell: value [95% interval] (n), then the metric's status; a scorer-measured rate also shows "
              "its figure corrected for the scorer's errors, which gates read. **best** and **worst** mark the "
              "extremes of a row with a direction when its values differ (on the corrected figure when every "
              "report has one). — : the report has no such metric.", ""]
    lines += ["| probe · metric | unit | direction | bars | " + " | ".join(column_heading(col) for col in c.columns)
              + " |", "|---|---|---|---|" + "---|" * len(c.columns)]
    for row in c.rows:
        lines.append(f"| {code(row.probe)} · {code(row.metric)} | {esc(row.unit)} | {direction(row.higher_is_better)} "
                     f"| {bars_text(row.bars)} | " + " | ".join(_cell(row, i) for i in range(len(c.columns))) + " |")
    lines += ["", *_paired_section(c, ref)]
    scale = c.scale_rows
    if scale:
        lines += ["", *_scale_section(c, scale)]
    return "\n".join(lines) + "\n"


def _paired_section(c: Comparison, ref: CompareColumn) -> list[str]:
    tested = [(row, t) for row in c.rows for t in row.tests if t.test != "none"]
    lines = [f"## Paired tests against {ref.key} ({code(ref.label)})", "",
             f"{len(tested)} metric comparison(s) on the same items, from the runs' samples files (McNemar's exact "
             f"test for rates, a paired bootstrap for means); Holm's correction over the {c.holm_family} of them "
             f"with a direction, family-wise α = {c.alpha:g}. delta: the column's value minus {ref.key}'s.", ""]
    if tested:
        lines += ["| probe · metric | column | test | n paired | delta [95% CI] | p | p (Holm) | verdict |",
                  "|---|---|---|---|---|---|---|---|"]
        for row, t in tested:
            col = c.columns[t.column]
            lines.append(f"| {code(row.probe)} · {code(row.metric)} | {column_heading(col)} | {TEST_NAMES[t.test]} | "
                         f"{t.n_paired} | {signed(t.delta)}{_interval(t.delta_ci)} | {p_text(t.p_value)} | "
                         f"{p_text(t.p_holm)} | {verdict_text(t, ref.key)} |")
    reasons: dict[str, list[str]] = {}
    for row in c.rows:
        for t in row.tests:
            if t.test == "none":
                reasons.setdefault(t.note, []).append(f"{code_span(row.probe)} · {code_span(row.metric)} "
                                                      f"({c.columns[t.column].key})")
    if reasons:
        lines += ["", "Not paired:"]
        lines += [f"- {esc(note)}: {', '.join(which)}" for note, which in reasons.items()]
    return lines


def scale_points(c: Comparison, row: CompareRow) -> list[tuple[CompareColumn, int, float, Interval | None]]:
    """(column, its index, value, interval) of each column with a positive parameter count and a
    value on the row's figure, smallest model first."""
    out = []
    for i, col in enumerate(c.columns):
        value, ci = row.shown(i)
        if col.parameters is not None and col.parameters > 0 and value is not None:
            out.append((col, i, value, ci))
    return sorted(out, key=lambda p: (p[0].parameters or 0, p[1]))


def _scale_section(c: Comparison, rows: Sequence[CompareRow]) -> list[str]:
    left_out = [col.key for col in c.columns if col.parameters is None or col.parameters <= 0]
    lines = ["## Against model size", "",
             "Each gated metric by the models' parameter counts, smallest first (the HTML format draws them)."
             + (f" Left out, no parameter count: {', '.join(left_out)}." if left_out else ""), ""]
    for row in rows:
        figure = " (corrected)" if row.figure == "corrected" else ""
        points = "; ".join(f"{col.key} {parameters_short(col.parameters)}: {_fmt(v, row.unit)} {_ci(ci)}"
                           for col, _, v, ci in scale_points(c, row))
        lines.append(f"- {code_span(row.probe)} · {code_span(row.metric)}{figure} ({bars_text(row.bars)}): {points}")
    return lines


def render_compare_json(c: Comparison) -> str:
    """The comparison as JSON, ASCII only (every other character escaped), so it is inert when printed."""
    return json.dumps(c.model_dump(mode="json"), indent=2, ensure_ascii=True)
