"""report.html: one self-contained page under a strict CSP, rendered from the JSON alone, with every
string of the report shown as text (checked with the stdlib parser; the browser tests are apart)."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from audit import AuditConfig, run_audit
from reports import (
    AuditReport,
    CheckResult,
    Contamination,
    Example,
    PolicyReport,
    Status,
    load_report,
    render_html,
)
from tests.test_reports import HOSTILE

HOSTILE_HTML = HOSTILE + " </textarea><svg onload=alert(1)> <style>body{display:none}</style> " \
    "<a href=\"javascript:alert(1)\">x</a> url(http://evil.example/x) &amp; &#60;b&#62;"
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # data directly inside, in order
    content: list[Node | str] = field(default_factory=list)  # children and data, in document order

    def walk(self):  # type: ignore[no-untyped-def]
        yield self
        for c in self.children:
            yield from c.walk()

    def find(self, tag: str | None = None, cls: str | None = None, ident: str | None = None) -> list[Node]:
        return [n for n in self.walk() if (tag is None or n.tag == tag) and (ident is None or n.attrs.get("id") == ident)
                and (cls is None or cls in n.attrs.get("class", "").split())]

    def all_text(self) -> str:
        return "".join(c if isinstance(c, str) else c.all_text() for c in self.content)


class _Tree(HTMLParser):
    """A strict tree builder: every end tag must close the innermost open element (no implied
    closing), so stray markup in the report's text would show up as a nesting error."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.data: list[str] = []  # text outside script and style, in document order

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [k for k, _ in attrs]
        assert len(names) == len(set(names)), f"duplicate attribute in <{tag}>: {names}"
        node = Node(tag, {k: v or "" for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(node)
        self.stack[-1].content.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(node)
        self.stack[-1].content.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert tag not in _VOID, f"end tag of void element {tag}"
        top = self.stack.pop()
        assert top.tag == tag, f"</{tag}> closes <{top.tag}>"

    def handle_data(self, data: str) -> None:
        self.stack[-1].text.append(data)
        self.stack[-1].content.append(data)
        if self.stack[-1].tag not in ("script", "style"):
            self.data.append(data)


def parse(page: str) -> _Tree:
    tree = _Tree()
    tree.feed(page)
    tree.close()
    assert tree.stack == [tree.root], [n.tag for n in tree.stack]
    return tree


def _sha(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def assert_locked_down(page: str) -> _Tree:
    """The page parses, its CSP allows exactly its one style and one script, and nothing in it
    loads, runs or links outside the page."""
    tree = parse(page)
    root = tree.root
    (html_el,) = root.find("html")
    head, body = [c for c in html_el.children]
    assert (head.tag, body.tag) == ("head", "body")
    first, csp = head.children[:2]
    assert first.tag == "meta" and first.attrs == {"charset": "utf-8"}
    assert csp.tag == "meta" and csp.attrs["http-equiv"] == "Content-Security-Policy"
    policy = csp.attrs["content"]
    (style,) = root.find("style")
    (script,) = root.find("script")
    style_text, script_text = "".join(style.text), "".join(script.text)
    assert style.parent is head and script.attrs == {} and style.attrs == {}
    assert "default-src 'none'" in policy and "img-src 'none'" in policy
    assert f"style-src {_sha(style_text)};" in policy and f"script-src {_sha(script_text)};" in policy
    assert "url(" not in style_text and "@import" not in style_text and "@font-face" not in style_text
    ids = [n.attrs["id"] for n in root.walk() if "id" in n.attrs]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for n in root.walk():
        for name in n.attrs:
            assert name != "style" and not name.startswith("on") and name not in ("src", "srcset", "action",
                                                                                   "formaction", "xlink:href"), \
                (n.tag, name)
        if "href" in n.attrs:
            href = n.attrs["href"]
            assert href.startswith("#") and href[1:] in ids, href
    assert not root.find("img") and not root.find("iframe") and not root.find("textarea") and not root.find("link")
    assert len(root.find("h1")) == 1
    for th in root.find("th"):
        assert th.attrs.get("scope") in ("col", "row"), th.all_text()
    for table in root.find("table"):
        assert table.children[0].tag == "caption", table.attrs
    return tree


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer) -> Path:  # type: ignore[no-untyped-def]
    from audit.models._hf import HFBackend
    from tests.conftest import make_model

    out = tmp_path_factory.mktemp("html") / "run"
    backend = HFBackend(make_model(tiny_tokenizer), tiny_tokenizer, model_id="tiny")
    run_audit(AuditConfig(model="tiny", out=out, limit=6), model=backend)
    return out


@pytest.fixture(scope="module")
def report(run_dir: Path) -> AuditReport:
    return load_report(run_dir / "report.json")


@pytest.fixture(scope="module")
def page(report: AuditReport) -> str:
    return render_html(report)


def _gated(report: AuditReport) -> list[tuple[str, str, bool]]:
    return [(p.id, m.name, m.corrected is not None) for p in report.probes for m in p.metrics
            if m.threshold is not None and (m.threshold.warn is not None or m.threshold.fail is not None)
            and m.higher_is_better is not None]


def test_the_run_writes_report_html_as_rendered_from_the_json_alone(run_dir: Path, report: AuditReport,
                                                                    page: str) -> None:
    written = (run_dir / "report.html").read_text(encoding="utf-8")
    assert written == page
    t0 = time.perf_counter()
    again = render_html(load_report(run_dir / "report.json"))
    assert time.perf_counter() - t0 < 5  # well under a second on an idle machine; slack for a busy CI box
    assert again == page  # deterministic: the same report, the same bytes
    assert len(page.encode()) < 1_000_000


def test_the_page_loads_nothing_and_runs_only_its_own_script(page: str) -> None:
    tree = assert_locked_down(page)
    script = "".join(tree.root.find("script")[0].text)
    assert ".hidden=" in script and "toLowerCase" in script  # the filter hides rows, case-insensitively


def test_header_says_status_model_run_and_smoke(report: AuditReport, page: str) -> None:
    tree = parse(page)
    (h1,) = tree.root.find("h1")
    assert report.model.id in h1.all_text() and report.summary.status.value in h1.all_text()
    text = "".join(tree.data)
    for fact in (report.run.id, report.run.started_at, report.model.fingerprint_sha256[:16], report.tool.version,
                 report.taxonomy.name, report.taxonomy.version, f"{report.model.parameters:,}"):
        assert fact in text, fact
    assert report.model.fingerprint_sha256[:17] not in page.split("<main>")[0]  # the short form in the header
    assert "Smoke run (--limit 6)." in text and "Partial report" not in text and "Release gate" not in text


def test_status_grid_has_one_linked_cell_per_risk_with_its_status_word(report: AuditReport, page: str) -> None:
    tree = parse(page)
    (grid,) = tree.root.find(ident="status-grid")
    cells = grid.find("li", cls="cell")
    risks = [r for a in report.areas for r in a.risks]
    assert len(cells) == len(risks) and len(grid.find(cls="area-row")) == len(report.areas)
    for cell, r in zip(cells, risks):
        assert f"s-{r.status.value}" in cell.attrs["class"].split()
        (link,) = cell.find("a")
        assert link.attrs["href"] == f"#risk-{r.id}"
        (badge,) = cell.find(cls="st")
        assert badge.all_text() == r.status.value.replace("_", " ")
        assert r.name in cell.all_text()
    counts = "".join(tree.root.find("ul", cls="counts")[0].all_text())
    for status, n in report.summary.risks_by_status.items():
        assert f"{status.replace('_', ' ')} {n}" in counts


def test_forest_plot_has_one_row_per_gated_metric(report: AuditReport, page: str) -> None:
    tree = parse(page)
    (forest,) = tree.root.find(ident="forest-plot")
    assert forest.tag == "section"
    rows = forest.find("g", cls="row")
    gated = _gated(report)
    assert len(rows) == len(gated) > 10
    labels = [r.find("text")[0].all_text() for r in rows]
    expected = [f"{pid} · {name}" + (" (corrected)" if corrected else "") for pid, name, corrected in gated]
    assert sorted(labels) == sorted(expected)
    assert any(c for _, _, c in gated)  # the fixture has scorer-corrected rates
    first, *others = forest.find("svg")
    ticks = [t.all_text() for t in first.find("text", cls="tick")]
    assert ticks[0] == "0" and "1" in ticks and first.attrs["aria-label"].startswith("Rates and shares (0 to 1)")
    # the units off the 0..1 scale (the language NLL ratio, canary exposure in bits) get charts of their own
    assert {"Metrics in ratio", "Metrics in bits"} <= {o.attrs["aria-label"].split(":")[0] for o in others}


def test_each_probe_has_a_section_open_when_it_needs_reading(report: AuditReport, page: str) -> None:
    tree = parse(page)
    for p in report.probes:
        (section,) = tree.root.find("section", ident=f"probe-{p.id}")
        (details,) = [c for c in section.children if c.tag == "details"]
        opened = p.status in (Status.fail, Status.error, Status.inconclusive, Status.warn)
        assert ("open" in details.attrs) == opened, p.id
        assert p.status.value.replace("_", " ") in details.find("summary")[0].all_text()
        tables = section.find("table", cls="metrics")
        assert bool(tables) == bool(p.metrics)
        if p.metrics:
            assert len(tables[0].find("tbody")[0].find("tr")) == len(p.metrics)
        groups = sum(1 for m in p.metrics for b in m.breakdowns if len(b.groups) >= 2)
        assert len(section.find("svg")) == groups, p.id
    # findings by risk: each risk's anchor, its probes linked to their sections
    for a in report.areas:
        for r in a.risks:
            (finding,) = tree.root.find(ident=f"risk-{r.id}")
            hrefs = {n.attrs["href"] for n in finding.find("a")}
            assert {f"#probe-{x}" for x in r.probes} <= hrefs


def test_worst_examples_have_a_filter_box_and_likelihood_pairs_are_labelled(report: AuditReport,
                                                                            page: str) -> None:
    tree = parse(page)
    with_examples = [p for p in report.probes if p.worst_examples]
    boxes = tree.root.find("input", cls="example-filter")
    assert len(boxes) == len(with_examples) > 0
    for box in boxes:
        siblings = box.parent.children  # type: ignore[union-attr]
        table = siblings[siblings.index(box) + 1]
        assert table.tag == "table" and "examples" in table.attrs["class"].split()
        assert box.attrs["type"] == "search" and box.attrs["aria-label"]
        assert box.attrs["aria-controls"] == table.attrs["id"]
    for p in with_examples:
        (section,) = tree.root.find("section", ident=f"probe-{p.id}")
        (table,) = section.find("table", cls="examples")
        header = [th.all_text() for th in table.find("th")]
        assert ("favoured text (or the model's answer)" in header) == (p.kind == "loglikelihood")
        assert ("model output" in header) == (p.kind != "loglikelihood")
        assert len(table.find("tbody")[0].find("tr")) == len(p.worst_examples)
        cells = table.find("div", cls="text")
        assert p.worst_examples[0].prompt in [c.all_text() for c in cells]


def _hostile(report: AuditReport) -> AuditReport:
    bad = report.model_copy(deep=True)
    bad.model.id = HOSTILE_HTML
    bad.errors = [HOSTILE_HTML]
    area = bad.areas[0]
    area.name = HOSTILE_HTML
    area.risks[0].name = HOSTILE_HTML
    area.risks[1].id = HOSTILE_HTML  # an id from a user's taxonomy: anchors and links escaped too
    area.risks[1].review_questions = [HOSTILE_HTML]
    likelihood = next(p for p in bad.probes if p.kind == "loglikelihood" and p.metrics[0].breakdowns)
    generation = next(p for p in bad.probes if p.kind == "generation" and p.metrics[0].breakdowns)
    for p in (likelihood, generation):
        p.description = HOSTILE_HTML
        p.errors = [HOSTILE_HTML]
        p.notes = [HOSTILE_HTML]
        p.worst_examples = [Example(sample_id=HOSTILE_HTML, prompt=HOSTILE_HTML, output=HOSTILE_HTML,
                                    expected=HOSTILE_HTML, score=0.5, detail=HOSTILE_HTML)]
        m = p.metrics[0]
        m.name, m.description = HOSTILE_HTML, HOSTILE_HTML
        for b in m.breakdowns:
            b.by = HOSTILE_HTML
            b.groups[0].group = HOSTILE_HTML
    # the user's own system prompt, and a contamination finding naming a corpus file
    bad.model.system_prompt, bad.model.system_prompt_sha256 = HOSTILE_HTML, "ab" * 32
    bad.model.system_prompt_note = "applied through the chat template"
    generation.contamination = Contamination(method="ngram", flagged=1, n=6, value=1 / 6, ci=None,
                                             message=HOSTILE_HTML)
    bad.policy = PolicyReport(policy=HOSTILE_HTML, checks=[
        CheckResult(name=HOSTILE_HTML, area="I", severity="block", passed=False, message=HOSTILE_HTML),
        CheckResult(name="w", area="I", severity="warn", passed=False, message="a warning " + HOSTILE_HTML),
        CheckResult(name="ok", area="I", severity="block", passed=True, message="fine")])
    return bad


def test_hostile_text_anywhere_in_the_report_appears_only_as_text(report: AuditReport) -> None:
    page = render_html(_hostile(report))
    tree = assert_locked_down(page)  # one script, one style, no handler, no link out, nesting intact
    assert not tree.root.find("svg") or all(not any(a.startswith("on") for a in n.attrs)
                                           for n in tree.root.find("svg"))
    for needle in ("<script>alert", "<img", "<textarea", "</textarea>", "<style>body", "<svg onload",
                   'href="javascript', "<a href=\"java"):
        assert needle not in page, needle
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;/textarea&gt;&lt;svg onload=alert(1)&gt;" in page
    assert "&amp;amp; &amp;#60;b&amp;#62;" in page  # entities in the text are shown, not decoded
    # shown in full where it is model text, as the reader must see it
    cells = [c.all_text() for c in tree.root.find("div", cls="text")]
    # examples; probe errors and notes; run errors; the system prompt
    assert cells.count(HOSTILE_HTML) == 2 * 4 + 2 * 2 + 1 + 1
    assert 'id="system-prompt"' in page and page.count("possibly contaminated") >= 2  # its section and its risk
    text = "".join(tree.data)
    assert "Release gate" in text and "blocked" in text and "a warning " + HOSTILE_HTML in text
    grid_links = [a.attrs["href"] for a in tree.root.find(ident="status-grid")[0].find("a")]
    assert "#risk-" + re.sub(r"\s", "_", HOSTILE_HTML) in grid_links


def test_banners_for_partial_rescored_and_unredacted_runs(report: AuditReport) -> None:
    other = report.model_copy(deep=True)
    other.run.complete, other.run.interrupted, other.run.smoke = False, True, False
    other.run.rescore_of = "run-1 (/tmp/x)"
    other.show_pii = True
    text = "".join(parse(render_html(other)).data)
    for banner in ("Partial report (interrupted).", "Re-score of run run-1 (/tmp/x).", "PII not redacted."):
        assert banner in text
    assert "Smoke run" not in text


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit", *args], capture_output=True, text=True, timeout=120)


def test_report_render_format_html(run_dir: Path, page: str, tmp_path: Path) -> None:
    out = tmp_path / "again.html"
    proc = _cli("report", "render", str(run_dir / "report.json"), "--format", "html", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8") == page
