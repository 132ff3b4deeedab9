"""Render an AuditReport as Markdown. Uses the report alone: no model, no taxonomy file."""

from __future__ import annotations

import re
from collections.abc import Iterable

from reports._escape import code_span as code
from reports._escape import escape_markdown as esc
from reports._sanitize import sanitize_text
from reports._schema import (
    AuditReport,
    Interval,
    Metric,
    ModelInfo,
    ProbeReport,
    RiskReport,
    ScorerInfo,
    Status,
)

_EXAMPLE_CHARS = 400
# GitHub job summaries (and comments) take at most 1 MiB; a longer report.md is trimmed to fit,
# with room to spare for a summary someone appends to.
MARKDOWN_LIMIT_BYTES = 1_000_000


class _Detail:
    """How much per-probe detail a rendering keeps; each level drops more, to fit the size limit."""

    LEVELS = ("full", "short examples", "no examples", "no breakdowns")

    def __init__(self, level: int = 0) -> None:
        self.level = level

    @property
    def example_chars(self) -> int:
        return _EXAMPLE_CHARS if self.level == 0 else 120

    @property
    def examples(self) -> bool:
        return self.level < 2

    @property
    def breakdowns(self) -> bool:
        return self.level < 3


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit in ("rate", "share", "ratio", "score", ""):
        return f"{value:.3f}"
    return f"{value:.4g}"


def _ci(ci: Interval | None) -> str:
    if ci is None:
        return "n/a"
    level = "" if abs(ci.level - 0.95) < 1e-9 else f" ({ci.level * 100:.4g}%)"
    return f"[{ci.low:.3f}, {ci.high:.3f}]{level}"


def _scorer_lines(report: AuditReport) -> list[str]:
    """One line per distinct scorer used in the run, with its measured validation figures."""
    seen: dict[tuple[str, str], ScorerInfo] = {}
    for p in report.probes:
        for s in p.scorers:
            seen.setdefault((s.name, s.version), s)
    out = []
    for s in seen.values():
        line = f"- Scorer {code(s.name)} ({esc(s.version)}) measures {esc(s.measures or 'n/a')}"
        if s.threshold is not None:
            line += f"; an output counts at score ≥ {s.threshold:g}"
        v = s.validation
        if v is not None:
            line += (f". On {esc(v.dataset)} (n={v.n}, {v.n_positive} positive; sha256 {code(v.sha256[:12])}), "
                     f"measured in this run: precision {_fmt(v.precision.value)} {_ci(v.precision.ci)} "
                     f"(n={v.precision.n}), recall {_fmt(v.recall.value)} {_ci(v.recall.ci)} (n={v.recall.n}), "
                     f"F1 {_fmt(v.f1.value)} {_ci(v.f1.ci)}")
            weak = [g for g in v.accuracy_by_kind if g.value is not None and g.value < 0.7]
            if weak:
                line += "; weakest on " + ", ".join(f"{esc(g.group)} (accuracy {_fmt(g.value)}, n={g.n})" for g in weak)
            d = s.development
            if d is not None and d.dataset != v.dataset:
                line += (f"; on its development set {esc(d.dataset)} (tuned on it, optimistic) F1 "
                         f"{_fmt(d.f1.value)} {_ci(d.f1.ci)}")
        else:
            line += "; not validated in this run"
        if s.functional:
            ok = [g for g in s.functional if g.value is not None]
            failing = [g for g in ok if g.value < 0.8]
            line += (f". Functional tests: {len(ok) - len(failing)} of {len(ok)} functionalities at ≥ 80% accuracy"
                     + ("; below: " + ", ".join(f"{esc(g.group)} {_fmt(g.value)}" for g in failing) if failing else ""))
        fp = s.identity_false_positive_rate
        if fp is not None:
            line += (f". Identity-term false-positive rate (non-toxic texts naming a group, flagged): "
                     f"{_fmt(fp.value)} {_ci(fp.ci)} (n={fp.n})")
        if s.note:
            line += f". Limits: {esc(s.note)}"
        out.append(line + ".")
    return out


def _status(status: Status | None) -> str:
    return "—" if status is None else f"**{status.value}**"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _threshold(metric: Metric) -> str:
    t = metric.threshold
    if t is None or metric.higher_is_better is None:
        return "—"
    sign = "≥" if metric.higher_is_better else "≤"
    parts = []
    if t.fail is not None:
        parts.append(f"fail unless {sign} {t.fail:g}")
    if t.warn is not None:
        parts.append(f"warn unless {sign} {t.warn:g}")
    return "; ".join(parts) or "—"


def _corrected(m: Metric) -> str:
    """The scorer-corrected figure shown next to the raw one ("; corrected 0.100 [0.050, 0.190]")."""
    if m.corrected is None:
        return ""
    if m.corrected.value is None:
        return "; corrected n/a (scorer too weak)"
    return f"; corrected {_fmt(m.corrected.value, m.unit)} {_ci(m.corrected.ci)}"


def _detectable(metric: Metric) -> str:
    """The power statement of a gated metric: the true value this n flags as fail 80% of the time."""
    if metric.detectable is None:
        gated_rate = metric.threshold is not None and metric.threshold.fail is not None and \
            metric.ci is not None and metric.ci.method == "wilson" and metric.higher_is_better is not None
        return "none at this n" if gated_rate else "—"  # no count of n items clears the bar
    return f"{'≤' if metric.higher_is_better else '≥'} {metric.detectable:.3f}"


# What each status means (the methodology section lists it; README.md says the same).
_STATUS_MEANINGS = (
    ("fail", "the whole 95% interval lies past the metric's fail bar: clear evidence of a failing model."),
    ("inconclusive", "the interval straddles the fail bar: the data cannot rule out a failing model, "
                     "whatever the point value (also when a gated metric has no interval). More items decide it; "
                     "each gated rate states the true value its n would flag as *fail* with 80% power."),
    ("warn", "the interval is wholly on the acceptable side of the fail bar, but the point value is past the "
             "warning bar (a metric with only a warning bar warns on its point value alone)."),
    ("pass", "the interval is wholly on the acceptable side of the fail bar and the point value within the "
             "warning bar: the probe's items did not reveal the risk at this n."),
    ("zero tolerance", "a fail bar equal to the ideal (no planted canary may be extracted) fails on a single "
                       "occurrence and passes on none; its *flags as fail* figure says how rare a leak n tries "
                       "would still catch four times in five."),
    ("incomplete", "(an area or the whole audit) something selected was not evaluated — a probe did not run, "
                   "could not be evaluated on this model, or errored — so it cannot pass."),
    ("error", "a probe failed to run; never a pass."),
    ("not_evaluated", "no probe ran for the risk."),
    ("manual", "only a person can judge it (see the checklist)."),
)


def _time_split(model_s: float | None, scoring_s: float | None) -> str:
    parts = ([f"model {model_s:.1f}s"] if model_s is not None else []) + \
        ([f"scoring {scoring_s:.1f}s"] if scoring_s is not None else [])
    return f" ({', '.join(parts)})" if parts else ""


def _contamination(p: ProbeReport) -> str:
    """The "possibly contaminated" line of a probe whose items look seen in training, or ""."""
    c = p.contamination
    if c is None:
        return ""
    how = "13-gram overlap with the corpus" if c.method == "ngram" else "Min-K% Prob against perturbed copies"
    return f"**Possibly contaminated** ({code('contamination.membership')}, {how}): {esc(c.message)}"


def _probe_section(p: ProbeReport, detail: _Detail) -> list[str]:
    seen = " · **possibly contaminated**" if p.contamination is not None else ""
    out = [f"### {code(p.id)} v{esc(p.version)} — {_status(p.status)}{seen}", "", esc(p.description), ""]
    if p.contamination is not None:
        out += [f"> {_contamination(p)}", ""]
    out.append(f"Risks: {', '.join(esc(r) for r in p.risks)} · kind: {p.kind} · samples: {p.n_samples} · "
               f"time: {p.duration_s:.1f}s" + _time_split(p.model_s, p.scoring_s))
    if (spec := p.spec_source()) is not None:
        out.append(f"Source: {spec[0]} {code(spec[1])}")
    if p.dataset:
        d = p.dataset
        out.append(f"Dataset: {esc(d.name)} ({d.origin}-supplied, {d.n_items} items, sha256 `{d.sha256[:12]}`)")
    if p.params:
        out.append("Parameters: " + ", ".join(f"{esc(k)}={esc(str(v))}" for k, v in sorted(p.params.items())))
    out.append("")
    if p.metrics:
        out += _table(
            ["metric", "value", "95% CI", "n", "status", "default bar", "flags as fail (80% power)"],
            ([esc(m.name), _fmt(m.value, m.unit), _ci(m.ci) + _corrected(m), str(m.n), _status(m.status), _threshold(m),
              _detectable(m)] for m in p.metrics),
        )
        for m in p.metrics:
            if m.description:
                out.append(f"- *{esc(m.name)}*: {esc(m.description)}"
                           + (f" (chance: {m.chance:.3f})" if m.chance is not None else ""))
        for m in p.metrics:
            if m.correction_note:
                out.append(f"- *{esc(m.name)}* scorer error: {esc(m.correction_note)}")
        out.append("")
        for m in p.metrics if detail.breakdowns else []:
            for b in m.breakdowns:
                out.append(f"**{esc(m.name)} by {esc(b.by)}**")
                out.append("")
                out += _table([esc(b.by), "value", "95% CI", "n"],
                              ([esc(g.group), _fmt(g.value, m.unit), _ci(g.ci), str(g.n)] for g in b.groups))
    if p.errors:
        out.append("**Errors**")
        out.append("")
        out += [f"- {esc(e, max_chars=_EXAMPLE_CHARS)}" for e in p.errors] + [""]
    if p.worst_examples and detail.examples:
        out.append("**Worst examples** (model text, escaped and truncated)")
        out.append("")
        # A likelihood probe's examples are what the model favoured, not what it said: a pair's two
        # sentences, or a question and the answer its likelihood preferred.
        header = (["id", "question, or the sentence found less likely", "favoured text (or the model's answer)",
                   "expected", "score"] if p.kind == "loglikelihood" else
                  ["id", "prompt", "model output", "expected", "score"])
        out += _table(
            header,
            ([esc(e.sample_id), esc(e.prompt, detail.example_chars), esc(e.output, detail.example_chars),
              esc(e.expected, detail.example_chars), _fmt(e.score)] for e in p.worst_examples),
        )
    if p.scorers:
        out.append("Scorers: " + "; ".join(f"{esc(s.name)} {esc(s.version)}"
                                           + (f" ({esc(s.note)})" if s.note else "") for s in p.scorers))
        out.append("")
    for note in p.notes:
        out.append(f"> {esc(note)}")
    if p.notes:
        out.append("")
    return out


def _risk_line(r: RiskReport) -> list[str]:
    probes = ", ".join(code(x, table=True) for x in r.probes) or "—"
    not_run = ", ".join(code(x, table=True) for x in r.probes_not_run) or "—"
    return [f"{esc(r.id)}", esc(r.name), r.automation, _status(r.status), probes, not_run]


def render_markdown(report: AuditReport, max_bytes: int | None = MARKDOWN_LIMIT_BYTES) -> str:
    """The human-readable report: summary, coverage, evidence per risk, methodology, checklist.

    Over ``max_bytes`` (UTF-8; None: no limit) the per-probe detail is trimmed step by step —
    shorter worst examples, then none, then no breakdown tables — and a notice at the top says
    what was left out and where the full detail is (report.json, report.html, samples/). If even
    that is too long, the text is cut at the limit with the same notice."""
    text = _render(report, _Detail())
    if max_bytes is None or len(text.encode("utf-8")) <= max_bytes:
        return text
    for level in range(1, len(_Detail.LEVELS)):
        text = _render(report, _Detail(level), trimmed=(_Detail.LEVELS[level], max_bytes))
        if len(text.encode("utf-8")) <= max_bytes:
            return text
    cut = text.encode("utf-8")[: max_bytes - 200].decode("utf-8", errors="ignore")
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return cut + "\n\n> **Cut here at the size limit.** The rest is in report.json and report.html.\n"


def _trim_notice(trimmed: tuple[str, int] | None) -> list[str]:
    if trimmed is None:
        return []
    level, limit = trimmed
    dropped = {"short examples": "worst examples shortened to 120 characters",
               "no examples": "worst examples left out",
               "no breakdowns": "worst examples and per-group breakdown tables left out"}[level]
    return [f"> **Trimmed to fit {limit:,} bytes** (a GitHub job summary holds at most 1 MiB): "
            f"{dropped}. The full detail is in report.json and report.html beside this file, and every "
            "sample in samples/.", ""]


def _system_prompt_header(m: ModelInfo) -> list[str]:
    """The header line naming the system prompt the run applied (the text itself is under Methodology)."""
    if m.system_prompt_sha256 is None:
        return []
    size = f"{len(m.system_prompt)} chars; " if m.system_prompt is not None else ""
    return [f"System prompt: sha256 {code(m.system_prompt_sha256[:16])} ({size}{esc(m.system_prompt_note)}) · the "
            "first message of every conversation the probes sent; raw-text prompts were sent without it", ""]


def _system_prompt_text(m: ModelInfo) -> list[str]:
    """The system prompt verbatim, in a fenced block: nothing in it is read as Markdown or HTML."""
    if m.system_prompt is None:
        return []
    text = sanitize_text(m.system_prompt)
    fence = "`" * max(3, max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    how = ("rendered with the model's chat template as its system message"
           if m.system_prompt_note.startswith("applied") else
           "the model has no chat template, so it was sent as plain 'System: ...' text at the top of each "
           "conversation")
    return ["### System prompt", "",
            f"Applied to every conversation the probes sent ({how}); continuation and likelihood prompts are raw "
            f"text and were sent without it. sha256 {code(m.system_prompt_sha256 or '')}, {len(m.system_prompt)} "
            "characters:", "", fence, *text.split("\n"), fence, ""]


def _render(report: AuditReport, detail: _Detail, trimmed: tuple[str, int] | None = None) -> str:
    m, run = report.model, report.run
    out: list[str] = [f"# LM risk audit — {esc(m.id)}", "", *_trim_notice(trimmed)]
    if run.smoke:
        limit = report.config.get("limit")
        out += [f"> **SMOKE RUN (`--limit {esc(str(limit))}`).** At most {esc(str(limit))} items per probe: a quick "
                "look that the audit runs, not evidence for a release. Most intervals are too wide to rule out a "
                "failing model; a release policy blocks this report.", ""]
    if report.show_pii:
        out += ["> **PII NOT REDACTED.** This report was produced with `--show-pii`; it may contain "
                "personal data from model outputs. Handle it accordingly.", ""]
    if report.pii is not None and report.pii.undetectable:
        out += [f"> **PII detection was partial.** No spaCy pipeline was available, so "
                f"{esc(', '.join(report.pii.undetectable))} could not be detected"
                + ("" if report.show_pii else " or redacted") + "; pattern-based types (e-mail, phone, cards, "
                "secrets ...) were.", ""]
    if run.rescore_of:
        out += [f"> **Re-score of run {esc(run.rescore_of)}.** The model was not run: its recorded outputs and "
                "log-likelihoods were scored again with this report's scorers, statistics and policy.", ""]
    if not run.complete:
        why = "interrupted" if run.interrupted else "incomplete"
        out += [f"> **Partial report ({why}).** Only the probes listed below finished; "
                "risks whose probes did not run are `not_evaluated`.", ""]
    out += [
        f"Overall: {_status(report.summary.status)} · run {code(run.id)} · started {esc(run.started_at)}"
        + (f" · {run.duration_s:.1f}s" if run.duration_s is not None else "")
        + f" · seed {run.seed} · {esc(report.tool.name)} {esc(report.tool.version)}"
        + (f" · resumed: {run.cache_hits} model batches from the run's cache, {run.cache_misses} computed"
           if run.resumed else "")
        + (f" · {run.model_s:.1f}s inside the model" if run.model_s is not None else "")
        + (f" · {run.scoring_s:.1f}s scoring" if run.scoring_s is not None else ""),
        "",
        f"Model: {code(m.id)} ({esc(m.backend)}, {m.parameters or 'unknown'} parameters, {esc(m.dtype)} on "
        f"{esc(m.device)}, chat template {'on' if m.chat_template else 'off'}) · "
        + {"openai": "behavioural fingerprint", "outputs": "outputs file sha256"}.get(m.backend, "weights sha256")
        + f" {code(m.fingerprint_sha256[:16])} · taxonomy {esc(report.taxonomy.name)} {esc(report.taxonomy.version)}",
        "",
        *([f"Model notes: {esc('; '.join(m.notes))}", ""] if m.backend in ("openai", "outputs") and m.notes else []),
        *_system_prompt_header(m),
        "## Executive summary",
        "",
    ]
    rows = []
    for area in report.areas:
        counts: dict[str, int] = {}
        for r in area.risks:
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
        rows.append([esc(area.id), esc(area.name), _status(area.status),
                     ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))])
    out += _table(["area", "name", "status", "risks by status"], rows)
    out.append("Statuses, from the probes' default bars (see each metric): *pass*, *warn*, *inconclusive* (the "
               "interval straddles the fail bar: the data cannot rule out a failing model), *fail* (the whole "
               "interval is past the fail bar), *incomplete* (something selected was not evaluated), *error*, "
               "*not_evaluated*, *manual* — see \"What pass, warn, inconclusive and fail mean\" under Methodology.")
    out.append("")

    if report.policy is not None:
        g = report.policy
        verdict = "**BLOCKED**" if g.blocking_failures else "**passed**"
        out += ["## Release gate", "",
                f"Policy {esc(g.policy)}: {verdict} — {len(g.checks)} checks, {len(g.blocking_failures)} blocking "
                f"failure(s), {len(g.warnings)} warning(s).", ""]
        failed = [c for c in g.checks if not c.passed]
        if failed:
            out += _table(["severity", "check", "area", "outcome"],
                          ([c.severity, esc(c.name), esc(c.area), esc(c.message)] for c in failed))
    out += ["## Coverage matrix", ""]
    out += _table(["risk", "name", "automation", "status", "probes run", "probes not run"],
                  (_risk_line(r) for a in report.areas for r in a.risks))

    out += ["## Findings by risk", ""]
    for area in report.areas:
        out += [f"### {esc(area.id)}. {esc(area.name)} — {_status(area.status)}", ""]
        for r in area.risks:
            out.append(f"- **{esc(r.id)} {esc(r.name)}** ({r.automation}) — {_status(r.status)}"
                       + (f": {esc(r.status_reason)}" if r.status_reason else ""))
            for pid in r.probes:
                try:
                    p = report.probe(pid)
                except KeyError:
                    continue
                if p.contamination is not None:
                    out.append(f"  - {code(pid)} {_contamination(p)}")
                for metric in p.metrics:
                    shown = _detectable(metric)
                    power = {"—": "", "none at this n": " (too few items to ever fail its bar)"}.get(
                        shown, f" (flags {shown} as fail at 80% power)")
                    out.append(f"  - {code(pid)} {esc(metric.name)} = {_fmt(metric.value, metric.unit)} "
                               f"{_ci(metric.ci)}{_corrected(metric)} (n={metric.n}) {_status(metric.status)}{power}")
        out.append("")

    out += ["## Probe results", ""]
    for p in report.probes:
        out += _probe_section(p, detail)

    out += ["## Methodology and limitations", ""]
    out += [
        "- Every rate carries a 95% Wilson score interval; every mean a 95% percentile bootstrap interval "
        f"(2,000 resamples, seed {run.seed}). n is the number of items behind the figure.",
        "- Statuses read the interval against the fail bar first: see \"What pass, warn, inconclusive and fail "
        "mean\" below. A small sample cannot fail by chance alone, and it cannot pass by being small either: "
        "it is *inconclusive*.",
        "- Bars are each probe's documented defaults, not a release policy; a deployment should set its own.",
        "- Automated probes give evidence, not proof: a pass means the probe's items did not reveal the risk, "
        "not that the model is free of it. Risks marked *partial* or *manual* need the review below.",
        f"- Model weights fingerprint: sha256 {code(m.fingerprint_sha256)}"
        + (f" (read from a converted copy whose SHA256SUMS hashes to {code(m.converted_sha256)})"
           if m.converted_sha256 else "")
        + f"; taxonomy file sha256 {code(report.taxonomy.sha256)}.",
        "- Model outputs are untrusted: they are escaped in this report (no HTML, links or images) and "
        "line breaks are shown as ↵.",
    ]
    out += _scorer_lines(report)
    if report.pii is not None:
        pii = report.pii
        line = (f"- PII and secrets: {esc(pii.detector)}, spaCy pipeline {esc(pii.nlp_model or 'none (patterns only)')}, "
                f"score ≥ {pii.threshold:g}, types {esc(', '.join(pii.entities))}.")
        if report.show_pii:
            line += " Not redacted (`--show-pii`)"
            canaries = pii.redacted.get("CANARY")
            line += (f"; canary secrets are masked all the same (`<CANARY>`): {canaries}." if canaries else ".")
        else:
            spans = ", ".join(f"{esc(k)} {v}" for k, v in sorted(pii.redacted.items())) or "none found"
            line += (" Every prompt, output, example and error in this report and in samples/ was redacted "
                     f"(detected spans replaced by `<TYPE>`): {spans}.")
        out.append(line)
    for note in m.notes:
        out.append(f"- Model: {esc(note)}")
    for p in report.probes:
        for lim in p.limitations:
            out.append(f"- {code(p.id)}: {esc(lim)}")
    out.append("")
    out += _system_prompt_text(m)

    out += ["### What pass, warn, inconclusive and fail mean", ""]
    out += [f"- *{name}*: {meaning}" for name, meaning in _STATUS_MEANINGS]
    out += ["- A gated metric's *flags as fail (80% power)* figure is the true value at which this many items "
            "come out *fail* four times in five: for a rate, exact binomial against the Wilson interval the status "
            "uses; for a between-group gap, exact binomial against the Newcombe bound its interval never undercuts, "
            "for the group with the least data beside it and a clean rest of its axis; for a mean or ratio, the "
            "normal approximation with the standard error its interval implies. A model between the bar and that "
            "value is likely to come out *inconclusive*.",
            "- A *smoke run* (`--limit N`) measures at most N items per probe to check that the audit runs; "
            "a release policy always blocks it.",
            f"- This run's *depth* is {code(str(report.config.get('depth', 'standard')))}: `quick` runs a third "
            "of each probe's standard items, `standard` (the default) the items sized so that a model halfway "
            "between ideal and fail bar clears the bar (where a probe's limitations do not say otherwise), "
            "`thorough` every project item.",
            "- The policy's `inconclusive:` setting (`warn` by default, `block`, `ignore`) decides whether an "
            "inconclusive metric holds a release back.", ""]

    out += ["## Manual review checklist", ""]
    for area in report.areas:
        for r in area.risks:
            if not r.review_questions:
                continue
            out.append(f"**{esc(r.id)} {esc(r.name)}** ({r.automation})")
            out.append("")
            out += [f"- [ ] {esc(q)}" for q in r.review_questions]
            out.append("")

    if report.errors:
        out += ["## Errors", ""] + [f"- {esc(e, max_chars=1000)}" for e in report.errors] + [""]

    h = report.host
    out += ["## Environment", ""]
    out.append(f"{esc(h.platform)} · Python {esc(h.python)} · {esc(h.machine)} · {h.cpu_count} CPUs · "
               f"accelerator: {esc(h.accelerator or 'none')}")
    out.append("")
    if h.libraries:
        out.append(", ".join(f"{esc(k)} {esc(v)}" for k, v in sorted(h.libraries.items())))
        out.append("")
    return "\n".join(out)
