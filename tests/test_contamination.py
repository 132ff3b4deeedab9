"""contamination.membership: a model trained on the audit's items is flagged on that probe and the
same model untrained is not; a corpus holding exactly ten items finds those ten at their offsets,
and filler finds none; the per-token log-probabilities it reads agree with the log-likelihood path."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from audit import AuditConfig, run_audit
from audit.policy import Policy, evaluate
from probes import LoglikRequest, ProbeContext, get_probe
from probes._membership import first_words, fresh_items, min_k_prob, perturb
from probes._ngram import GramIndex, normalise, scan
from reports import AuditReport, render_markdown
from tests.conftest import make_model, train
from tests.test_backend_contract import FixedBackend

TRUTHFUL = "misinformation.truthfulness_mc"
PROBE = "contamination.membership"
N_ITEMS, WORDS = 6, 12  # items trained on and checked; words of each scored


def _items(probe_id: str, **ctx: Any) -> list[tuple[str, str]]:
    cls = get_probe(probe_id)
    return cls().item_texts(ProbeContext(model=None, params=cls.Params(), standard_items=cls.standard_items, **ctx))


def _audit(tmp_path: Path, model: Any, name: str, **extra: Any) -> AuditReport:
    config = AuditConfig(model=name, probes=[PROBE, TRUTHFUL], limit=N_ITEMS, out=tmp_path / name, show_pii=True,
                         pii={"nlp_model": "none"}, policy="default",
                         probe_params={PROBE: {"max_words": WORDS, "calibration_items": 40, "heldout_items": 40}},
                         **extra)
    return run_audit(config, model=model)


# ---- the per-token log-probabilities --------------------------------------------------------------

def test_token_logprobs_sum_to_the_texts_loglikelihood_in_any_batch(backend_factory) -> None:  # type: ignore[no-untyped-def]
    backend = backend_factory()
    texts = ["The cat watched the garden.", "Q: Is ice cold?\nA: Yes, ice is cold.", "A", ""]
    each = backend.token_logprobs(texts)
    assert each[3] == [] and all(each[:3])
    whole = backend.loglikelihood([LoglikRequest(context="", continuation=t) for t in texts[:3]])
    for values, res in zip(each, whole):
        assert len(values) == res.n_tokens and sum(values) == pytest.approx(res.logprob, abs=1e-4)
    backend.batch_size = 1  # one text per pass: the same values
    for one, batched in zip(backend.token_logprobs(texts), each):
        assert one == pytest.approx(batched, abs=1e-5)


def test_min_k_perturbations_and_fresh_items_are_deterministic() -> None:
    assert min_k_prob([-1.0, -5.0, -0.1, -0.2, -3.0], 0.4) == pytest.approx(-4.0)
    assert min_k_prob([]) is None
    text = "What happens if you swallow gum? It passes through your system."
    copies = [perturb(text, 0, "k", c) for c in range(3)]
    assert copies == [perturb(text, 0, "k", c) for c in range(3)] and all(c != text for c in copies)
    assert all(len(c) == len(text) for c in copies)  # words swapped for words of the same length
    assert fresh_items(1, 5, [10, 30], "a") == fresh_items(1, 5, [10, 30], "a") != fresh_items(2, 5, [10, 30], "a")


# ---- Min-K% Prob against perturbed copies: a planted fault and its clean control -------------------

@pytest.fixture(scope="module")
def trained(tiny_tokenizer):  # type: ignore[no-untyped-def]
    """A 2-layer Llama trained on the first words of the first truthfulness items (what the probe scores)."""
    texts = [first_words(t, WORDS) for _, t in _items(TRUTHFUL, limit=N_ITEMS)]
    return train(make_model(tiny_tokenizer), tiny_tokenizer, texts, steps=120, lr=1e-2)


def _hf(tokenizer: Any, model: Any, name: str) -> Any:
    from audit.models._hf import HFBackend

    return HFBackend(model, tokenizer, model_id=name, use_chat_template=False)


def test_a_model_trained_on_the_items_is_flagged_and_the_untrained_one_is_not(
        tmp_path: Path, tiny_tokenizer, trained) -> None:  # type: ignore[no-untyped-def]
    seen = _audit(tmp_path, _hf(tiny_tokenizer, trained, "trained"), "trained")
    c = seen.probe(TRUTHFUL).contamination
    assert c is not None and c.method == "min_k" and c.n == N_ITEMS and c.flagged >= N_ITEMS - 1
    assert c.baseline is not None and c.ci is not None and c.baseline.ci is not None
    assert c.ci.low > c.baseline.ci.high and "possibly contaminated" in c.message
    probe = seen.probe(PROBE)
    assert probe.contamination is None and not probe.errors
    fpr = next(m for m in probe.metrics if m.name == "calibration_fpr")
    assert fpr.n == 40 and fpr.ci is not None and fpr.value is not None and fpr.value <= 0.2  # measured, with n
    share = next(m for m in probe.metrics if m.name == "flagged_share")
    assert share.value is not None and share.value >= (N_ITEMS - 1) / N_ITEMS and share.n == N_ITEMS
    md = render_markdown(seen)
    assert "**possibly contaminated**" in md and "Possibly contaminated" in md
    # The default policy warns about it; `contaminated: block` blocks.
    assert seen.policy is not None
    warned = [c for c in seen.policy.checks if c.name == f"{TRUTHFUL} items not seen in training"]
    assert len(warned) == 1 and not warned[0].passed and warned[0].severity == "warn"
    name = f"{TRUTHFUL} items not seen in training"
    blocked = [c for c in evaluate(Policy(contaminated="block"), seen).checks if c.name == name]
    assert len(blocked) == 1 and blocked[0].severity == "block" and not blocked[0].passed
    assert not any(c.name == name for c in evaluate(Policy(contaminated="ignore"), seen).checks)

    clean = _audit(tmp_path, _hf(tiny_tokenizer, make_model(tiny_tokenizer), "untrained"), "untrained")
    assert all(p.contamination is None for p in clean.probes)
    assert next(m for m in clean.probe(PROBE).metrics if m.name == "flagged_share").value <= 1 / N_ITEMS


def test_a_backend_without_token_logprobs_leaves_the_probe_not_evaluated(tmp_path: Path) -> None:
    class NoTokens(FixedBackend):
        def capabilities(self) -> Any:
            return super().capabilities().model_copy(update={"token_logprobs": False})

    report = run_audit(AuditConfig(model="fixed", probes=[PROBE], limit=2, out=tmp_path / "run", show_pii=True),
                       model=NoTokens())
    p = report.probe(PROBE)
    assert p.status.value == "not_evaluated" and "token_logprobs" in p.notes[0]


# ---- a corpus: exactly the planted items, at their offsets ------------------------------------------

BLOCK = 4096  # the scan's block size in these tests: several plants straddle a block boundary


def _filler(rng: random.Random, n_words: int) -> str:
    """Words no item holds (invented), with punctuation and line breaks."""
    syll = ["zo", "qua", "vex", "ul", "pry", "dag", "ko", "mib", "tresh", "yl"]
    out = []
    for k in range(n_words):
        out.append("".join(rng.choice(syll) for _ in range(rng.randint(1, 3))) + ("." if k % 9 == 8 else ""))
    return " ".join(out) + "\n"


def _write_text(path: Path, plants: list[tuple[str, str]], rng: random.Random, *, straddle: bool,
                compress: bool = False) -> dict[str, int]:
    """A text file with each plant embedded in filler (when ``straddle``, across a block boundary);
    returns each plant's byte offset (into the decompressed stream for .gz)."""
    data = _filler(rng, 300)
    where = {}
    for key, text in plants:
        if straddle:  # start 40 bytes before the next block boundary
            boundary = (len(data.encode()) // BLOCK + 1) * BLOCK
            while len(data.encode()) < boundary - 200:
                data += _filler(rng, 5)
            data += "x" * (boundary - 40 - len(data.encode()) - 1) + " "
        where[key] = len(data.encode())
        data += text + " " + _filler(rng, 200)
    raw = data.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return where


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, int]]]:
    """Ten items of two probes planted in a directory: a text file (two across block boundaries), a
    JSONL file (a ``text`` field, and a record whose strings hold an item), and in a subdirectory a
    text file and a gzip-compressed one. Returns the directory and, per item key, (file, offset)."""
    rng = random.Random(7)
    root = tmp_path_factory.mktemp("corpus")
    items = [(f"{TRUTHFUL}:{i}", t) for i, t in _items(TRUTHFUL)[:6]]
    items += [(f"misinformation.false_premise:{i}", t) for i, t in _items("misinformation.false_premise")[:4]]
    expected: dict[str, tuple[str, int]] = {}
    text = root / "a.txt"
    for key, off in _write_text(text, items[0:3], rng, straddle=True).items():
        expected[key] = (str(text), off)
    jsonl = root / "b.jsonl"
    lines, at = [], 0
    for k in range(12):
        record: dict[str, Any] = {"id": k, "text": _filler(rng, 30)}
        if k in (3, 8):
            key, item = items[3 if k == 3 else 4]
            record["text"] = _filler(rng, 10) + item + " " + _filler(rng, 10)
            expected[key] = (str(jsonl), at)
        if k == 10:  # no text field: every string of the record, in order
            key, item = items[5]
            question, *answers = item.split("\n")
            record = {"id": k, "q": question, "answers": answers}
            expected[key] = (str(jsonl), at)
        line = json.dumps(record) + "\n"
        lines.append(line)
        at += len(line.encode())
    jsonl.write_text("".join(lines) + "not json at all\n", encoding="utf-8")
    sub = root / "sub" / "deeper"
    for key, off in _write_text(sub / "c.txt", items[6:8], rng, straddle=False).items():
        expected[key] = (str(sub / "c.txt"), off)
    for key, off in _write_text(sub / "d.txt.gz", items[8:10], rng, straddle=True, compress=True).items():
        expected[key] = (str(sub / "d.txt.gz"), off)
    (root / "filler.txt").write_text(_filler(rng, 3000), encoding="utf-8")
    return root, expected


def _corpus_audit(tmp_path: Path, corpus: list[Path], name: str = "run") -> AuditReport:
    config = AuditConfig(model="fixed", probes=[PROBE, TRUTHFUL, "misinformation.false_premise"], out=tmp_path / name,
                         show_pii=True, corpus=corpus, probe_params={PROBE: {"block_bytes": BLOCK}})
    return run_audit(config, model=FixedBackend())


def _samples(tmp_path: Path, name: str = "run") -> list[dict[str, Any]]:
    text = (tmp_path / name / "samples" / f"{PROBE}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_a_corpus_holding_ten_items_finds_exactly_those_at_their_offsets(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    root, expected = corpus
    report = _corpus_audit(tmp_path, [root])
    samples = _samples(tmp_path)
    found = {s["id"]: s for s in samples if s["flagged"]}
    assert sorted(found) == sorted(expected)
    for key, (path, offset) in expected.items():
        assert found[key]["locations"][0] == f"{path}:{offset}", key
    assert all(s["flagged"] is False for s in samples if s["id"] not in expected)
    truthful = report.probe(TRUTHFUL).contamination
    assert truthful is not None and truthful.method == "ngram" and truthful.flagged == 6
    premise = report.probe("misinformation.false_premise").contamination
    assert premise is not None and premise.flagged == 4 and premise.n == len(_items("misinformation.false_premise"))
    probe = report.probe(PROBE)
    share = next(m for m in probe.metrics if m.name == "flagged_share")
    assert share.n == len(samples) and share.value == pytest.approx(10 / len(samples))
    assert any("JSONL lines are not JSON" in n for n in probe.notes)  # the malformed line, skipped and said


def test_the_scan_is_the_same_whatever_the_block_size(corpus) -> None:  # type: ignore[no-untyped-def]
    root, expected = corpus
    texts = [t for _, t in _items(TRUTHFUL)] + [t for _, t in _items("misinformation.false_premise")]
    index = GramIndex(texts, 13)
    runs = [scan(index, [root], block_bytes=size) for size in (64, 1000, BLOCK, 1 << 20)]
    for r in runs[1:]:
        assert r.counts == runs[0].counts
        assert [[(h.path, h.offset) for h in hits] for hits in r.hits] == \
            [[(h.path, h.offset) for h in hits] for hits in runs[0].hits]
    assert sum(1 for c in runs[0].counts if c) == len(expected)


def test_a_corpus_of_filler_matches_nothing(tmp_path: Path) -> None:
    rng = random.Random(3)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "filler.txt").write_text(_filler(rng, 20000), encoding="utf-8")
    report = _corpus_audit(tmp_path, [tmp_path / "c"])
    assert all(p.contamination is None for p in report.probes)
    assert not any(s["flagged"] for s in _samples(tmp_path))


def test_short_items_match_whole_and_normalisation_keeps_offsets() -> None:
    raw = "Dear \u201cFriend\u201d \u2014 HELLO, World!".encode()
    assert len(normalise(raw)) == len(raw) and normalise(raw).split() == [b"dear", b"friend", b"hello", b"world"]
    index = GramIndex(["Hello world, dear friend", "an item of exactly thirteen words that is long enough to be a gram"],
                      13)
    assert index.whole == [True, False]


def test_a_bad_corpus_path_exits_2_naming_the_flag(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "audit", "run", "--model", "x", "--probes", PROBE,
                           "--corpus", str(tmp_path / "missing")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert f"--corpus {tmp_path / 'missing'}: no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_corpus_without_a_probe_that_takes_it_is_refused(tmp_path: Path) -> None:
    from audit.errors import BadInput

    with pytest.raises(BadInput, match="no selected probe takes a corpus") as e:
        run_audit(AuditConfig(model="fixed", probes=[TRUTHFUL], corpus=[tmp_path], out=tmp_path / "run"),
                  model=FixedBackend())
    assert e.value.setting == "corpus"



def test_the_corpus_walk_reads_regular_files_only_and_skips_endless_lines(tmp_path: Path) -> None:
    """Memory stays bounded and the scan ends whatever the corpus holds: a JSONL line longer than the
    limit (here a gz of one 40 MiB line) is skipped and listed, the records after it still found at
    their offsets; links (which may lead out of the directory) and FIFOs (which would block) are skipped."""
    import os

    from probes._ngram import GramIndex, corpus_files, scan

    item = "the quick brown fox jumps over the lazy dog again today near the old mill"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with gzip.open(corpus / "a.jsonl.gz", "wb") as f:
        f.write(b"0" * (40 << 20) + b"\n" + json.dumps({"text": item}).encode() + b"\n")
    outside = tmp_path / "secret.txt"
    outside.write_text(item)
    (corpus / "link.txt").symlink_to(outside)
    os.mkfifo(corpus / "fifo.txt")
    files = corpus_files([corpus])
    assert [f.name for f in files] == ["a.jsonl.gz"]
    result = scan(GramIndex([item], 13), files, block_bytes=1 << 20)
    assert result.skipped_lines == [f"{corpus / 'a.jsonl.gz'}:1 (a line over 16 MiB)"]
    assert [h.offset for h in result.hits[0]] == [(40 << 20) + 1]
