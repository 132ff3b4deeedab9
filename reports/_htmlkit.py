"""Parts shared by the HTML renderers (the report, ``lm-audit compare``): a self-contained page
under a strict Content-Security-Policy, escaping, status badges and an SVG interval chart.

The page loads nothing: its one stylesheet and its one script are inline and allowed by their
sha256 in the policy, everything else (other scripts, inline ``style``/event attributes, images,
fonts, frames, fetches) is refused by ``default-src 'none'``. Untrusted text (model outputs,
prompts, names from a user's taxonomy) only ever enters through ``esc``: as text, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Sequence

from pydantic import BaseModel

from reports._sanitize import sanitize_text
from reports._schema import Status

CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa;
--pass:#1a7f37;--warn:#9a6700;--fail:#cf222e;--inconclusive:#bc4c00;--error:#82071e;
--incomplete:#6639ba;--not_evaluated:#818b98;--manual:#0969da}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;max-width:1180px;padding:16px 24px 48px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid var(--line);
padding-bottom:4px}h3{font-size:16px;margin:18px 0 6px}h4{font-size:14px;margin:12px 0 4px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.muted{color:var(--muted)}.small{font-size:12px}
table{border-collapse:collapse;margin:6px 0 12px;width:100%}
th,td{border:1px solid var(--line);padding:4px 7px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.st{display:inline-block;border-radius:10px;padding:0 7px;font-size:12px;font-weight:600;
white-space:nowrap;border:1px solid currentColor}
.st::before{content:"";display:inline-block;width:8px;height:8px;border-radius:50%;
background:currentColor;margin-right:4px;vertical-align:0}
.st-pass{color:var(--pass)}.st-warn{color:var(--warn)}.st-fail{color:var(--fail)}
.st-inconclusive{color:var(--inconclusive)}.st-error{color:var(--error)}
.st-incomplete{color:var(--incomplete)}.st-not_evaluated{color:var(--not_evaluated)}
.st-manual{color:var(--manual)}
.st-not_evaluated::before,.st-manual::before{background:transparent;border:1.5px dashed currentColor}
.st-none{color:var(--muted)}.st-none::before{display:none}
details{border:1px solid var(--line);border-radius:6px;padding:4px 10px;margin:8px 0}
details>summary{cursor:pointer;font-weight:600}
details[open]>summary{margin-bottom:6px}
.text{white-space:pre-wrap;word-break:break-word;max-height:16em;overflow:auto}
svg{max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;fill:var(--fg)}
svg .axis{stroke:var(--line)}svg .tick{fill:var(--muted)}
svg .bar-fail{stroke:var(--fail);stroke-width:2;stroke-dasharray:4 2}
svg .bar-warn{stroke:var(--warn);stroke-width:2;stroke-dasharray:2 2}
svg .ci{stroke-width:2.5}svg .band{fill:var(--soft)}
.c-pass{stroke:var(--pass);fill:var(--pass)}.c-warn{stroke:var(--warn);fill:var(--warn)}
.c-fail{stroke:var(--fail);fill:var(--fail)}.c-inconclusive{stroke:var(--inconclusive);fill:var(--inconclusive)}
.c-error{stroke:var(--error);fill:var(--error)}.c-incomplete{stroke:var(--incomplete);fill:var(--incomplete)}
.c-not_evaluated,.c-manual,.c-none{stroke:var(--not_evaluated);fill:var(--not_evaluated)}
input[type=search]{font:inherit;padding:3px 7px;border:1px solid var(--line);border-radius:6px;width:22em}
@media print{body{max-width:none;padding:0}details{border:none;padding:0}
input[type=search]{display:none}.text{max-height:none;overflow:visible}
h2,h3{break-after:avoid}tr,svg{break-inside:avoid}}
"""

# Opens every collapsed section before printing, so a printout holds the whole report.
PRINT_SCRIPT = ('window.addEventListener("beforeprint",function(){'
                'document.querySelectorAll("details").forEach(function(d){d.open=true;});});')


def esc(text: object, max_chars: int | None = None) -> str:
    """``text`` as inert HTML text: control characters, escape sequences and bidi overrides dropped
    (``sanitize_text``), cut to ``max_chars`` (marked), then ``&<>"'`` as entities, so it is safe
    as element text and inside a quoted attribute value."""
    s = sanitize_text(str(text))
    if max_chars is not None and len(s) > max_chars:
        s = s[:max_chars] + " [...]"
    return html.escape(s, quote=True)


def csp_hash(source: str) -> str:
    """The CSP source expression that allows exactly this inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


def document(title: str, body: str, script: str = "", css: str = CSS) -> str:
    """A whole HTML page: ``body`` (already-escaped markup) under a policy that allows only the
    given inline stylesheet and script. ``title`` is escaped here."""
    script = PRINT_SCRIPT + ("\n" + script if script else "")
    policy = (f"default-src 'none'; style-src {csp_hash(css)}; script-src {csp_hash(script)}; "
              "img-src 'none'; base-uri 'none'; form-action 'none'")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"referrer\" content=\"no-referrer\">\n"
            f"<title>{esc(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n{body}\n"
            f"<script>{script}</script>\n</body>\n</html>\n")


def status_badge(status: Status | str | None) -> str:
    """A status as a coloured pill that also says the status in words (colour is never the only signal)."""
    if status is None:
        return '<span class="st st-none">—</span>'
    value = status.value if isinstance(status, Status) else str(status)
    word = value.replace("_", " ")
    return f'<span class="st st-{esc(value)}">{esc(word)}</span>'


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if abs(value) >= 1000 or (value != 0 and abs(value) < 10 ** -digits):
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}"


class IntervalRow(BaseModel):
    """One row of an interval chart: a point with its interval, optional bars, a status."""

    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    status: str | None = None  # a Status value; colours the point and the interval
    warn: float | None = None
    fail: float | None = None
    note: str = ""  # shown at the row's right end (e.g. "n=120")


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def axis_range(rows: Sequence[IntervalRow], lo: float | None = None, hi: float | None = None) -> tuple[float, float]:
    """The span that shows every point, interval end and bar of ``rows`` (padded by 5%), unless
    ``lo``/``hi`` fix it."""
    xs = [x for r in rows for x in (r.value, r.low, r.high, r.warn, r.fail) if x is not None and math.isfinite(x)]
    a = min(xs, default=0.0) if lo is None else lo
    b = max(xs, default=1.0) if hi is None else hi
    if b <= a:
        a, b = a - 0.5, b + 0.5
    pad = 0.05 * (b - a)
    return (a if lo is not None else a - pad), (b if hi is not None else b + pad)


def interval_chart(rows: Sequence[IntervalRow], *, title: str, lo: float | None = None, hi: float | None = None,
                   axis_label: str = "", label_width: int = 300, width: int = 860, row_height: int = 22,
                   element_id: str | None = None) -> str:
    """An SVG forest plot: one row per ``IntervalRow`` on a shared horizontal axis, the point as a
    dot (a diamond when it has no interval), the 95% interval as a line, the fail bar as a dashed
    red tick and the warn bar as a dotted amber one. Every label is escaped; ``title`` becomes the
    SVG's accessible name. Each row's marks are grouped in one ``<g class="row">``."""
    a, b = axis_range(rows, lo, hi)
    plot_x0, plot_x1 = label_width, width - 130  # room at the right for "inconclusive · n=1234"
    top, height = 8, 8 + row_height * max(len(rows), 1) + 34

    def x(v: float) -> float:
        v = min(max(v, a), b)
        return round(plot_x0 + (v - a) / (b - a) * (plot_x1 - plot_x0), 1)

    ident = f' id="{esc(element_id)}"' if element_id else ""
    out = [f'<svg{ident} xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>']
    bottom = top + row_height * max(len(rows), 1)
    out += [f'<rect class="band" x="0" y="{top + row_height * i}" width="{width}" height="{row_height}"/>'
            for i in range(0, len(rows), 2)]
    for t in _nice_ticks(a, b):
        out.append(f'<line class="axis" x1="{x(t)}" y1="{top}" x2="{x(t)}" y2="{bottom}"/>'
                   f'<text class="tick" x="{x(t)}" y="{bottom + 14}" text-anchor="middle">{t:g}</text>')
    if axis_label:
        out.append(f'<text class="tick" x="{(plot_x0 + plot_x1) / 2}" y="{bottom + 30}" '
                   f'text-anchor="middle">{esc(axis_label)}</text>')
    for i, r in enumerate(rows):
        y = top + row_height * i + row_height / 2
        cls = f"c-{esc(r.status or 'none')}"
        out.append('<g class="row">')  # one per row, so a reader (or a test) can count and address rows
        out.append(f'<text x="{plot_x0 - 8}" y="{y + 4}" text-anchor="end">{esc(r.label, 60)}</text>')
        for bar, kind in ((r.fail, "fail"), (r.warn, "warn")):
            if bar is not None and math.isfinite(bar):
                out.append(f'<line class="bar-{kind}" x1="{x(bar)}" y1="{y - row_height / 2 + 2}" '
                           f'x2="{x(bar)}" y2="{y + row_height / 2 - 2}"><title>{kind} bar {fmt(bar)}</title></line>')
        if r.low is not None and r.high is not None and math.isfinite(r.low) and math.isfinite(r.high):
            out.append(f'<line class="ci {cls}" x1="{x(r.low)}" y1="{y}" x2="{x(r.high)}" y2="{y}"/>')
        if r.value is not None and math.isfinite(r.value):
            tip = f"{r.label}: {fmt(r.value)}"
            if r.low is not None and r.high is not None:
                tip += f" [{fmt(r.low)}, {fmt(r.high)}]"
            if r.status:
                tip += f" ({r.status.replace('_', ' ')})"
            if r.low is None or r.high is None:
                px = x(r.value)
                shape = (f'<path class="{cls}" d="M{px} {y - 5}L{px + 5} {y}L{px} {y + 5}L{px - 5} {y}Z">')
                out.append(f"{shape}<title>{esc(tip)}</title></path>")
            else:
                out.append(f'<circle class="{cls}" cx="{x(r.value)}" cy="{y}" r="4.5"><title>{esc(tip)}</title></circle>')
        label = r.note or ("" if r.value is not None else "n/a")
        if r.status:
            label = (r.status.replace("_", " ") + (" · " + label if label else ""))
        if label:
            out.append(f'<text class="tick" x="{plot_x1 + 8}" y="{y + 4}">{esc(label, 24)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
