"""The HTML report in a real browser (headless Chromium over the DevTools protocol, tests/_browser.py).

A tiny model is trained to answer every prompt with markup that would run script if it were pasted
into the page as HTML. Its report must load with no console errors, exceptions, Content-Security-
Policy violations or requests beyond the file itself; show that markup as text; run none of it; put
the status grid and the forest plot on the first screen, drawn; and its example filters must hide
and restore rows. A control page that does paste the markup in proves the checks can see it.

Skipped when no Chromium is found (apt-get install chromium, or set LM_AUDIT_CHROMIUM).
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from audit import AuditConfig, run_audit
from audit.scorers import PIIOptions, ScorerSpec
from reports import AuditReport, load_report
from reports._htmlkit import document
from tests._browser import (
    CHROMIUM_ENV,
    INSTALL_HINT,
    Browser,
    PageEvents,
    decode_png,
    find_chromium,
)
from tests.conftest import corpus, make_model, train
from tests.test_gate_hardening import lm_audit_here

CHROMIUM = find_chromium()
if CHROMIUM is None:
    pytest.skip(f"no headless browser ({CHROMIUM_ENV}={os.environ[CHROMIUM_ENV]!r} is not a program): {INSTALL_HINT}"
                if os.environ.get(CHROMIUM_ENV) else f"no headless browser: {INSTALL_HINT}", allow_module_level=True)
pytestmark = pytest.mark.slow

# Each would change the title if the browser ran it as markup.
INJECTIONS = ['<script>document.title="pwned"</script>',
              "<img src=x onerror=\"document.title='pwned'\">",
              "<a href=\"javascript:document.title='pwned'\">click</a>"]
REPLY = " " + " ".join(INJECTIONS)
# Probes that take seconds at limit 6, among them two that list generated replies as worst examples
# (misinformation.false_premise, misinformation.harmful_advice); the other probes' risks show in the
# grid as not evaluated. All 18 probes with the default scorers take over a minute on 2 cores.
PROBES = ["bias.group_disparity", "bias.stereotype_pairs", "misinformation.false_premise",
          "misinformation.harmful_advice", "malicious_use.compliance", "interaction.identity"]
# Pattern and lexicon scorers: validated in a second, where the default embedding heads take a minute.
SCORERS = {"toxicity": "profanity", "regard": "regard-lexicon", "refusal": "refusal-patterns",
           "claims": "claims-patterns", "identity": "identity-patterns", "non_answer": "nonanswer-rules"}
SCREEN = (1280, 900)


def _injecting_model():  # type: ignore[no-untyped-def]
    """A tiny Llama trained to answer anything with ``REPLY``. Its tokenizer is the tests' BPE but
    trained without the pre-tokenizer's word split and with ``REPLY`` in its corpus, so the whole
    reply is one token and a few dozen steps teach it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from audit.models._hf import HFBackend

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus() + [REPLY] * 200, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    assert len(fast(REPLY)["input_ids"]) <= 3, fast.tokenize(REPLY)
    texts = [line + REPLY for line in random.Random(0).sample(corpus(), 48)]
    model = train(make_model(fast), fast, texts, steps=60)
    return HFBackend(model, fast, model_id="tiny")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AuditReport]:
    out = tmp_path_factory.mktemp("browser") / "run"
    config = AuditConfig(model="tiny", out=out, limit=6, probes=PROBES, pii=PIIOptions(nlp_model="none"),
                         scorers={role: ScorerSpec(name=name) for role, name in SCORERS.items()})
    run_audit(config, model=_injecting_model())
    assert (out / "report.html").is_file(), "the run wrote no report.html"
    report = load_report(out / "report.json")
    planted = [p.id for p in report.probes if any(i in (e.output or "") for e in p.worst_examples for i in INJECTIONS)]
    assert planted, "no worst example holds the planted reply: the tiny model did not learn it"
    return out, report


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(CHROMIUM, width=SCREEN[0], height=SCREEN[1]) as b:
        yield b


@pytest.fixture()
def loaded(run: tuple[Path, AuditReport], browser: Browser) -> PageEvents:
    """The report, freshly opened in the shared browser (a load takes a fraction of a second)."""
    return browser.open(run[0] / "report.html")


def _title(page: Path) -> str:
    found = re.search(r"<title>(.*?)</title>", page.read_text(encoding="utf-8"), flags=re.S)
    assert found, f"{page} has no <title>"
    return html.unescape(found.group(1))


def _markup_report(browser: Browser) -> dict[str, int]:
    """What in the page could run: scripts, images, javascript: links, event-handler attributes, frames."""
    return browser.evaluate("""({
        scripts: document.scripts.length,
        scriptsWithSrc: document.querySelectorAll('script[src]').length,
        images: document.images.length,
        jsLinks: document.querySelectorAll('a[href^="javascript" i], [src^="javascript" i]').length,
        handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(
            a => a.name.toLowerCase().startsWith('on'))).length,
        frames: document.querySelectorAll('iframe, object, embed, frame, base, form').length,
    })""")


def test_the_checks_see_planted_markup(tmp_path: Path, browser: Browser) -> None:
    """Control: the same markup pasted in raw runs in a page without a policy, and under the report's
    policy is blocked and reported; so the checks below can fail."""
    raw = "".join(INJECTIONS)
    bare = tmp_path / "bare.html"
    bare.write_text(f"<!DOCTYPE html><title>bare</title><body>{raw}<script>alert('pwned')</script></body>")
    events = browser.open(bare)
    assert browser.evaluate("document.title") == "pwned"
    assert events.dialogs == ["alert: pwned"]  # recorded and dismissed: an alert cannot hang the tests
    assert _markup_report(browser)["images"] == 1 and _markup_report(browser)["jsLinks"] == 1
    guarded = tmp_path / "guarded.html"
    guarded.write_text(document("guarded", raw))
    events = browser.open(guarded)
    assert browser.evaluate("document.title") == "guarded"
    assert any("Content Security Policy" in e for e in events.log), events
    assert len(events.requests) > 1, events.requests  # the image was asked for, and blocked


def test_report_loads_cleanly_and_runs_no_model_text(run: tuple[Path, AuditReport], browser: Browser,
                                                     loaded: PageEvents) -> None:
    page = run[0] / "report.html"
    assert loaded.problems() == [], loaded  # console errors/warnings, exceptions, CSP violations, dialogs
    assert loaded.requests == [page.resolve().as_uri()], loaded.requests
    assert browser.evaluate("document.title") == _title(page) != "pwned"
    markup = _markup_report(browser)
    assert markup == {"scripts": 1, "scriptsWithSrc": 0, "images": 0, "jsLinks": 0, "handlers": 0, "frames": 0}, markup


def test_model_text_is_shown_as_text(run: tuple[Path, AuditReport], browser: Browser, loaded: PageEvents) -> None:
    report = run[1]
    # Text inside a closed <details> is not rendered, so not in innerText: open them, as a reader would.
    browser.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    text = browser.evaluate("document.body.innerText")
    for injection in INJECTIONS:
        assert injection in text, injection
    for probe in report.probes:
        shown = [i for e in probe.worst_examples for i in INJECTIONS if i in (e.output or "")]
        if not shown:
            continue
        section = browser.evaluate(f"(() => {{ const s = document.getElementById({json.dumps('probe-' + probe.id)});"
                                   " return s && [...s.querySelectorAll('table.examples')]"
                                   ".map(t => t.innerText).join('\\n'); })()")
        assert section is not None, f"no section probe-{probe.id}"
        assert shown[0] in section, f"probe-{probe.id}: its worst-example table does not show the reply"


def test_first_screen_shows_the_status_grid_and_forest_plot(browser: Browser, loaded: PageEvents) -> None:
    browser.evaluate("window.scrollTo(0, 0)")
    image = decode_png(browser.screenshot())
    assert (image.width, image.height) == SCREEN
    assert image.ink((0, 0, *SCREEN)) > 0.01, "the first screen is blank"
    for selector in ("#status-grid", "#forest-plot"):
        rect = browser.rect(selector)
        assert rect is not None, f"no {selector}"
        box = rect.clipped(*SCREEN)
        assert box is not None, f"{selector} is not on the first {SCREEN[0]}x{SCREEN[1]} screen: {rect}"
        ink = image.ink(box)
        assert ink >= 0.02, f"{selector}: {ink:.1%} of its visible part {box} is drawn"


def test_example_filter_hides_rows_that_do_not_match_and_shows_them_when_cleared(browser: Browser,
                                                                               loaded: PageEvents) -> None:
    tables = browser.evaluate("""(() => {
        const filters = [...document.querySelectorAll('input.example-filter')];
        return [...document.querySelectorAll('table.examples')].map(t => {
            const before = filters.filter(f => f.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING);
            return {filter: filters.indexOf(before[before.length - 1]),
                    rows: [...t.rows].filter(r => r.querySelector('td')).map(r => r.textContent)};
        });
    })()""")
    assert tables, "no table.examples"
    assert all(t["filter"] >= 0 for t in tables), "a worst-example table has no filter box before it"
    # a table whose rows differ, and a word of its first row that another row lacks
    n, word = next(((n, w) for n, t in enumerate(tables) if len(t["rows"]) > 1
                    for w in re.findall(r"[A-Za-z]{4,}", t["rows"][0])
                    if any(w.lower() not in r.lower() for r in t["rows"][1:])), (-1, ""))
    assert word, "no worst-example table has two rows that differ"
    k, rows = tables[n]["filter"], tables[n]["rows"]

    def hidden() -> list[bool]:
        return browser.evaluate(f"[...document.querySelectorAll('table.examples')[{n}].rows]"
                                ".filter(r => r.querySelector('td'))"
                                ".map(r => r.hidden || getComputedStyle(r).display === 'none')")

    try:
        browser.type_into("input.example-filter", word, index=k)
        assert hidden() == [word.lower() not in r.lower() for r in rows], (word, rows)
        browser.type_into("input.example-filter", "no row says this 7f3a", index=k)
        assert all(hidden())
    finally:
        browser.type_into("input.example-filter", "", index=k)
    assert not any(hidden())


def test_compare_page_loads_cleanly_and_shows_names_as_text(run: tuple[Path, AuditReport], browser: Browser,
                                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``lm-audit compare --format html`` of the run and a copy whose model is named with markup and is
    1000 times larger (so the page draws its charts against model size)."""
    out = run[0]
    other = tmp_path / "other"
    shutil.copytree(out / "samples", other / "samples")
    data = json.loads((out / "report.json").read_text())
    data["model"]["id"] = INJECTIONS[2]
    data["model"]["parameters"] = 1000 * (data["model"]["parameters"] or 1)
    (other / "report.json").write_text(json.dumps(data))
    page = tmp_path / "compare.html"
    code, _, err = lm_audit_here(capsys, "compare", str(out / "report.json"), str(other / "report.json"),
                                 "--format", "html", "--out", str(page))
    assert code == 0, err
    events = browser.open(page)
    assert events.problems() == [] and events.requests == [page.resolve().as_uri()], events
    assert browser.evaluate("document.title") == _title(page)
    assert _markup_report(browser) == {"scripts": 1, "scriptsWithSrc": 0, "images": 0, "jsLinks": 0, "handlers": 0,
                                       "frames": 0}
    browser.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    assert INJECTIONS[2] in browser.evaluate("document.body.innerText")
    assert browser.evaluate("document.querySelectorAll('#scale-charts svg').length") > 0
    assert decode_png(browser.screenshot()).ink((0, 0, *SCREEN)) > 0.01, "the first screen is blank"


def _encode_png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB/RGBA PNG of ``pixels`` (height, width, channels) whose rows cycle through the five
    filter types, written the long way from the specification."""
    height, width, bpp = pixels.shape
    rows, prior = [], bytes(width * bpp)
    for y in range(height):
        line, kind, out = pixels[y].tobytes(), y % 5, bytearray()
        for i, x in enumerate(line):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prior[i], (prior[i - bpp] if i >= bpp else 0)
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            out.append((x - (0, a, b, (a + b) // 2, paeth)[kind]) % 256)
        rows.append(bytes([kind]) + bytes(out))
        prior = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, {3: 2, 4: 6}[bpp], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4])
def test_png_decoder_reads_every_filter_type(channels: int) -> None:
    pixels = np.random.default_rng(channels).integers(0, 256, size=(11, 7, channels), dtype=np.uint8)
    image = decode_png(_encode_png(pixels))
    assert (image.width, image.height) == (7, 11) and np.array_equal(image.pixels, pixels)
    assert image.ink((0, 0, 7, 11)) > 0.9 and image.ink((2, 2, 2, 5)) == 0.0
    with pytest.raises(ValueError, match="not a PNG"):
        decode_png(b"GIF89a")
