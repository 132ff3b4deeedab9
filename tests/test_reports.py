"""Reports: JSON round-trips through the schema, Markdown renders from JSON alone and is inert."""

import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from audit import AuditConfig, run_audit
from reports import (
    Example,
    ReportError,
    Status,
    load_report,
    render_markdown,
    report_json_schema,
)

HOSTILE = ('<script>alert(1)</script> ![x](http://evil.example/p.png) [go](javascript:alert(1)) '
           'a | b <img src=x onerror=alert(1)> www.evil.example\n# injected heading\n| fake | row |')


@pytest.fixture(scope="module")
def report_dir(backend_factory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One audit for the module's tests, which read it and never change its files."""
    out = tmp_path_factory.mktemp("reports") / "run"
    run_audit(AuditConfig(model="tiny", out=out, limit=6), model=backend_factory())
    return out


def test_report_json_round_trips_through_the_schema(report_dir: Path) -> None:
    raw = json.loads((report_dir / "report.json").read_text())
    report = load_report(report_dir / "report.json")
    assert json.loads(report.model_dump_json()) == raw
    assert report.schema_version == "1.0" and report.run.complete
    assert len(report.areas) == 6 and sum(len(a.risks) for a in report.areas) == 21
    p = report.probe("misinformation.truthfulness_mc")
    assert p.n_samples == 6 and p.samples_file and (report_dir / p.samples_file).is_file()
    samples = [json.loads(line) for line in (report_dir / p.samples_file).read_text().splitlines()]
    facts = sum(s["type"] == "fact" for s in samples)  # the easy-fact controls have their own metric
    for m in p.metrics:
        assert m.n == (facts if m.name == "mc1_facts" else 6 - facts), m.name
        assert m.ci is not None and m.ci.low <= m.value <= m.ci.high
    schema = report_json_schema()
    assert "schema_version" in schema["properties"]


def test_markdown_renders_from_json_alone(report_dir: Path) -> None:
    md = render_markdown(load_report(report_dir / "report.json"))
    for heading in ("## Executive summary", "## Coverage matrix", "## Findings by risk", "## Probe results",
                    "## Methodology and limitations", "## Manual review checklist"):
        assert heading in md
    assert "- [ ] " in md and "95% CI" in md and "(n=6)" in md
    assert md == (report_dir / "report.md").read_text()


def _html(md: str) -> str:
    parser = MarkdownIt("gfm-like")
    parser.linkify.set({"fuzzy_link": False})
    return parser.render(md)


def test_model_text_renders_inert(report_dir: Path) -> None:
    report = load_report(report_dir / "report.json")
    probe = report.probes[0]
    probe.worst_examples = [Example(sample_id="x|y", prompt=HOSTILE, output=HOSTILE, expected=HOSTILE, score=0.5)]
    probe.errors = [HOSTILE]
    html = _html(render_markdown(report))
    assert "<script" not in html and "<img" not in html and "<a " not in html
    assert "<h1>injected" not in html and "<h1># injected" not in html
    assert "&lt;script&gt;" in html  # shown, not executed
    # the examples table keeps its 5 columns: the '|' in model text did not split cells
    rows = [r for r in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S) if "alert(1)" in r]
    assert rows and all(r.count("<td>") == 5 for r in rows)


def test_malformed_reports_are_refused_with_file_and_key(tmp_path: Path, report_dir: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReportError, match=r"bad\.json: line 1, column 2: malformed JSON"):
        load_report(bad)
    raw = json.loads((report_dir / "report.json").read_text())
    raw["summary"]["status"] = "great"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ReportError, match=r"bad\.json: summary\.status"):
        load_report(bad)


class _Exploding:
    """A backend wrapper whose log-likelihood call fails in a chosen way."""

    def __init__(self, inner, exc: BaseException) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.exc = inner, exc

    def info(self):  # type: ignore[no-untyped-def]
        return self.inner.info()

    def capabilities(self):  # type: ignore[no-untyped-def]
        return self.inner.capabilities()

    def generate(self, *a, **k):  # type: ignore[no-untyped-def]
        raise self.exc

    def loglikelihood(self, *a, **k):  # type: ignore[no-untyped-def]
        raise self.exc


def test_a_failing_probe_is_an_error_never_a_pass(backend_factory, tmp_path: Path) -> None:
    out = tmp_path / "run"
    report = run_audit(AuditConfig(model="tiny", out=out), model=_Exploding(backend_factory(), RuntimeError("boom")))
    p = report.probe("misinformation.truthfulness_mc")
    assert p.status is Status.error and "boom" in p.errors[0] and not p.metrics
    risk = next(r for a in report.areas for r in a.risks if r.id == "III.1")
    assert risk.status is Status.error and report.summary.status is Status.error


def test_interrupted_run_keeps_a_partial_report(backend_factory, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_audit(AuditConfig(model="tiny", out=out), model=_Exploding(backend_factory(), KeyboardInterrupt()))
    report = load_report(out / "report.json")
    assert report.run.interrupted and not report.run.complete
    assert "Partial report (interrupted)" in (out / "report.md").read_text()


def test_markdown_reads_as_written_when_rendered(report_dir: Path) -> None:
    """Rendered as GitHub does, every id, name and time reads exactly as in the JSON, with no stray
    backslash (CommonMark shows escapes inside code spans literally), while model text stays inert
    (test_model_text_renders_inert)."""
    import html as htmllib

    report = load_report(report_dir / "report.json")
    for p in report.probes:  # leave the model's own text out: what is checked here is ours
        p.worst_examples, p.errors = [], []
    md = render_markdown(report)
    text = htmllib.unescape(re.sub(r"<[^>]+>", "", _html(md)))
    shown = [report.run.id, report.model.id, report.run.started_at, report.model.fingerprint_sha256[:16],
             *(p.id for p in report.probes), *(a.name for a in report.areas),
             *(r.name for a in report.areas for r in a.risks)]
    missing = [s for s in shown if s not in text]
    assert not missing, missing
    assert "\\" not in text, text[max(0, text.find("\\") - 80): text.find("\\") + 80]
    # and the raw file reads cleanly too: no escaped dashes, dots or colons in ids and times
    assert f"`{report.run.id}`" in md and report.run.started_at in md


def test_csv_exports_one_row_per_metric_and_samples_without_formulas(report_dir: Path) -> None:
    import csv
    import io

    from reports import render_metrics_csv, render_samples_csv

    report = load_report(report_dir / "report.json")
    rows = list(csv.DictReader(io.StringIO(render_metrics_csv(report))))
    metrics = [(p.id, m) for p in report.probes for m in p.metrics]
    assert len(rows) == len(metrics)
    for row, (pid, m) in zip(rows, metrics):
        assert row["probe"] == pid and row["metric"] == m.name and row["n"] == str(m.n)
        assert row["value"] == ("" if m.value is None else repr(m.value))
    hostile = [{"id": "a", "output": "=HYPERLINK(\"http://x\")", "score": -0.5, "nested": {"k": [1, 2]}},
               {"id": "b", "output": "@SUM(A1)", "extra": True}]
    parsed = list(csv.DictReader(io.StringIO(render_samples_csv(hostile))))
    assert [r["output"] for r in parsed] == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1)"]  # text, not formulas
    assert parsed[0]["score"] == "-0.5" and parsed[0]["nested"] == '{"k": [1, 2]}' and parsed[1]["extra"] == "true"
    proc = lm_audit_cli("report", "render", str(report_dir / "report.json"), "--format", "csv", "--samples",
                        "misinformation.truthfulness_mc")
    assert proc.returncode == 0, proc.stderr
    assert len(list(csv.DictReader(io.StringIO(proc.stdout)))) == report.probe("misinformation.truthfulness_mc").n_samples


def lm_audit_cli(*args: str):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "audit", *args], capture_output=True, text=True, timeout=120)


def test_markdown_is_trimmed_to_the_job_summary_limit_and_says_so(report_dir: Path) -> None:
    """A report too long for a GitHub job summary (1 MiB) sheds per-probe detail, worst examples first,
    and says at the top what it left out and where the full detail is; the findings stay."""
    report = load_report(report_dir / "report.json")
    full = render_markdown(report)
    assert "Trimmed to fit" not in full
    for p in report.probes:  # ~0.5 MB of model text: long examples everywhere
        p.worst_examples = [Example(sample_id=f"{p.id}-{i}", prompt="p" * 3000, output="o " * 1500, score=1.0)
                            for i in range(10)]
    big = render_markdown(report, max_bytes=None)
    assert len(big.encode()) > 300_000
    # room for the examples cut to 120 characters (3 texts of ~130 bytes each), not for 400-character ones
    limit = len(full.encode()) + len(report.probes) * 10 * 3 * 260
    trimmed = render_markdown(report, max_bytes=limit)
    assert len(trimmed.encode()) <= limit
    assert "Trimmed to fit" in trimmed and "report.json" in trimmed.split("## Executive summary")[0]
    assert "worst examples shortened" in trimmed and "o o o" in trimmed
    tight = render_markdown(report, max_bytes=len(full.encode()) + 2_000)
    assert "worst examples left out" in tight and "o o o" not in tight
    assert "## Findings by risk" in tight and "## Manual review checklist" in tight
    tiny = render_markdown(report, max_bytes=20_000)  # even the findings do not fit: cut, and said
    assert len(tiny.encode()) <= 20_000 and "Cut here at the size limit" in tiny
