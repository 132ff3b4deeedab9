"""One sanitiser for untrusted text on its way to a terminal, JUnit XML or Markdown: escape
sequences, control characters and bidi formatting removed, XML-illegal characters replaced. A
report whose names, outputs and errors carry all of them renders JUnit that parses (ElementTree,
junitparser) and prints nothing a terminal would act on."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from audit import AuditConfig, run_audit
from audit.cli._group import one_line
from audit.policy import MetricCheck, Policy, evaluate
from reports import (
    AuditReport,
    Example,
    ProbeReport,
    Status,
    escape_markdown,
    load_report,
    render_junit,
    render_markdown,
    sanitize_text,
)
from tests.test_backend_contract import FixedBackend

ESC = "\x1b"
# Control characters, a colour, an OSC 8 hyperlink, an 8-bit CSI (clear screen), bidi overrides,
# embeddings, isolates and marks, a lone surrogate, the two BMP non-characters, a CRLF.
NASTY = (f"a\x00b\x07c\x08{ESC}[31mRED{ESC}[0m {ESC}]8;;https://evil.example/{ESC}\\link{ESC}]8;;{ESC}\\ "
         "\x9b2J\u202eevil\u202c \u2066x\u2069\u200f\u200e \u202a\u202b\u202d \ud800 \ufffe\uffff \x7f\x85end\r\nnext")
# Report files cannot hold a lone surrogate (load_report refuses one): NASTY less that, for them.
NASTY_FILE = NASTY.replace(" \ud800", "")
SHOWN = "abcRED link evil x"  # how NASTY starts once sanitised: the text stays, the sequences go
# What must never reach a terminal, a JUnit file or Markdown.
FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                       r"\ud800-\udfff\ufffe\uffff]")


def lm_audit_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process: exit code, stdout, stderr."""
    from audit.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


# --- the sanitiser ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (f"{ESC}[31mred{ESC}[0m plain", "red plain"),
    (f"{ESC}[1;38;5;196mbold{ESC}[K", "bold"),
    (f"{ESC}]8;;https://evil.example/{ESC}\\click{ESC}]8;;{ESC}\\", "click"),  # OSC 8 link, ST-terminated
    (f"{ESC}]0;window title\x07after", "after"),  # OSC, BEL-terminated
    (f"{ESC}P1$r0m{ESC}\\dcs", "dcs"),  # DCS string
    ("\x9b2J\x9d0;t\x9cc1", "c1"),  # 8-bit CSI and OSC
    (f"{ESC}(Bcharset {ESC}7saved {ESC}c", "charset saved "),
    (f"{ESC}]8;;unterminated link text", "8;;unterminated link text"),  # the introducer goes, the text shows
    ("nul\x00 bel\x07 bs\x08 vt\x0b ff\x0c del\x7f nel\x85 csi\x9b", "nul bel bs vt ff del nel csi"),
    ("\u202eevil\u202c \u2066iso\u2069 \u200fmark\u200e \u202a\u202b\u202d\u2067\u2068\u061c", "evil iso mark "),
    ("lone \ud800 \udfff surrogates", "lone \ufffd \ufffd surrogates"),
    ("non-characters \ufffe\uffff", "non-characters \ufffd\ufffd"),
    ("tab\tkept, é 中 😀 kept", "tab\tkept, é 中 😀 kept"),
    ("a\r\nb\rc\u2028d\u2029e\nf", "a\nb\nc\nd\ne\nf"),
])
def test_sanitize_text_removes_what_a_terminal_acts_on(text: str, expected: str) -> None:
    assert sanitize_text(text) == expected
    assert sanitize_text(text, newlines=False) == expected.replace("\n", " ")


def test_any_text_comes_out_xml_legal_utf8_and_inert() -> None:
    every_bmp = "".join(map(chr, range(0x10000)))
    for text in (every_bmp, every_bmp[::-1], NASTY * 3, "\U0001f600\U0010ffff"):
        clean = sanitize_text(text)
        assert not FORBIDDEN.search(clean.replace("\n", "").replace("\t", ""))
        clean.encode("utf-8")  # no lone surrogate left
        element = ET.Element("a", b=clean)
        element.text = clean
        assert ET.fromstring(ET.tostring(element, encoding="unicode")).text == clean
    assert sanitize_text(every_bmp).count("\ufffd") == 1 + 2048 + 2  # U+FFFD itself, the surrogates, FFFE/FFFF


def test_escape_markdown_goes_through_the_sanitiser() -> None:
    md = escape_markdown(NASTY)
    assert not FORBIDDEN.search(md) and ESC not in md
    assert "RED" in md and "link" in md and "evil" in md and "\ufffd" in md
    assert "evil\\.example" not in md and "https[:]//" not in md  # the OSC link's URL went with the sequence
    assert escape_markdown(f"{ESC}[31m" * 50 + "x", max_chars=10) == "x"  # sanitised before it is cut


def test_one_line_is_sanitised() -> None:
    assert one_line(f"\n {ESC}[31mboom{ESC}[0m \u202egnp.exe\r\nsecond") == "boom gnp.exe"
    assert one_line(f"{ESC}]8;;x{ESC}\\\n") == ""


# --- a hostile report: JUnit, Markdown, the terminal ---------------------------------------------

@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> AuditReport:
    out = tmp_path_factory.mktemp("hostile")
    return run_audit(AuditConfig(model="fixed", probes=["malicious_use.compliance"], out=out / "run",
                                 pii={"nlp_model": "none"}), model=FixedBackend())


def _hostile(clean: AuditReport, nasty: str) -> AuditReport:
    """The real report with ``nasty`` in its model id, area and risk names, outputs, notes, a probe
    id and its error, and the run's errors."""
    report = clean.model_copy(deep=True)
    report.model.id = "m" + nasty
    for area in report.areas:
        area.name += nasty
        for risk in area.risks:
            risk.name += nasty
    probe = report.probes[0]
    probe.worst_examples = [Example(sample_id="s" + nasty, prompt="p" + nasty, output="o" + nasty,
                                    expected="e" + nasty, detail=nasty)]
    probe.notes.append(nasty)
    report.probes.append(ProbeReport(id="x.y" + nasty, version="1", description=nasty, kind="generation",
                                     risks=["IV.1"], status=Status.error, errors=[nasty + "\nmore"]))
    report.errors = [nasty]
    return report


@pytest.fixture
def hostile(clean: AuditReport) -> AuditReport:
    return _hostile(clean, NASTY)


def _write(clean: AuditReport, path: Path) -> Path:
    """A hostile report.json (all of NASTY that a report file may hold)."""
    path.write_text(_hostile(clean, NASTY_FILE).model_dump_json(), encoding="utf-8")
    return path


def test_junit_of_a_hostile_report_always_parses(hostile: AuditReport, tmp_path: Path) -> None:
    from junitparser import Failure, JUnitXml

    report = hostile.model_copy(deep=True)
    report.policy = evaluate(Policy(checks=[MetricCheck(id="check " + NASTY, probe="malicious_use.compliance",
                                                        metric="compliance_rate", max=0.0, severity="block")]),
                             report)
    xml = render_junit(report)
    assert not FORBIDDEN.search(xml.replace("\n", "").replace("\t", ""))
    root = ET.fromstring(xml)
    names = {tc.get("name") for tc in root.iter("testcase")}
    assert names == {sanitize_text(c.name, newlines=False) for c in report.policy.checks}
    assert f"check {SHOWN}  \ufffd \ufffd\ufffd end next" in names
    path = tmp_path / "junit.xml"
    path.write_text(xml, encoding="utf-8")
    suites = JUnitXml.fromfile(str(path))
    failing = {case.name for suite in suites for case in suite if any(isinstance(r, Failure) for r in case.result)}
    assert failing == {sanitize_text(c.name, newlines=False) for c in report.policy.blocking_failures}
    assert any(name.startswith(f"probe x.y{SHOWN}") for name in failing)  # the errored probe, named


def test_markdown_of_a_hostile_report_is_inert(hostile: AuditReport) -> None:
    md = render_markdown(hostile)
    assert not FORBIDDEN.search(md.replace("\n", "").replace("\t", "")) and ESC not in md
    assert "o" + sanitize_text(NASTY).split("\n")[0][:5] in md.replace("\\", "")


def test_gate_prints_and_writes_a_hostile_report_safely(clean: AuditReport, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(clean, tmp_path / "report.json")
    assert load_report(path).model.id == "m" + NASTY_FILE
    junit = tmp_path / "junit.xml"
    code, out, err = lm_audit_here(capsys, "gate", str(path), "--junit", str(junit))
    assert code == 1, err
    assert not FORBIDDEN.search(out.replace("\n", "")) and not FORBIDDEN.search(err.replace("\n", ""))
    lines = out.splitlines()
    assert any(ln.startswith(f"  BLOCK probe x.y{SHOWN}") and f"errored: {SHOWN}" in ln for ln in lines)
    assert all(ln.startswith(("policy ", "  BLOCK ", "  warn  ")) for ln in lines)  # one line per check
    ET.parse(junit)


def test_run_summary_prints_report_strings_safely(hostile: AuditReport, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import audit.runner

    report = hostile.model_copy(deep=True)
    report.run.directory = str(tmp_path / f"run{ESC}]0;title\x07")
    monkeypatch.setattr(audit.runner, "run_audit", lambda *args, **kwargs: report)
    code, out, err = lm_audit_here(capsys, "run", "--model", "fixed", "--out", str(tmp_path / "out"), "--quiet")
    assert code == 0, err
    assert not FORBIDDEN.search(out.replace("\n", "")) and not FORBIDDEN.search(err.replace("\n", ""))
    assert f"probe x.y{SHOWN}" in err and f"errored: {SHOWN}" in err
    assert f"report: {tmp_path / 'run'}/report.json" in out


def test_diff_prints_a_hostile_report_safely(clean: AuditReport, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(clean, tmp_path / "old.json")
    new_report = load_report(old)
    new_report.probes = new_report.probes[:1]
    new = tmp_path / "new.json"
    new.write_text(new_report.model_dump_json(), encoding="utf-8")
    code, out, err = lm_audit_here(capsys, "diff", str(old), str(new), "--force")
    assert code == 0, err
    assert not FORBIDDEN.search(out.replace("\n", "")) and f"x.y{SHOWN}" in out.replace("\\", "")
    code, out, err = lm_audit_here(capsys, "diff", str(old), str(new), "--force", "--format", "json")
    assert code == 0, err
    assert out.isascii()  # everything else escaped: lossless, and inert on a terminal
    assert any(p["probe"] == "x.y" + NASTY_FILE for p in json.loads(out)["probes"])
