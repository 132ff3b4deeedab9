"""lm-audit compare: one column per report and one row per metric, best and worst per row, the
paired tests against the first report (``diff_reports``' own, Holm over the whole comparison),
charts against model size only when the sizes differ, incomparable reports refused without
--force, and report text inert in Markdown and HTML."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from audit import AuditConfig, run_audit
from reports import (
    AuditReport,
    Figure,
    IncomparableReports,
    Interval,
    compare_reports,
    diff_reports,
    holm,
    load_report,
    load_samples,
    render_compare_html,
    render_compare_json,
    render_compare_markdown,
    write_report,
)
from tests.test_gate_hardening import lm_audit_here

PROBES = ["bias.stereotype_pairs", "misinformation.truthfulness_mc"]
NAMES = ("small", "mid", "large")
# The tiny models all have the same shape, so their reports give one parameter count; the sized
# copies (report-sized.json, beside report.json so the samples files still resolve) say what
# three models of different sizes would.
SIZES = {"small": 1_000_000, "mid": 30_000_000, "large": 1_200_000_000}
HOSTILE = "<script>alert(1)</script> | x <img src=x onerror=alert(1)> [go](javascript:alert(1))"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """report.json of three tiny random models (seeds 0, 1, 2) run on the same items, by name."""
    from audit.models._hf import HFBackend
    from tests.conftest import make_model

    base = tmp_path_factory.mktemp("compare")
    out = {}
    for seed, name in enumerate(NAMES):
        backend = HFBackend(make_model(tiny_tokenizer, seed=seed), tiny_tokenizer, model_id="tiny")
        run_audit(AuditConfig(model="tiny", probes=PROBES, limit=6, out=base / name, pii={"nlp_model": "none"}),
                  model=backend)
        out[name] = base / name / "report.json"
        sized = load_report(out[name])
        sized.model.parameters = SIZES[name]
        write_report(sized, base / name / "report-sized.json")
    return out


def _load(paths: list[Path]) -> tuple[list[AuditReport], list]:  # type: ignore[type-arg]
    reports = [load_report(p) for p in paths]
    return reports, [load_samples(r, p) for r, p in zip(reports, paths)]


def test_one_column_per_report_and_one_row_per_metric(runs: dict[str, Path]) -> None:
    reports, samples = _load([runs[n] for n in NAMES])
    c = compare_reports(reports, samples, paths=[str(runs[n]) for n in NAMES])
    assert [col.key for col in c.columns] == ["A", "B", "C"]
    # every model id is "tiny": the labels add the run id (the run directory's name)
    assert [col.label for col in c.columns] == [f"tiny ({n})" for n in NAMES]
    assert [col.report for col in c.columns] == [str(runs[n]) for n in NAMES]
    expected = [(p.id, m.name) for p in reports[0].probes for m in p.metrics]
    assert [(r.probe, r.metric) for r in c.rows] == expected and len(expected) > 5
    assert all(len(r.cells) == 3 and all(cell is not None for cell in r.cells) for r in c.rows)
    md = render_compare_markdown(c)
    main_table = md.split("## Paired tests")[0]
    table = [ln for ln in main_table.splitlines() if ln.startswith("| `bias.stereotype_pairs` · ")]
    assert len(table) == len(reports[0].probe("bias.stereotype_pairs").metrics)
    assert all(ln.count(" | ") == 4 + 3 - 1 for ln in table)  # probe · metric, unit, direction, bars + 3 columns
    # A metric one report lacks is an empty cell, not an error.
    reports[1].probe("bias.stereotype_pairs").metrics.pop(0)
    c = compare_reports(reports, samples)
    row = c.rows[0]
    assert (row.probe, row.metric) == ("bias.stereotype_pairs", "stereotype_rate") and row.cells[1] is None
    assert [t.column for t in row.tests] == [2]
    assert "| — |" in render_compare_markdown(c)


def _hand_made(base: AuditReport, values: list[float | None]) -> list[AuditReport]:
    """Copies of ``base`` whose stereotype_rate (lower is better) and mc2 (higher is better) take
    ``values``, one report each."""
    out = []
    for i, v in enumerate(values):
        r = base.model_copy(deep=True)
        r.run.id = f"run-{i}"
        for pid, name in (("bias.stereotype_pairs", "stereotype_rate"), ("misinformation.truthfulness_mc", "mc2")):
            m = next(m for m in r.probe(pid).metrics if m.name == name)
            m.value = v
            m.ci = None if v is None else Interval(low=max(0.0, v - 0.1), high=min(1.0, v + 0.1), method="wilson")
        out.append(r)
    return out


def test_best_and_worst_on_a_hand_made_case(runs: dict[str, Path]) -> None:
    base = load_report(runs["small"])
    c = compare_reports(_hand_made(base, [0.3, 0.5, 0.7, None]))
    rows = {r.metric: r for r in c.rows}
    assert (rows["stereotype_rate"].best, rows["stereotype_rate"].worst) == ([0], [2])  # lower is better
    assert (rows["mc2"].best, rows["mc2"].worst) == ([2], [0])  # higher is better
    informational = next(r for r in c.rows if r.higher_is_better is None)
    assert informational.best == informational.worst == []
    # ties share the mark; equal values get none
    c = compare_reports(_hand_made(base, [0.5, 0.2, 0.5]))
    assert (c.rows[0].best, c.rows[0].worst) == ([1], [0, 2])
    c = compare_reports(_hand_made(base, [0.4, 0.4, 0.4]))
    assert all(r.best == r.worst == [] for r in c.rows if r.metric in ("stereotype_rate", "mc2"))
    # A corrected figure (what gates read) ranks when every report has one, and is shown beside the raw one.
    reports = _hand_made(base, [0.3, 0.5])
    for r, corrected in zip(reports, (0.6, 0.1)):
        r.probe("bias.stereotype_pairs").metrics[0].corrected = Figure(
            value=corrected, ci=Interval(low=corrected - 0.05, high=corrected + 0.05, method="bootstrap"), n=6)
    c = compare_reports(reports)
    assert (c.rows[0].figure, c.rows[0].best, c.rows[0].worst) == ("corrected", [1], [0])
    md = render_compare_markdown(c)
    line = next(ln for ln in md.splitlines() if ln.startswith("| `bias.stereotype_pairs` · `stereotype_rate` |"))
    a, b = line.strip("| ").split(" | ")[-2:]
    assert a.startswith("0.300 [0.200, 0.400] (n=6); corrected 0.600 [0.550, 0.650] ") and a.endswith(" **worst**")
    assert b.startswith("0.500 [0.400, 0.600] (n=6); corrected 0.100 [0.050, 0.150] ") and b.endswith(" **best**")
    page = render_compare_html(c)
    assert '<span class="mark mark-best">best</span>' in page and '<span class="mark mark-worst">worst</span>' in page
    assert "corrected 0.600 [0.550, 0.650]" in page


def test_paired_tests_are_diff_reports_with_holm_over_the_comparison(runs: dict[str, Path]) -> None:
    reports, samples = _load([runs[n] for n in NAMES])
    c = compare_reports(reports, samples)
    pairs = {j: diff_reports(reports[0], reports[j], old_samples=samples[0], new_samples=samples[j]) for j in (1, 2)}
    tested = []
    for row in c.rows:
        assert sorted(t.column for t in row.tests) == [1, 2]
        for t in row.tests:
            d = next(m for m in pairs[t.column].metrics if (m.probe, m.metric) == (row.probe, row.metric))
            if d.test in ("mcnemar", "paired-bootstrap"):
                assert t.test == d.test
            else:
                assert t.test == "none" and t.note == d.note
            assert (t.p_value, t.n_paired, t.delta, t.delta_ci) == (d.p_value, d.n_paired, d.delta, d.delta_ci)
            if t.test != "none" and row.higher_is_better is not None:
                tested.append(t)
    assert {t.test for r in c.rows for t in r.tests} >= {"mcnemar", "paired-bootstrap"}
    assert c.holm_family == len(tested) > 0
    assert [t.p_holm for t in tested] == holm([t.p_value for t in tested])  # type: ignore[misc]
    assert all(t.verdict in ("better", "worse", "unchanged") for t in tested)
    # Two reports: the comparison's Holm family is the diff's.
    two = compare_reports(reports[:2], samples[:2])
    for row in two.rows:
        d = next(m for m in pairs[1].metrics if (m.probe, m.metric) == (row.probe, row.metric))
        assert row.tests[0].p_holm == d.p_holm
    md = render_compare_markdown(c)
    assert "## Paired tests against A (`tiny (small)`)" in md and "McNemar" in md and "paired bootstrap" in md
    # Without samples (a report copied away from its run directory) nothing is paired, and it says why.
    c = compare_reports(reports, [samples[0], None, None])
    assert {t.test for r in c.rows for t in r.tests} == {"none"} and c.holm_family == 0
    assert any("no samples for the new report" in t.note for r in c.rows for t in r.tests)
    assert "Not paired:" in render_compare_markdown(c)


def _points(svg: str) -> int:
    return len(re.findall(r'<(?:circle|path) class="pt ', svg))


def test_scale_charts_only_when_sizes_differ(runs: dict[str, Path]) -> None:
    reports, samples = _load([runs[n] for n in NAMES])
    assert len({r.model.parameters for r in reports}) == 1
    c = compare_reports(reports, samples)
    assert c.scale_rows == []
    assert 'id="scale-charts"' not in render_compare_html(c) and "Against model size" not in render_compare_markdown(c)

    sized, samples = _load([runs[n].with_name("report-sized.json") for n in NAMES])
    c = compare_reports(sized, samples)
    gated = [(r.probe, r.metric) for r in c.rows if r.bars and (r.bars.warn is not None or r.bars.fail is not None)]
    assert [(r.probe, r.metric) for r in c.scale_rows] == gated and gated
    page = render_compare_html(c)
    section = page[page.index('id="scale-charts"'):]
    charts = re.findall(r"<svg .*?</svg>", section, flags=re.S)
    assert len(charts) == len(gated)
    assert all(_points(svg) == 3 for svg in charts)  # one point per model
    assert all("parameters (log scale)" in svg and 'class="bar-warn"' in svg for svg in charts)
    assert "<title>bias.stereotype_pairs · stereotype_rate against model size</title>" in charts[0]
    assert "fail 0.6" in charts[0]  # the fail bar is labelled on the chart
    md = render_compare_markdown(c)
    assert "## Against model size" in md and "A 1M: " in md and "C 1.2B: " in md
    # A model without a parameter count is left out of the charts (and the page says so).
    sized[1].model.parameters = None
    page = render_compare_html(compare_reports(sized, samples))
    charts = re.findall(r"<svg .*?</svg>", page[page.index('id="scale-charts"'):], flags=re.S)
    assert all(_points(svg) == 2 for svg in charts) and "Left out, no parameter count: B." in page


def test_different_probe_versions_are_refused_unless_forced(runs: dict[str, Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    changed = load_report(runs["mid"])
    changed.probe("bias.stereotype_pairs").version = "9.9"
    other = runs["mid"].with_name("report-v9.json")
    write_report(changed, other)
    code, out, err = lm_audit_here(capsys, "compare", str(runs["small"]), str(other))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and out == "", err
    for needle in (str(runs["small"]), str(other), "bias.stereotype_pairs", "9.9", "--force"):
        assert needle in lines[0], lines[0]
    code, out, err = lm_audit_here(capsys, "compare", str(runs["small"]), str(other), "--force")
    assert code == 0 and "**Compared with --force**: " in out, err
    assert "probe bias.stereotype_pairs has different versions" in out
    code, out, err = lm_audit_here(capsys, "compare", str(runs["small"]), str(runs["mid"]), "--force")
    assert code == 0 and "--force" not in out, err  # nothing differed: nothing to warn about
    reference = load_report(runs["small"])
    moved = reference.model_copy(deep=True)
    moved.taxonomy.sha256 = "0" * 64
    with pytest.raises(IncomparableReports, match="different taxonomies"):
        compare_reports([reference, reference, moved])
    assert "different taxonomies" in compare_reports([reference, moved], force=True).forced


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def test_report_text_is_inert_in_markdown_and_html(runs: dict[str, Path]) -> None:
    reports = [load_report(runs[n]) for n in NAMES[:2]]
    for r in reports:
        r.model.id = HOSTILE
        r.run.id = HOSTILE + " `run`"
        r.probes[0].metrics[0].name = HOSTILE
        r.probes[0].metrics[0].unit = HOSTILE
    c = compare_reports(reports, paths=[HOSTILE + ".json", "b.json"])
    assert c.columns[0].label == f"{HOSTILE} ({HOSTILE} `run`) [A]"  # same model and run ids: the key too

    md = render_compare_markdown(c)
    parser = MarkdownIt("gfm-like")
    parser.linkify.set({"fuzzy_link": False})
    rendered = parser.render(md)
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | x" in rendered  # shown as written, inside a code span
    header = re.search(r"<thead>\s*<tr>(.*?)</tr>", rendered.split("<h2>")[0].split("</table>")[1], re.S)
    assert header and header.group(1).count("<th>") == 4 + 2  # the pipe did not add a column
    rows = [r for r in re.findall(r"<tr>(.*?)</tr>", rendered, flags=re.S) if "alert(1)" in r and "<td>" in r]
    assert rows and all(r.count("<td>") in (6, 8) for r in rows)

    page = render_compare_html(c)
    tags = _Tags()
    tags.feed(page)
    assert [t for t, _ in tags.tags].count("script") == 1 and "img" not in [t for t, _ in tags.tags]
    assert not [(t, a) for t, attrs in tags.tags for a, _ in attrs if a.startswith("on") or a == "style"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | x" in page

    text = render_compare_json(c)
    assert text.isascii() and json.loads(text)["columns"][0]["model"] == HOSTILE


def test_cli_formats_out_file_and_bad_input(runs: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    a, b = str(runs["small"]), str(runs["mid"].with_name("report-sized.json"))
    code, out, err = lm_audit_here(capsys, "compare", a, b)
    assert code == 0 and out.startswith("# Comparison of 2 audits") and "## Paired tests against A" in out, err
    code, out, _ = lm_audit_here(capsys, "compare", a, b, "--format", "json")
    assert code == 0 and [col["report"] for col in json.loads(out)["columns"]] == [a, b]
    page = tmp_path / "out" / "compare.html"
    code, out, _ = lm_audit_here(capsys, "compare", a, b, "--format", "html", "--out", str(page))
    text = page.read_text()
    assert code == 0 and out == "" and text.startswith("<!DOCTYPE html>") and 'id="compare-table"' in text
    assert 'id="scale-charts"' in text  # the sized copy says another size
    for args, needles in (([a, str(tmp_path / "missing.json")], ["missing.json"]),
                          ([a], ["at least 2 reports", a]),
                          ([a, str(page)], [str(page)])):  # not a report
        code, out, err = lm_audit_here(capsys, "compare", *args)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert all(n in lines[0] for n in needles), lines[0]
