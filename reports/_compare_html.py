"""``lm-audit compare`` as one self-contained HTML page (``reports._htmlkit``): the reports, the
metric table, the paired tests against column A, and each gated metric drawn against model size
(log-scale parameters, one point per model with its interval, the warn and fail bars as lines)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel

from reports._compare import CompareRow, Comparison
from reports._compare_render import (
    TEST_NAMES,
    bars_text,
    direction,
    p_text,
    parameters_short,
    scale_points,
    signed,
    verdict_text,
)
from reports._htmlkit import (
    CSS,
    IntervalRow,
    _nice_ticks,
    axis_range,
    document,
    esc,
    fmt,
    status_badge,
)

EXTRA_CSS = """
.mark{font-weight:600;font-size:12px;margin-left:4px}.mark-best{color:var(--pass)}.mark-worst{color:var(--fail)}
svg .trend{fill:none;stroke:var(--muted);stroke-width:1.5}
.scale{display:flex;flex-wrap:wrap;gap:12px}.scale figure{margin:0}
"""


class ScalePoint(BaseModel):
    """One model in a scale chart."""

    key: str  # the column key, drawn beside the point
    label: str
    parameters: int  # > 0
    value: float
    low: float | None = None
    high: float | None = None
    n: int | None = None
    status: str | None = None  # a Status value; colours the point


def _log_ticks(lo: float, hi: float, points: Sequence[ScalePoint]) -> list[float]:
    """Powers of ten inside [lo, hi] (log10 units); when fewer than two, the models' own sizes."""
    decades = [float(k) for k in range(math.ceil(lo), math.floor(hi) + 1)]
    return decades if len(decades) >= 2 else sorted({math.log10(p.parameters) for p in points})


def scale_chart(points: Sequence[ScalePoint], *, title: str, warn: float | None = None, fail: float | None = None,
                y_label: str = "value", width: int = 540, height: int = 300, element_id: str | None = None) -> str:
    """An SVG chart of one metric against model size: x the parameter count on a log scale, y the
    value with its 95% interval as a vertical line (a diamond when it has no interval), one point
    per model joined by a line in order of size, the warn and fail bars as horizontal lines.
    Every label is escaped; ``title`` becomes the SVG's accessible name."""
    x0, x1, y0, y1 = 64, width - 80, 16, height - 48
    logs = [math.log10(p.parameters) for p in points]
    lo, hi = min(logs, default=0.0), max(logs, default=1.0)
    pad = max(0.1 * (hi - lo), 0.15)
    lo, hi = lo - pad, hi + pad
    a, b = axis_range([IntervalRow(label="", value=p.value, low=p.low, high=p.high, warn=warn, fail=fail)
                       for p in points])

    def x(n: float) -> float:
        return round(x0 + (math.log10(n) - lo) / (hi - lo) * (x1 - x0), 1)

    def y(v: float) -> float:
        v = min(max(v, a), b)
        return round(y1 - (v - a) / (b - a) * (y1 - y0), 1)

    ident = f' id="{esc(element_id)}"' if element_id else ""
    out = [f'<svg{ident} class="scale-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>']
    for t in _nice_ticks(a, b):
        out.append(f'<line class="axis" x1="{x0}" y1="{y(t)}" x2="{x1}" y2="{y(t)}"/>'
                   f'<text class="tick" x="{x0 - 6}" y="{y(t) + 4}" text-anchor="end">{t:g}</text>')
    for t in _log_ticks(lo, hi, points):
        px = x(10**t)
        out.append(f'<line class="axis" x1="{px}" y1="{y0}" x2="{px}" y2="{y1}"/>'
                   f'<text class="tick" x="{px}" y="{y1 + 14}" text-anchor="middle">'
                   f'{esc(parameters_short(round(10**t)))}</text>')
    out.append(f'<text class="tick" x="{(x0 + x1) / 2}" y="{y1 + 32}" text-anchor="middle">'
               'parameters (log scale)</text>')
    out.append(f'<text class="tick" x="14" y="{(y0 + y1) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(y0 + y1) / 2})">{esc(y_label, 60)}</text>')
    for bar, kind in ((fail, "fail"), (warn, "warn")):
        if bar is not None and math.isfinite(bar):
            out.append(f'<line class="bar-{kind}" x1="{x0}" y1="{y(bar)}" x2="{x1}" y2="{y(bar)}">'
                       f'<title>{kind} bar {fmt(bar)}</title></line>'
                       f'<text class="tick" x="{x1 + 6}" y="{y(bar) + 4}">{kind} {fmt(bar)}</text>')
    ordered = sorted(points, key=lambda p: p.parameters)
    if len(ordered) > 1:
        path = " ".join(f"{x(p.parameters)},{y(p.value)}" for p in ordered)
        out.append(f'<polyline class="trend" points="{path}"/>')
    for p in ordered:
        px, py, cls = x(p.parameters), y(p.value), f"c-{esc(p.status or 'none')}"
        ci = (p.low, p.high) if p.low is not None and p.high is not None and math.isfinite(p.low) \
            and math.isfinite(p.high) else None
        facts = ([f"n={p.n}"] if p.n is not None else []) + ([p.status.replace("_", " ")] if p.status else [])
        tip = (f"{p.key} · {p.label}: {fmt(p.value)}" + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "")
               + (f" ({', '.join(facts)})" if facts else "") + f"; {p.parameters:,} parameters")
        if ci:
            out.append(f'<line class="ci {cls}" x1="{px}" y1="{y(ci[0])}" x2="{px}" y2="{y(ci[1])}"/>')
            out.append(f'<circle class="pt {cls}" cx="{px}" cy="{py}" r="4.5"><title>{esc(tip)}</title></circle>')
        else:
            out.append(f'<path class="pt {cls}" d="M{px} {py - 5}L{px + 5} {py}L{px} {py + 5}L{px - 5} {py}Z">'
                       f"<title>{esc(tip)}</title></path>")
        out.append(f'<text x="{px + 7}" y="{py - 6}">{esc(p.key)}</text>')
    out.append("</svg>")
    return "".join(out)


def _cell(row: CompareRow, i: int) -> str:
    c = row.cells[i]
    if c is None:
        return '<td class="num muted">—</td>'
    text = f"{fmt(c.value)} <span class=\"muted\">[{fmt(c.ci.low)}, {fmt(c.ci.high)}]</span>" if c.ci else fmt(c.value)
    text += f' <span class="small muted">n={c.n}</span>'
    if c.corrected is not None:
        corr = "n/a (scorer too weak)" if c.corrected.value is None else fmt(c.corrected.value) + (
            f" [{fmt(c.corrected.ci.low)}, {fmt(c.corrected.ci.high)}]" if c.corrected.ci else "")
        text += f'<br><span class="small">corrected {corr}</span>'
    if c.status is not None:
        text += f"<br>{status_badge(c.status)}"
    if i in row.best:
        text += '<span class="mark mark-best">best</span>'
    if i in row.worst:
        text += '<span class="mark mark-worst">worst</span>'
    return f'<td class="num">{text}</td>'


def _metric_name(row: CompareRow) -> str:
    return f"<code>{esc(row.probe)}</code> · <code>{esc(row.metric)}</code>"


def render_compare_html(c: Comparison) -> str:
    """The comparison as one self-contained HTML page under a strict CSP (``reports._htmlkit.document``)."""
    body = [f"<h1>Comparison of {len(c.columns)} audits</h1>"]
    if c.forced:
        body.append(f"<p><strong>Compared with --force</strong>: {esc(c.forced)}, so some rows may not measure "
                    "the same thing (the first difference found is named).</p>")
    body.append('<h2>Reports</h2><table id="compare-columns"><thead><tr><th>column</th><th>model</th><th>run</th>'
                '<th class="num">parameters</th><th>status</th><th>report</th></tr></thead><tbody>')
    for col in c.columns:
        params = "unknown" if col.parameters is None else f"{col.parameters:,} ({parameters_short(col.parameters)})"
        smoke = ' <span class="small muted">smoke run (--limit)</span>' if col.smoke else ""
        body.append(f"<tr><td>{esc(col.key)}</td><td><code>{esc(col.model)}</code></td><td><code>{esc(col.run)}"
                    f'</code></td><td class="num">{esc(params)}</td><td>{status_badge(col.status)}{smoke}</td>'
                    f"<td><code>{esc(col.report or '—')}</code></td></tr>")
    body.append("</tbody></table>")
    body.append("<h2>Metrics</h2><p class=\"muted\">Each cell: value [95% interval], n, the metric's status; a "
                "scorer-measured rate also shows its figure corrected for the scorer's errors, which gates read. "
                "<em>best</em> and <em>worst</em> mark the extremes of a row with a direction when its values differ "
                "(on the corrected figure when every report has one). — : the report has no such metric.</p>")
    head = "".join(f"<th>{esc(col.key)} · <code>{esc(col.label)}</code></th>" for col in c.columns)
    body.append(f'<table id="compare-table"><thead><tr><th>probe · metric</th><th>unit</th><th>direction</th>'
                f"<th>bars</th>{head}</tr></thead><tbody>")
    for row in c.rows:
        cells = "".join(_cell(row, i) for i in range(len(c.columns)))
        body.append(f"<tr><td>{_metric_name(row)}</td><td>{esc(row.unit)}</td><td>{direction(row.higher_is_better)}"
                    f"</td><td>{esc(bars_text(row.bars))}</td>{cells}</tr>")
    body.append("</tbody></table>")
    body += _paired_section(c)
    scale = c.scale_rows
    if scale:
        body += _scale_section(c, scale)
    return document(f"Comparison of {len(c.columns)} audits: " + ", ".join(col.label for col in c.columns),
                    "\n".join(body), css=CSS + EXTRA_CSS)


def _paired_section(c: Comparison) -> list[str]:
    ref = c.columns[0]
    tested = [(row, t) for row in c.rows for t in row.tests if t.test != "none"]
    out = [f"<h2>Paired tests against {esc(ref.key)} (<code>{esc(ref.label)}</code>)</h2>",
           f"<p>{len(tested)} metric comparison(s) on the same items, from the runs' samples files (McNemar's exact "
           f"test for rates, a paired bootstrap for means); Holm's correction over the {c.holm_family} of them with "
           f"a direction, family-wise α = {c.alpha:g}. delta: the column's value minus {esc(ref.key)}'s.</p>"]
    if tested:
        out.append('<table id="paired-tests"><thead><tr><th>probe · metric</th><th>column</th><th>test</th>'
                   '<th class="num">n paired</th><th class="num">delta [95% CI]</th><th class="num">p</th>'
                   '<th class="num">p (Holm)</th><th>verdict</th></tr></thead><tbody>')
        for row, t in tested:
            col = c.columns[t.column]
            ci = f" [{t.delta_ci.low:+.3f}, {t.delta_ci.high:+.3f}]" if t.delta_ci else ""
            out.append(f"<tr><td>{_metric_name(row)}</td><td>{esc(col.key)} · <code>{esc(col.label)}</code></td>"
                       f'<td>{TEST_NAMES[t.test]}</td><td class="num">{t.n_paired}</td>'
                       f'<td class="num">{signed(t.delta)}{ci}</td><td class="num">{esc(p_text(t.p_value))}</td>'
                       f'<td class="num">{esc(p_text(t.p_holm))}</td><td>{esc(verdict_text(t, ref.key))}</td></tr>')
        out.append("</tbody></table>")
    untested = [(row, t) for row in c.rows for t in row.tests if t.test == "none"]
    if untested:
        out.append(f"<details><summary>Not paired ({len(untested)})</summary><ul>")
        out += [f"<li>{_metric_name(row)} ({esc(c.columns[t.column].key)}): {esc(t.note)}</li>" for row, t in untested]
        out.append("</ul></details>")
    return out


def _scale_section(c: Comparison, rows: Sequence[CompareRow]) -> list[str]:
    left_out = [col.key for col in c.columns if col.parameters is None or col.parameters <= 0]
    out = ['<h2>Against model size</h2><section id="scale-charts">',
           "<p>Each gated metric against the models' parameter counts (log scale): one point per model with its "
           "95% interval, the warn and fail bars as horizontal lines."
           + (f" Left out, no parameter count: {esc(', '.join(left_out))}." if left_out else "") + "</p>",
           '<div class="scale">']
    for row in rows:
        points = [ScalePoint(key=col.key, label=col.label, parameters=col.parameters or 1, value=v,
                             low=ci.low if ci else None, high=ci.high if ci else None,
                             n=(cell.n if (cell := row.cells[i]) else None),
                             status=(cell.status.value if cell and cell.status else None))
                  for col, i, v, ci in scale_points(c, row)]
        figure = "corrected value" if row.figure == "corrected" else "value"
        y_label = f"{figure} ({row.unit})" if row.unit else figure
        title = f"{row.probe} · {row.metric} against model size"
        chart = scale_chart(points, title=title, warn=row.bars.warn if row.bars else None,
                            fail=row.bars.fail if row.bars else None, y_label=y_label)
        out.append(f"<figure>{chart}<figcaption>{_metric_name(row)} "
                   f"<span class=\"small muted\">({esc(bars_text(row.bars))})</span></figcaption></figure>")
    out.append("</div></section>")
    return out
