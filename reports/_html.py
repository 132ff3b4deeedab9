"""Render an AuditReport as one self-contained HTML page (``report.html``): the facts of the
Markdown report, laid out for a reviewer, from the report alone (no model, no taxonomy file).

The page is built with ``reports._htmlkit``: it loads nothing, runs under a hash-based
Content-Security-Policy, and every string of the report (model text, prompts, ids, names from a
user's taxonomy, errors) enters through ``esc``, as element text or a quoted attribute value.

Order: header (status, model, run, banners, release gate), the coverage grid and the forest plot
(kept compact so both start on the first screen), findings by risk, one section per probe,
scorers, PII, methodology, the manual review checklist, errors, environment.

What other code (the browser tests) may rely on:

- ``#status-grid``: the coverage grid. One ``.area-row`` per area; each risk is one
  ``li.cell.s-<status>`` holding a link ``a[href="#risk-<id>"]`` and a status badge
  ``.st.st-<status>`` that says the status in words.
- ``#forest-plot``: a ``<section>`` wrapping every forest chart, one ``<figure class="forest">``
  per scale: first rates and shares on a fixed 0..1 axis, then one chart per other unit, each
  with its own axis. Each gated metric is one ``g.row`` of an SVG.
- ``#risk-<id>`` (findings of a risk) and ``#probe-<id>`` (a probe's ``<section>``, its body in a
  ``<details>``, open when the probe failed, erred, warned or was inconclusive). Whitespace in an
  id becomes ``_``; dots stay (use ``getElementById``, or escape them in a selector).
- Worst examples: ``input.example-filter`` (type search) immediately followed by
  ``table.examples``; typing hides (``hidden``) the body rows whose text does not contain the
  box's text, case-insensitively.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from reports._htmlkit import (
    CSS,
    IntervalRow,
    document,
    esc,
    fmt,
    interval_chart,
    status_badge,
)
from reports._markdown import _STATUS_MEANINGS
from reports._schema import (
    AuditReport,
    Example,
    Figure,
    Interval,
    Metric,
    ProbeReport,
    RiskReport,
    ScorerInfo,
    ScorerValidation,
    Status,
)
from reports._status import STATUS_ORDER

# Model text per cell, and examples per probe: keeps a default audit's page well under 1 MB.
_TEXT_CHARS = 2000
_MAX_EXAMPLES = 25
# Probes whose section opens by default: the ones a reviewer must read.
_OPEN = frozenset({Status.fail, Status.error, Status.inconclusive, Status.warn})
# Units drawn on the shared 0..1 axis whatever their values.
_UNIT_SCALE = ("rate", "share")

_REPORT_CSS = """
body{max-width:1260px}
a{color:#0969da}h1 .st{font-size:13px;vertical-align:4px;margin-left:6px}
h1,h3,h4,.grid,.facts dd,.banner,td,li{overflow-wrap:break-word}
table.narrow{width:auto;min-width:24em}
dl.meanings{display:grid;grid-template-columns:max-content 1fr;gap:3px 10px}dl.meanings dd{margin:0}
.facts{display:flex;flex-wrap:wrap;gap:0 16px;margin:2px 0 6px;padding:0;font-size:12.5px}
.facts div{display:flex;gap:4px}.facts dt{color:var(--muted)}.facts dd{margin:0}
.banner{border:1px solid var(--line);border-left-width:4px;border-radius:4px;padding:3px 10px;margin:4px 0;
font-size:13px}.b-warn{border-color:var(--warn);background:#fff8c5}.b-fail{border-color:var(--fail);
background:#ffebe9}.b-info{border-color:var(--manual);background:#ddf4ff}
.gate ul{margin:2px 0 0;padding-left:20px}
nav.toc{font-size:12.5px;margin:6px 0 0}nav.toc a{margin-right:12px}
.overview h2{margin-top:14px}.overview .head{display:flex;flex-wrap:wrap;align-items:baseline;gap:2px 18px;
border-bottom:1px solid var(--line);margin:14px 0 6px}.overview .head h2{border:none;margin:0}
.legend{margin:0;font-size:12px;color:var(--muted);flex:1 1 30em}
.counts{display:flex;flex-wrap:wrap;gap:4px 12px;list-style:none;margin:0;padding:0;font-size:12.5px}
.grid{display:flex;flex-direction:column;gap:4px}
.area-row{display:grid;grid-template-columns:170px minmax(0,1fr);gap:4px}
h3.area-head{font-size:12.5px;margin:0;padding:3px 6px;background:var(--soft);border-radius:4px}
h3.area-head .st{margin-top:2px}
.cells{display:grid;grid-template-columns:repeat(auto-fill,minmax(245px,1fr));gap:4px;list-style:none;margin:0;
padding:0}
.cell{border:1px solid var(--line);border-left:5px solid var(--line);border-radius:4px}
.cell a{display:block;height:100%;padding:2px 6px;color:inherit;text-decoration:none}
.cell a:hover .cell-name,.cell a:focus .cell-name{text-decoration:underline}
.cell-id{font-weight:700;margin-right:4px}.cell-name{display:block;font-size:12px;line-height:1.25}
.cell-auto{color:var(--muted);font-size:11.5px;margin-left:4px}
.cell.s-pass{background:#eefbf1;border-color:#aceebb;border-left-color:var(--pass)}
.cell.s-warn{background:#fff8c5;border-color:#f5e0a0;border-left-color:var(--warn)}
.cell.s-inconclusive{background:#fff1e5;border-color:#ffd8b5;border-left-color:var(--inconclusive)}
.cell.s-fail{background:#ffebe9;border-color:#ffcecb;border-left-color:var(--fail)}
.cell.s-error{background:#ffd8d3;border-color:#ff9492;border-left-color:var(--error)}
.cell.s-incomplete{background:#fbefff;border-color:#e8d5ff;border-left-color:var(--incomplete)}
.cell.s-not_evaluated{background:#f6f8fa;border:1.5px dashed var(--not_evaluated);
border-left:5px dashed var(--not_evaluated)}
.cell.s-manual{background:#f3f9ff;border:1.5px dashed var(--manual);border-left:5px dashed var(--manual)}
.forest{margin:4px 0 10px}figure{margin:4px 0 10px}figcaption{font-size:12.5px;color:var(--muted)}
.risk{border-top:1px solid var(--line);padding:2px 0 4px}.risk h4{margin:8px 0 2px}
.risk ul{margin:2px 0 4px;padding-left:20px}.risk p,.probe p{margin:3px 0}.nw{white-space:nowrap}
summary h3{display:inline;font-size:16px;margin:0}summary .st{margin-left:6px}
details.probe-body>summary{padding:2px 0}
td .sub{display:block;color:var(--muted);font-size:12px}
table.examples td{max-width:32em}table.examples td.id{max-width:12em;word-break:break-all}
caption{text-align:left;font-weight:600;padding:2px 0}
ul.checklist{list-style:none;padding-left:4px}ul.checklist li::before{content:"\\2610\\00a0"}
@media print{nav.toc{display:none}.cell,.banner{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.area-row,.risk,figure{break-inside:avoid}}
"""

_SCRIPT = """(function(){
function apply(box){
  var table=document.getElementById(box.getAttribute("aria-controls"))||box.nextElementSibling;
  if(!table||!table.tBodies.length){return;}
  var q=box.value.trim().toLowerCase(),rows=table.tBodies[0].rows;
  for(var i=0;i<rows.length;i++){rows[i].hidden=q!==""&&rows[i].textContent.toLowerCase().indexOf(q)<0;}
}
document.querySelectorAll("input.example-filter").forEach(function(box){
  box.addEventListener("input",function(){apply(box);});
});
window.addEventListener("beforeprint",function(){
  document.querySelectorAll("input.example-filter").forEach(function(box){box.value="";apply(box);});
});
})();"""


def _anchor(prefix: str, ident: str) -> str:
    """The escaped id of a risk's or probe's anchor (an HTML id holds no whitespace)."""
    return esc(prefix + "-" + re.sub(r"\s", "_", ident))


def _code(text: object) -> str:
    return f"<code>{esc(text)}</code>"


def _ci(ci: Interval | None) -> str:
    if ci is None:
        return "n/a"
    level = "" if abs(ci.level - 0.95) < 1e-9 else f" ({ci.level * 100:.4g}%)"
    return f'<span class="nw">[{fmt(ci.low)}, {fmt(ci.high)}]{level}</span>'


def _ci_how(ci: Interval | None) -> str:
    if ci is None:
        return ""
    return esc(ci.method + (f", clustered by {ci.clusters}" if ci.clusters else ""))


def _figure(f: Figure | None) -> str:
    """A figure on one line: value, interval, n."""
    if f is None:
        return "—"
    return f"{fmt(f.value)} {_ci(f.ci)} <span class=\"muted\">n={f.n}</span>"


def _gated(m: Metric) -> bool:
    """What ``audit.rollup.metric_status`` gives a status: a bar and a direction."""
    t = m.threshold
    return t is not None and (t.warn is not None or t.fail is not None) and m.higher_is_better is not None


def _bars(m: Metric) -> str:
    if not _gated(m):
        return "—"
    assert m.threshold is not None
    sign = "≥" if m.higher_is_better else "≤"
    parts = [f"fail unless {sign} {bar:g}" for bar in (m.threshold.fail,) if bar is not None]
    parts += [f"warn unless {sign} {bar:g}" for bar in (m.threshold.warn,) if bar is not None]
    return "".join(f'<span class="nw">{esc(x)}</span><br>' for x in parts) + \
        f'<span class="sub">{esc(m.threshold.source)}</span>'


def _detectable(m: Metric) -> str:
    """The true value this n flags as fail four times in five (as the Markdown report says it)."""
    if m.detectable is None:
        gated_rate = (m.threshold is not None and m.threshold.fail is not None and m.ci is not None
                      and m.ci.method == "wilson" and m.higher_is_better is not None)
        return "none at this n" if gated_rate else "—"
    return f"{'≤' if m.higher_is_better else '≥'} {m.detectable:.3f}"


def _corrected(m: Metric) -> str:
    if m.corrected is None:
        return "—"
    if m.corrected.value is None:
        return "n/a (scorer too weak to correct)"
    return _figure(m.corrected) + '<span class="sub">gates read this figure</span>'


def _status(m: Metric) -> str:
    """A metric's status badge; an informational metric (no bar) says so in words."""
    return status_badge(m.status) if m.status is not None or _gated(m) else '<span class="muted">informational</span>'


def _value(value: float | None, unit: str) -> str:
    suffix = "" if unit in ("rate", "share", "score", "") else f' <span class="muted">{esc(unit)}</span>'
    return fmt(value) + suffix


def _plotted(m: Metric) -> tuple[float | None, Interval | None, bool]:
    """What a gate reads: the scorer-corrected figure when there is one, else value and interval."""
    if m.corrected is not None:
        return m.corrected.value, m.corrected.ci, True
    return m.value, m.ci, False


def _within_unit(xs: Iterable[float | None]) -> bool:
    return all(x is None or (math.isfinite(x) and 0.0 <= x <= 1.0) for x in xs)


def _scale(m: Metric) -> str:
    """The chart a gated metric goes on: "" for the shared 0..1 axis, else its unit's own."""
    value, ci, _ = _plotted(m)
    t = m.threshold
    xs = [value, ci.low if ci else None, ci.high if ci else None, t.warn if t else None, t.fail if t else None]
    if m.unit in _UNIT_SCALE or _within_unit(xs):
        return ""
    return m.unit or "value"


def _table(caption: str, header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "",
           num: Sequence[int] = ()) -> str:
    """A table of already-escaped cells; ``caption`` is markup too. ``num``: right-aligned columns."""
    right = ' class="num"'
    head = "".join(f'<th scope="col"{right if i in num else ""}>{h}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td{right if i in num else ""}>{c}</td>' for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}><caption>{caption}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.1f}s" if seconds < 120 else f"{int(seconds // 60)}m {seconds % 60:04.1f}s"


def _time_split(model_s: float | None, scoring_s: float | None) -> str:
    parts = ([f"model {model_s:.1f}s"] if model_s is not None else []) + \
        ([f"scoring {scoring_s:.1f}s"] if scoring_s is not None else [])
    return f" ({', '.join(parts)})" if parts else ""


class _Page:
    """The report and the anchors that exist in it (a link is only written to a target that is)."""

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        self.risk_ids = {r.id for a in report.areas for r in a.risks}
        self.probe_ids = {p.id for p in report.probes}

    def risk_link(self, risk_id: str) -> str:
        if risk_id in self.risk_ids:
            return f'<a href="#{_anchor("risk", risk_id)}">{esc(risk_id)}</a>'
        return esc(risk_id)

    def probe_link(self, probe_id: str) -> str:
        if probe_id in self.probe_ids:
            return f'<a href="#{_anchor("probe", probe_id)}">{_code(probe_id)}</a>'
        return _code(probe_id)


# ---- 1. header ---------------------------------------------------------------------------------

def _header(page: _Page) -> str:
    report = page.report
    m, run = report.model, report.run
    fingerprint = {"openai": "behavioural fingerprint", "outputs": "outputs file sha256"}.get(m.backend,
                                                                                             "weights sha256")
    facts = [
        ("model", _code(m.id)),
        ("backend", esc(m.backend)),
        ("parameters", f"{m.parameters:,}" if m.parameters else "unknown"),
        ("dtype / device", esc(f"{m.dtype or 'n/a'} on {m.device or 'n/a'}")),
        ("chat template", "on" if m.chat_template else "off"),
        (fingerprint, _code(m.fingerprint_sha256[:16] or "n/a")),
        ("run", _code(run.id)),
        ("started", esc(run.started_at)),
        ("finished", esc(run.finished_at or "not finished")),
        ("duration", esc(_duration(run.duration_s))),
        ("seed", str(run.seed)),
        ("tool", esc(f"{report.tool.name} {report.tool.version}")),
        ("taxonomy", esc(f"{report.taxonomy.name} {report.taxonomy.version}")),
    ]
    if m.system_prompt_sha256 is not None:  # the deployment's system prompt; its text is under Methodology
        size = f"{len(m.system_prompt):,} chars, " if m.system_prompt is not None else ""
        facts.append(("system prompt", f'<a href="#system-prompt">{_code(m.system_prompt_sha256[:16])}</a> '
                      f"({esc(size + m.system_prompt_note)})"))
    out = ['<header>',
           f"<h1>LM risk audit — {esc(m.id)} {status_badge(report.summary.status)}</h1>",
           '<dl class="facts">' + "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts) + "</dl>"]
    out += _banners(report)
    if report.policy is not None:
        out.append(_gate(report))
    links = [("status-grid", "Coverage"), ("forest-plot", "Gated metrics"), ("findings", "Findings by risk"),
             ("probes", "Probes"), ("scorers", "Scorers"), ("pii", "PII"), ("methodology", "Methodology"),
             ("checklist", "Review checklist"), ("errors", "Errors"), ("environment", "Environment")]
    out.append('<nav class="toc" aria-label="Contents">' + "".join(
        f'<a href="#{ident}">{name}</a>' for ident, name in links
        if (ident != "scorers" or _scorers(report)) and (ident != "pii" or report.pii is not None)
        and (ident != "errors" or report.errors)) + "</nav>")
    return "\n".join(out) + "\n</header>"


def _banner(kind: str, title: str, text: str) -> str:
    return f'<p class="banner b-{kind}" role="note"><strong>{title}</strong> {text}</p>'


def _banners(report: AuditReport) -> list[str]:
    run, out = report.run, []
    if run.smoke:
        limit = esc(str(report.config.get("limit")))
        out.append(_banner("warn", f"Smoke run (--limit {limit}).",
                           f"At most {limit} items per probe: it checks that the audit runs and is no evidence "
                           "for a release (intervals too wide; a release policy blocks it)."))
    if not run.complete:
        why = "interrupted" if run.interrupted else "incomplete"
        out.append(_banner("fail", f"Partial report ({why}).", "Only the probes listed below finished; risks "
                           "whose probes did not run are not evaluated."))
    if run.rescore_of:
        out.append(_banner("info", f"Re-score of run {esc(run.rescore_of)}.", "The model was not run: its "
                           "recorded outputs and log-likelihoods were scored again with this report's scorers, "
                           "statistics and policy."))
    if report.show_pii:
        out.append(_banner("fail", "PII not redacted.", "This report was produced with --show-pii; it may "
                           "contain personal data from model outputs. Handle it accordingly."))
    if report.pii is not None and report.pii.undetectable:
        out.append(_banner("warn", "PII detection was partial.",
                           f"No spaCy pipeline was available, so {esc(', '.join(report.pii.undetectable))} could "
                           "not be detected" + ("" if report.show_pii else " or redacted")
                           + "; pattern-based types (e-mail, phone, cards, secrets ...) were."))
    return out


def _gate(report: AuditReport) -> str:
    g = report.policy
    assert g is not None
    blocked = bool(g.blocking_failures)
    verdict = '<span class="st st-fail">blocked</span>' if blocked else '<span class="st st-pass">passed</span>'
    out = [f'<div class="banner b-{"fail" if blocked else "info"} gate" role="note"><strong>Release gate</strong> — '
           f"policy {_code(g.policy)}: {verdict} · {len(g.checks)} checks, {len(g.blocking_failures)} blocking "
           f"failure(s), {len(g.warnings)} warning(s)"]
    failed = g.blocking_failures + g.warnings
    if failed:
        out.append("<ul>" + "".join(f"<li><strong>{'blocks' if c.severity == 'block' else 'warns'}</strong>: "
                                    f"{esc(c.message)}</li>" for c in failed) + "</ul>")
    return "".join(out) + "</div>"


# ---- 2. coverage grid --------------------------------------------------------------------------

def _severity_order() -> list[Status]:
    """Statuses worst first, for the counts next to the grid."""
    return [s for tied in reversed(STATUS_ORDER) for s in reversed(tied)]


def _grid(page: _Page) -> str:
    report = page.report
    counts = report.summary.risks_by_status
    order = [s.value for s in _severity_order()] + sorted(k for k in counts if k not in {s.value for s in Status})
    n_risks = sum(len(a.risks) for a in report.areas)
    out = ['<section class="overview" aria-labelledby="coverage-h"><div class="head">',
           f'<h2 id="coverage-h">Coverage: {n_risks} risks in {len(report.areas)} areas</h2>',
           '<ul class="counts" aria-label="Risks by status">'
           + "".join(f"<li>{status_badge(k)} {counts[k]}</li>" for k in order if counts.get(k))
           + '<li class="muted">dashed: no automated evidence (not evaluated, or manual review)</li></ul></div>',
           '<div id="status-grid" class="grid">']
    for area in report.areas:
        cells = []
        for r in area.risks:
            s = r.status.value
            cells.append(f'<li class="cell s-{esc(s)}"><a href="#{_anchor("risk", r.id)}">'
                         f'<span class="cell-id">{esc(r.id)}</span>{status_badge(r.status)}'
                         f'<span class="cell-auto">{esc(r.automation)}</span>'
                         f'<span class="cell-name">{esc(r.name)}</span></a></li>')
        out.append(f'<div class="area-row"><h3 class="area-head">{esc(area.id)}. {esc(area.name)} '
                   f'{status_badge(area.status)}</h3><ul class="cells">{"".join(cells)}</ul></div>')
    out.append("</div></section>")
    return "\n".join(out)


# ---- 3. forest plot ----------------------------------------------------------------------------

def _forest(report: AuditReport) -> str:
    groups: dict[str, list[IntervalRow]] = {}
    for p in report.probes:
        for m in p.metrics:
            if not _gated(m):
                continue
            assert m.threshold is not None
            value, ci, corrected = _plotted(m)
            label = f"{p.id} · {m.name}" + (" (corrected)" if corrected else "")
            groups.setdefault(_scale(m), []).append(IntervalRow(
                label=label, value=value, low=ci.low if ci else None, high=ci.high if ci else None,
                status=m.status.value if m.status else None, warn=m.threshold.warn, fail=m.threshold.fail,
                note=f"n={m.n}"))
    legend = ("Dot: value, line: its interval (a diamond: none); dashed: fail bar, dotted: warn bar; the word at the "
              "right: the status. (corrected): the scorer-corrected figure the gate reads.")
    out = ['<section id="forest-plot" class="overview" aria-labelledby="forest-h"><div class="head">',
           f'<h2 id="forest-h">Gated metrics</h2><p class="legend">{legend}</p></div>']
    if not groups:
        out.append("<p>No metric in this report has a bar to gate on.</p>")
    for scale in sorted(groups, key=lambda k: (k != "", k)):
        rows = groups[scale]
        if scale == "":
            title, lo, hi, axis = "Rates and shares (0 to 1)", 0.0, 1.0, "rate or share"
        else:
            title, lo, hi, axis = f"Metrics in {scale}", None, None, scale
        chart = interval_chart(rows, title=f"{title}: {len(rows)} gated metric(s)", lo=lo, hi=hi, axis_label=axis,
                               label_width=390, width=1120, row_height=20)
        out.append(f'<figure class="forest"><figcaption><strong>{esc(title)}</strong>: {len(rows)} gated '
                   f"metric(s), by probe</figcaption>{chart}</figure>")
    out.append("</section>")
    return "\n".join(out)


# ---- 4. findings by risk -----------------------------------------------------------------------

def _metric_line(m: Metric) -> str:
    corrected = ""
    if m.corrected is not None:
        corrected = "; corrected " + ("n/a (scorer too weak)" if m.corrected.value is None
                                      else f"{fmt(m.corrected.value)} {_ci(m.corrected.ci)}")
    shown = _detectable(m)
    power = {"—": "", "none at this n": " (too few items to ever fail its bar)"}.get(
        shown, f" (flags {esc(shown)} as fail at 80% power)")
    return (f"{esc(m.name)} = {_value(m.value, m.unit)} {_ci(m.ci)}{corrected} (n={m.n}) "
            f"{_status(m)}{power}")


def _risk(page: _Page, r: RiskReport) -> str:
    out = [f'<article class="risk" id="{_anchor("risk", r.id)}">',
           f"<h4>{esc(r.id)} {esc(r.name)} {status_badge(r.status)}</h4>",
           f"<p>{esc(r.automation)}" + (f" — {esc(r.status_reason)}" if r.status_reason else "") + "</p>"]
    if r.description:
        out.append(f'<p class="muted small">{esc(r.description)}</p>')
    if r.probes:
        items = []
        for pid in r.probes:
            line = page.probe_link(pid)
            if pid in page.probe_ids:
                p = page.report.probe(pid)
                line += " " + status_badge(p.status)
                if p.contamination is not None:
                    line += ' <span class="st st-warn">possibly contaminated</span> ' + _contamination(p)
                if p.metrics:
                    line += "<ul>" + "".join(f"<li>{_metric_line(m)}</li>" for m in p.metrics) + "</ul>"
            items.append(f"<li>{line}</li>")
        out.append("<p>Evidence from its probes:</p><ul>" + "".join(items) + "</ul>")
    if r.probes_not_run:
        out.append("<p>Probes not run: " + ", ".join(_code(x) for x in r.probes_not_run) + "</p>")
    if r.review_questions and (r.automation == "manual" or r.status is Status.manual):
        out.append("<p>For the reviewer:</p><ul>" + "".join(f"<li>{esc(q)}</li>" for q in r.review_questions)
                   + "</ul>")
    crosswalk = [f"{esc(k)}: {esc(', '.join(v))}" for k, v in sorted(r.crosswalk.items()) if v]
    if crosswalk:
        out.append('<p class="muted small">Crosswalk — ' + "; ".join(crosswalk) + "</p>")
    return "".join(out) + "</article>"


def _findings(page: _Page) -> str:
    out = ['<section aria-labelledby="findings">', '<h2 id="findings">Findings by risk</h2>']
    for area in page.report.areas:
        out.append(f"<h3>{esc(area.id)}. {esc(area.name)} {status_badge(area.status)}</h3>")
        out += [_risk(page, r) for r in area.risks]
    return "\n".join(out) + "\n</section>"


# ---- 5. probes ---------------------------------------------------------------------------------

def _metrics_table(p: ProbeReport) -> str:
    rows = []
    for m in p.metrics:
        ci = _ci(m.ci) + (f'<span class="sub">{_ci_how(m.ci)}</span>' if m.ci else "")
        chance = f'<span class="sub">chance: {fmt(m.chance)}</span>' if m.chance is not None else ""
        rows.append([_code(m.name), _value(m.value, m.unit), ci, str(m.n), _bars(m), _status(m),
                     _corrected(m), esc(_detectable(m)), esc(m.description) + chance])
    return _table(f"Metrics of {_code(p.id)}",
                  ["metric", "value", "95% CI", "n", "bars", "status", "corrected", "flags as fail (80% power)",
                   "description"], rows, cls="metrics", num=(1, 3))


def _breakdowns(p: ProbeReport) -> list[str]:
    out = []
    for m in p.metrics:
        for b in m.breakdowns:
            if len(b.groups) < 2:
                continue
            rows = [IntervalRow(label=g.group, value=g.value, low=g.ci.low if g.ci else None,
                                high=g.ci.high if g.ci else None, note=f"n={g.n}",
                                warn=m.threshold.warn if _gated(m) and m.threshold else None,
                                fail=m.threshold.fail if _gated(m) and m.threshold else None)
                    for g in b.groups]
            xs = [x for r in rows for x in (r.value, r.low, r.high, r.warn, r.fail)]
            fixed = m.unit in _UNIT_SCALE and _within_unit(xs)
            title = f"{m.name} by {b.by}"
            chart = interval_chart(rows, title=title, lo=0.0 if fixed else None, hi=1.0 if fixed else None,
                                   axis_label=m.unit, label_width=320, width=1080, row_height=20)
            bars = " The bars are the whole metric's, shown for reference." if _gated(m) else ""
            out.append(f"<figure><figcaption><strong>{_code(m.name)} by {esc(b.by)}</strong>: value and "
                       f"interval per group ({len(b.groups)} groups).{bars}</figcaption>{chart}</figure>")
    return out


def _validation_row(kind: str, v: ScorerValidation) -> list[str]:
    return [kind, esc(v.dataset) + f'<span class="sub">sha256 {esc(v.sha256[:12])}</span>',
            f"{v.n} ({v.n_positive} positive)", _figure(v.precision), _figure(v.recall), _figure(v.f1),
            _figure(v.specificity)]


def _scorer_detail(s: ScorerInfo) -> str:
    out = [f"<p>{_code(s.name)} <span class=\"muted small\">{esc(s.version)}</span> — measures "
           f"{esc(s.measures or 'n/a')}" + (f"; an output counts at score ≥ {s.threshold:g}" if s.threshold is not None
                                            else "") + ".</p>"]
    rows = []
    if s.validation is not None:
        rows.append(_validation_row("held-out (measured in this run)", s.validation))
    if s.development is not None and (s.validation is None or s.development.dataset != s.validation.dataset):
        rows.append(_validation_row("development (tuned on it: optimistic)", s.development))
    if rows:
        out.append(_table(f"Validation of {_code(s.name)}", ["set", "dataset", "n", "precision", "recall", "F1",
                                                             "specificity"], rows, cls="validation"))
        weak = [g for g in s.validation.accuracy_by_kind if g.value is not None and g.value < 0.7] \
            if s.validation else []
        if weak:
            out.append("<p class=\"small\">Weakest on: " + ", ".join(
                f"{esc(g.group)} (accuracy {fmt(g.value)}, n={g.n})" for g in weak) + ".</p>")
    else:
        out.append('<p class="small">Not validated in this run.</p>')
    out += _scorer_extras(s)
    if s.note:
        out.append(f'<p class="small muted">Limits: {esc(s.note)}</p>')
    return "".join(out)


def _scorer_extras(s: ScorerInfo) -> list[str]:
    out = []
    if s.functional:
        ok = [g for g in s.functional if g.value is not None]
        failing = [g for g in ok if g.value is not None and g.value < 0.8]
        out.append(f'<p class="small">Functional tests: {len(ok) - len(failing)} of {len(ok)} functionalities at '
                   "≥ 80% accuracy" + ("; below: " + ", ".join(f"{esc(g.group)} {fmt(g.value)}" for g in failing)
                                       if failing else "") + ".</p>")
    if s.identity_false_positive_rate is not None:
        out.append('<p class="small">Identity-term false-positive rate (non-toxic texts naming a group, flagged): '
                   f"{_figure(s.identity_false_positive_rate)}.</p>")
    return out


def _example_rows(examples: Sequence[Example]) -> Iterable[list[str]]:
    for e in examples[:_MAX_EXAMPLES]:
        yield [esc(e.sample_id)] + [f'<div class="text">{esc(x, _TEXT_CHARS)}</div>'
                                    for x in (e.prompt, e.output, e.expected)] + \
              [fmt(e.score), f'<div class="text">{esc(e.detail, _TEXT_CHARS)}</div>']


def _examples(p: ProbeReport) -> str:
    # A likelihood probe's examples are what the model favoured, not what it said: a pair's two
    # sentences, or a question and the answer its likelihood preferred (as the Markdown report says).
    header = (["id", "question, or the sentence found less likely", "favoured text (or the model's answer)",
               "expected", "score", "detail"] if p.kind == "loglikelihood" else
              ["id", "prompt", "model output", "expected", "score", "detail"])
    ident = _anchor("examples", p.id)
    shown = min(len(p.worst_examples), _MAX_EXAMPLES)
    more = f" (the first {shown} of {len(p.worst_examples)})" if shown < len(p.worst_examples) else ""
    rows = "".join("<tr>" + "".join(f'<td class="{"id" if i == 0 else ("num" if i == 4 else "")}">{c}</td>'
                                    for i, c in enumerate(row)) + "</tr>"
                   for row in _example_rows(p.worst_examples))
    head = "".join(f'<th scope="col">{h}</th>' for h in header)
    return (f"<h4>Worst examples{more}</h4>"
            f'<input type="search" class="example-filter" aria-controls="{ident}" placeholder="filter examples" '
            f'aria-label="Filter the worst examples of {esc(p.id)}">'
            f'<table class="examples" id="{ident}"><caption>Worst examples of {_code(p.id)} <span class="muted '
            f'small">(model text, shown as plain text and cut at {_TEXT_CHARS} characters)</span></caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _list(title: str, items: Sequence[str], chars: int | None = None) -> str:
    if not items:
        return ""
    return f"<h4>{title}</h4><ul>" + "".join(f'<li><div class="text">{esc(x, chars)}</div></li>' for x in items) \
        + "</ul>"


def _contamination(p: ProbeReport) -> str:
    """What contamination.membership found about this probe's items (they look seen in training, so its
    figures may measure memory rather than behaviour)."""
    c = p.contamination
    assert c is not None
    how = "n-gram overlap with the corpus" if c.method == "ngram" else "Min-K% Prob against perturbed copies"
    return f"{_code('contamination.membership')} ({esc(how)}): {esc(c.message)}"


def _system_prompt(report: AuditReport) -> str:
    """The deployment's system prompt, verbatim as text (it is the user's own, shown as given)."""
    m = report.model
    if m.system_prompt is None:
        return ""
    how = ("rendered with the model's chat template as its system message"
           if m.system_prompt_note.startswith("applied") else
           "the model has no chat template, so it was sent as plain 'System: ...' text at the top of each "
           "conversation")
    return (f'<h3 id="system-prompt">System prompt</h3><p>Applied to every conversation the probes sent '
            f"({esc(how)}); continuation and likelihood prompts are raw text and were sent without it. sha256 "
            f"{_code(m.system_prompt_sha256 or '')}, {len(m.system_prompt):,} characters:</p>"
            f'<div class="text">{esc(m.system_prompt)}</div>')


def _probe(page: _Page, p: ProbeReport) -> str:
    opened = " open" if p.status in _OPEN else ""
    out = [f'<section class="probe" id="{_anchor("probe", p.id)}"><details class="probe-body"{opened}>',
           f"<summary><h3>{_code(p.id)} v{esc(p.version)}</h3>{status_badge(p.status)}"
           + (' <span class="st st-warn">possibly contaminated</span>' if p.contamination is not None else "")
           + "</summary>",
           *([_banner("warn", "Possibly contaminated.", _contamination(p))] if p.contamination is not None else []),
           f"<p>{esc(p.description)}</p>",
           '<p class="small">Risks: ' + (", ".join(page.risk_link(r) for r in p.risks) or "—")
           + f" · kind: {esc(p.kind)} · samples: {p.n_samples} · time: {p.duration_s:.1f}s"
           + esc(_time_split(p.model_s, p.scoring_s))
           + (f" · samples file {_code(p.samples_file)}" if p.samples_file else "")
           + (f" · source: {spec[0]} {_code(spec[1])}" if (spec := p.spec_source()) is not None else "") + "</p>"]
    if p.dataset:
        d = p.dataset
        out.append(f'<p class="small">Dataset: {esc(d.name)} ({esc(d.origin)}-supplied, {d.n_items} items, '
                   f"sha256 {_code(d.sha256[:12])})</p>")
    if p.params:
        out.append('<p class="small">Parameters: ' + ", ".join(_code(f"{k}={v}") for k, v in sorted(p.params.items()))
                   + "</p>")
    if p.metrics:
        out.append(_metrics_table(p))
        notes = [f"<li>{_code(m.name)} scorer error: {esc(m.correction_note)}</li>" for m in p.metrics
                 if m.correction_note]
        if notes:
            out.append('<ul class="small">' + "".join(notes) + "</ul>")
        charts = _breakdowns(p)
        if charts:
            out += ["<h4>Breakdowns</h4>", *charts]
    if p.scorers:
        out += ["<h4>Scorers</h4>", *(_scorer_detail(s) for s in p.scorers)]
    out.append(_list("Notes", p.notes))
    out.append(_list("Limitations", p.limitations))
    out.append(_list("Errors", p.errors, _TEXT_CHARS))
    if p.worst_examples:
        out.append(_examples(p))
    return "\n".join(x for x in out if x) + "\n</details></section>"


def _probes(page: _Page) -> str:
    out = ['<section aria-labelledby="probes">', '<h2 id="probes">Probe results</h2>',
           '<p class="small muted">Sections of failing, erring, warning and inconclusive probes are open; the '
           "others are folded.</p>"]
    out += [_probe(page, p) for p in page.report.probes]
    return "\n".join(out) + "\n</section>"


# ---- 6. scorers, PII, methodology, checklist, errors, environment ------------------------------

def _scorers(report: AuditReport) -> list[tuple[ScorerInfo, list[str]]]:
    """Each distinct scorer (name, version) of the run, with the probes that used it."""
    seen: dict[tuple[str, str], tuple[ScorerInfo, list[str]]] = {}
    for p in report.probes:
        for s in p.scorers:
            seen.setdefault((s.name, s.version), (s, []))[1].append(p.id)
    return list(seen.values())


def _scorers_section(page: _Page) -> str:
    scorers = _scorers(page.report)
    if not scorers:
        return ""
    rows = []
    for s, probes in scorers:
        v, d = s.validation, s.development
        rows.append([
            _code(s.name) + f'<span class="sub">{esc(s.version, 300)}</span>',
            esc(s.measures or "n/a") + (f'<span class="sub">counts at ≥ {s.threshold:g}</span>'
                                        if s.threshold is not None else ""),
            (f"{esc(v.dataset)}: F1 {_figure(v.f1)}; precision {_figure(v.precision)}; recall {_figure(v.recall)}"
             if v else "not validated in this run"),
            (f"{esc(d.dataset)}: F1 {_figure(d.f1)}" if d and (v is None or d.dataset != v.dataset) else "—"),
            "".join(_scorer_extras(s)) or "—",
            "<br>".join(page.probe_link(x) for x in probes),
        ])
    return ('<section aria-labelledby="scorers"><h2 id="scorers">Scorers</h2>'
            + _table("Scorers used in this run, with their figures on labelled sets",
                     ["scorer", "measures", "held-out figures (measured in this run)",
                      "development set (tuned on it: optimistic)", "functional tests", "used by"], rows)
            + "</section>")


def _pii_section(report: AuditReport) -> str:
    pii = report.pii
    if pii is None:
        return ""
    out = ['<section aria-labelledby="pii"><h2 id="pii">PII and secrets</h2>',
           f"<p>Detector {esc(pii.detector)}, spaCy pipeline {esc(pii.nlp_model or 'none (patterns only)')}, "
           f"score ≥ {pii.threshold:g}; types {esc(', '.join(pii.entities))}.</p>"]
    if pii.undetectable:
        out.append(f"<p>Not detectable in this run: {esc(', '.join(pii.undetectable))}.</p>")
    counts = sorted(pii.redacted.items())
    if report.show_pii:
        canaries = pii.redacted.get("CANARY")
        out.append("<p>Not redacted (--show-pii)"
                   + (f"; canary secrets are masked all the same: {canaries}." if canaries else ".") + "</p>")
    else:
        out.append("<p>Every prompt, output, example and error in this report and in samples/ was redacted "
                   "(detected spans replaced by &lt;TYPE&gt;).</p>")
        out.append(_table("Redacted spans by type", ["type", "spans"], ([esc(k), str(v)] for k, v in counts),
                          cls="narrow", num=(1,)) if counts else "<p>No span was found to redact.</p>")
    return "\n".join(out) + "\n</section>"


def _emphasis(text: str) -> str:
    """Our own Markdown-worded text (``*word*`` for emphasis), escaped, with the emphasis as ``<em>``."""
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", esc(text))


def _methodology(report: AuditReport) -> str:
    run, m = report.run, report.model
    items = [
        "Every rate carries a 95% Wilson score interval; every mean a 95% percentile bootstrap interval "
        f"(2,000 resamples, seed {run.seed}). n is the number of items behind the figure.",
        "Statuses read the interval against the fail bar first. A small sample cannot fail by chance alone, and it "
        "cannot pass by being small either: it is <em>inconclusive</em>.",
        "Bars are each probe's documented defaults, not a release policy; a deployment should set its own.",
        "Automated probes give evidence, not proof: a pass means the probe's items did not reveal the risk, not "
        "that the model is free of it. Risks marked <em>partial</em> or <em>manual</em> need the review below.",
        "A metric measured through a scorer also carries the rate corrected for the scorer's held-out "
        "sensitivity and specificity; where it does, gates (and the forest plot) read the corrected figure.",
        f"Model fingerprint: sha256 {_code(m.fingerprint_sha256 or 'n/a')}"
        + (f" (read from a converted copy whose SHA256SUMS hashes to {_code(m.converted_sha256)})"
           if m.converted_sha256 else "") + f"; taxonomy file sha256 {_code(report.taxonomy.sha256)}.",
        f"This run's depth is {_code(report.config.get('depth', 'standard'))}.",
        "Model outputs are untrusted: on this page they are plain text, and the page loads nothing and runs only "
        "its own script (a Content-Security-Policy refuses anything else).",
        "Each probe's limitations are listed in its section.",
    ]
    items += [f"Model: {esc(note)}" for note in m.notes]
    statuses = {s.value for s in Status}
    meanings = "".join(
        f"<dt>{status_badge(name) if name in statuses else f'<em>{esc(name)}</em>'}</dt>"
        f"<dd>{_emphasis(text)}</dd>"
        for name, text in _STATUS_MEANINGS)
    return ('<section aria-labelledby="methodology"><h2 id="methodology">Methodology</h2><ul>'
            + "".join(f"<li>{x}</li>" for x in items) + "</ul>" + _system_prompt(report)
            + f'<h3>What the statuses mean</h3><dl class="meanings">{meanings}</dl></section>')


def _checklist(report: AuditReport) -> str:
    out = ['<section aria-labelledby="checklist"><h2 id="checklist">Manual review checklist</h2>']
    for area in report.areas:
        for r in area.risks:
            if r.review_questions:
                out.append(f"<h3>{esc(r.id)} {esc(r.name)} <span class=\"muted small\">({esc(r.automation)})</span>"
                           f"</h3><ul class=\"checklist\">"
                           + "".join(f"<li>{esc(q)}</li>" for q in r.review_questions) + "</ul>")
    return "\n".join(out) + "\n</section>"


def _errors(report: AuditReport) -> str:
    if not report.errors:
        return ""
    return ('<section aria-labelledby="errors"><h2 id="errors">Errors</h2><ul>'
            + "".join(f'<li><div class="text">{esc(e, _TEXT_CHARS)}</div></li>' for e in report.errors)
            + "</ul></section>")


def _environment(report: AuditReport) -> str:
    h, run, m = report.host, report.run, report.model
    facts = [("platform", esc(h.platform)), ("Python", esc(h.python)), ("machine", esc(h.machine)),
             ("CPUs", str(h.cpu_count) if h.cpu_count is not None else "unknown"),
             ("accelerator", esc(h.accelerator or "none")), ("command", _code(run.command or "n/a")),
             ("run directory", _code(run.directory or "n/a")),
             ("model source", _code(m.source)),
             ("time", esc(f"{_duration(run.duration_s)}{_time_split(run.model_s, run.scoring_s)}")),
             ("cache", esc(f"{run.cache_hits} model batch(es) from the run's cache, {run.cache_misses} computed"
                           + ("; resumed" if run.resumed else "")))]
    out = ['<section aria-labelledby="environment"><h2 id="environment">Environment</h2>',
           '<dl class="facts">' + "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts) + "</dl>"]
    libraries = sorted(h.libraries.items())
    if libraries:
        out.append(_table("Libraries on the host", ["library", "version"], ([esc(k), esc(v)] for k, v in libraries),
                          cls="narrow"))
    if m.libraries:
        out.append(_table("Libraries that computed the model's results", ["library", "version"],
                          ([esc(k), esc(v)] for k, v in sorted(m.libraries.items())), cls="narrow"))
    return "\n".join(out) + "\n</section>"


def render_html(report: AuditReport) -> str:
    """The report as one self-contained HTML page (``report.html``): nothing loaded, no script but
    its own (the examples filter), every string of the report escaped. Same report, same bytes."""
    page = _Page(report)
    body = [_header(page), "<main>", _grid(page), _forest(report), _findings(page), _probes(page),
            _scorers_section(page), _pii_section(report), _methodology(report), _checklist(report),
            _errors(report), _environment(report), "</main>"]
    title = f"LM risk audit — {report.model.id} — {report.summary.status.value}"
    return document(title, "\n".join(x for x in body if x), _SCRIPT, css=CSS + _REPORT_CSS)
