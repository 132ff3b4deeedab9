"""Scorers: the contract (raise, never 0), the offline default, an hf-classifier built here,
validation arithmetic, and the project's labelled sets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from audit.errors import BadInput
from audit.scorers import (
    LabelledText,
    Scorer,
    ScorerError,
    ScorerSet,
    ScorerSpec,
    build_scorer,
    load_labelled,
    validate,
    validation_set_path,
)
from audit.scorers.hf_classifier import HFClassifierScorer
from audit.scorers.regard_lexicon import RegardLexiconScorer
from probes import DatasetError

TOXIC = ["you stupid idiot", "shut up you moron", "you are a worthless idiot", "go away stupid moron"] * 3
CLEAN = ["the cat watched the garden", "a doctor visited the market square", "our teacher built a table",
         "the river crossed the north road"] * 3


class _Fixed(Scorer):
    name = "fixed"
    measures = "toxicity"

    def __init__(self, values: list[float], threshold: float = 0.5) -> None:
        super().__init__(threshold)
        self.values = values

    @property
    def version(self) -> str:
        return "test"

    def _score(self, texts: list[str]) -> list[float]:
        return self.values


class _Broken(_Fixed):
    def _score(self, texts: list[str]) -> list[float]:
        raise RuntimeError("model exploded")


@pytest.mark.parametrize("values, needle", [([0.1], "returned 1 scores for 2"), ([0.1, math.nan], "nan"),
                                            ([0.1, 1.5], "1.5"), ([0.1, -0.2], "-0.2")])
def test_bad_scores_raise_never_zero(values: list[float], needle: str) -> None:
    with pytest.raises(ScorerError, match=needle):
        _Fixed(values).score(["a", "b"])


def test_library_failure_is_a_scorer_error_naming_the_scorer() -> None:
    with pytest.raises(ScorerError, match="scorer fixed failed: RuntimeError: model exploded"):
        _Broken([]).score(["a"])
    assert _Broken([]).score([]) == []  # nothing to score is not a failure


def test_profanity_scorer_offline_default() -> None:
    s = build_scorer("toxicity", ScorerSpec(name="profanity"))
    scores = s.score(["fuck off, you worthless idiot", "the museum opens at nine on sundays"])
    assert scores[0] > 0.9 and scores[1] < 0.5
    assert s.flags(scores) == [True, False]
    assert "alt-profanity-check" in s.version and "implicit" in s.note


def test_regard_lexicon_negation() -> None:
    score = RegardLexiconScorer.score_one
    assert score("The man was known for being lazy and dishonest.") == 1.0
    assert score("The man was not lazy at all.") == 0.0
    assert score("She was not honest with anyone.") == 1.0
    assert score("The woman was kind and brilliant.") == 0.0
    assert score("The man worked as a carpenter.") == 0.0
    assert score("He was kind but lazy.") == 0.5


def test_validation_arithmetic() -> None:
    items = [LabelledText(id=str(i), text="t", label=lab, kind=k)
             for i, (lab, k) in enumerate([(True, "a"), (True, "a"), (True, "b"), (False, "b"), (False, "c")])]
    # predictions: TP, TP, FN, FP, TN
    v = validate(_Fixed([0.9, 0.8, 0.1, 0.7, 0.2]), items, "toy", "0" * 64)
    assert v.precision.value == pytest.approx(2 / 3) and v.precision.n == 3
    assert v.recall.value == pytest.approx(2 / 3) and v.recall.n == 3
    assert v.f1.value == pytest.approx(2 / 3) and v.f1.ci is not None and v.f1.ci.low <= 2 / 3 <= v.f1.ci.high
    acc = {g.group: g.value for g in v.accuracy_by_kind}
    assert acc == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert v.precision.ci is not None and v.precision.ci.method == "wilson"


def test_project_validation_sets_are_large_and_varied() -> None:
    tox = load_labelled(validation_set_path("toxicity"))
    assert len(tox) >= 200
    kinds = {i.kind for i in tox}
    assert {"implicit", "quoted", "reclaimed", "medical", "negation"} <= kinds
    assert 0.35 <= sum(i.label for i in tox) / len(tox) <= 0.65
    regard = load_labelled(validation_set_path("regard"))
    assert len(regard) >= 100 and {"negated_negative", "negated_positive"} <= {i.kind for i in regard}


def test_labelled_loader_errors_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "v.jsonl"
    p.write_text('{"id": "a", "text": "x", "label": true, "kind": "k"}\n{"id": "b", "text": "y", "kind": "k"}\n')
    with pytest.raises(DatasetError, match=r"v.jsonl: line 2: label"):
        load_labelled(p)
    p.write_text('{"id": "a", "text": "x", "label": true, "kind": "k"}\n')
    with pytest.raises(BadInput, match="both positive and negative"):
        load_labelled(p)


def test_scorer_set_builds_once_and_validates() -> None:
    s = ScorerSet()
    a = s.get("toxicity")
    assert s.get("toxicity") is a and a.validation is not None and a.validation.n >= 200
    info = a.info()
    assert info.validation is not None and info.measures == "toxicity" and info.threshold == 0.5
    with pytest.raises(BadInput, match=r"^scorers mood=\.\.\.: unknown role \(known: toxicity, regard,") as exc:
        ScorerSet({"mood": ScorerSpec(name="profanity")})
    assert exc.value.setting == "scorers"  # the CLI prints the flag that sets it
    with pytest.raises(BadInput, match="^scorers regard=profanity: profanity measures toxicity, not regard$"):
        build_scorer("regard", ScorerSpec(name="profanity"))
    with pytest.raises(BadInput, match="^scorers toxicity=hf-classifier: needs a model, as hf-classifier:PATH$"):
        build_scorer("toxicity", ScorerSpec(name="hf-classifier"))
    with pytest.raises(BadInput, match="^scorers claims=claims-patterns: takes no model or labels$"):
        build_scorer("claims", ScorerSpec(name="claims-patterns", labels=["claim"]))


def test_registry_declares_every_scorer_and_each_role_default() -> None:
    from pydantic import ValidationError

    from audit.scorers import ROLES, SCORER_NAMES, Scorer
    from audit.scorers._registry import all_scorers, register
    from taxonomy import validation_message

    scorers = all_scorers()
    assert set(SCORER_NAMES) == set(scorers) and SCORER_NAMES[: len(ROLES)] == tuple(ROLES.values())
    for name, cls in scorers.items():
        assert cls.name == name and cls.__doc__ and (cls.measures in ROLES or cls.takes_model)
    for role, default in ROLES.items():
        assert scorers[default].measures == role and not scorers[default].takes_model
        assert build_scorer(role, ScorerSpec(name=default)).measures == role
    with pytest.raises(ValidationError) as exc:
        ScorerSpec(name="nope")
    assert validation_message(exc.value) == f"name: unknown scorer 'nope' (known: {', '.join(SCORER_NAMES)})"

    class Bad(_Fixed):
        name = "Bad_Name"

    with pytest.raises(ValueError, match="lower-kebab-case"):
        register(Bad)
    Bad.name, Bad.measures = "mood-lexicon", "mood"
    with pytest.raises(ValueError, match="measures 'mood', not a role"):
        register(Bad)
    Bad.name, Bad.measures = "profanity", "toxicity"
    with pytest.raises(ValueError, match="registered twice"):
        register(Bad)
    assert all_scorers() == scorers and issubclass(Bad, Scorer)


# ---- hf-classifier on a classifier built and trained here ----------------------------------

def _classifier(tokenizer, labels: dict[int, str], multi: bool = False, steps: int = 60):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id,
                      num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()},
                      problem_type="multi_label_classification" if multi else "single_label_classification")
    model = LlamaForSequenceClassification(cfg)
    texts = TOXIC + CLEAN
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    y = torch.tensor([1] * len(TOXIC) + [0] * len(CLEAN))
    target = torch.nn.functional.one_hot(y, len(labels)).float() if multi else y
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**enc, labels=target).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def classifier_dir(tiny_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("clf")
    _classifier(tiny_tokenizer, {0: "ok", 1: "toxic"}).save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return d


def test_hf_classifier_scores_with_label_mapping_and_batching(classifier_dir: Path) -> None:
    s = HFClassifierScorer(str(classifier_dir), role="toxicity", batch_size=3)
    assert s._labels == ["toxic"]  # found by name
    scores = s.score(["you stupid idiot", "the cat watched the garden", "shut up you moron", "our teacher built a table"])
    assert scores[0] > 0.8 and scores[2] > 0.8 and scores[1] < 0.2 and scores[3] < 0.2
    one_batch = HFClassifierScorer(str(classifier_dir), role="toxicity", batch_size=64)
    assert one_batch.score(["you stupid idiot", "the cat watched the garden", "shut up you moron"]) == pytest.approx(
        scores[:3], abs=1e-5)  # padding does not change scores
    inverted = HFClassifierScorer(str(classifier_dir), role="toxicity", labels=["OK"])
    assert inverted.score(["you stupid idiot"])[0] == pytest.approx(1 - scores[0], abs=1e-5)
    assert "weights sha256" in s.version and "softmax" in s.version


def test_hf_classifier_label_errors(classifier_dir: Path, tiny_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInput, match="^scorers.toxicity.labels hateful: the model has no label 'hateful'.*its labels: ok, toxic"):
        HFClassifierScorer(str(classifier_dir), role="toxicity", labels=["hateful"])
    with pytest.raises(BadInput, match="every label counts"):
        HFClassifierScorer(str(classifier_dir), role="toxicity", labels=["ok", "toxic"])
    with pytest.raises(BadInput, match="--scorer-labels regard=LABEL"):
        HFClassifierScorer(str(classifier_dir), role="regard")  # neither label means negative regard
    with pytest.raises(BadInput, match="^scorers toxicity=hf-classifier:.*none: not a local directory"):
        HFClassifierScorer(str(tmp_path / "none"), role="toxicity")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="cannot load a text classifier"):
        HFClassifierScorer(str(tmp_path / "empty"), role="toxicity")


def test_hf_classifier_multi_label_uses_sigmoid(tiny_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "multi"
    _classifier(tiny_tokenizer, {0: "neutral", 1: "insult", 2: "threat"}, multi=True, steps=40).save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    s = HFClassifierScorer(str(d), role="toxicity")
    assert s._labels == ["insult", "threat"] and "sigmoid" in s.version
    a, b = s.score(["you stupid idiot", "the cat watched the garden"])
    assert a > 0.5 > b


@pytest.mark.slow
def test_cli_validates_default_and_user_classifier(classifier_dir: Path) -> None:
    from tests.test_cli import lm_audit

    proc = lm_audit("scorers", "validate", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    infos = {i["measures"]: i for i in json.loads(proc.stdout)}
    assert set(infos) == {"toxicity", "regard", "refusal", "claims", "identity", "non_answer"}
    v = infos["toxicity"]["validation"]
    assert v["n"] >= 200 and 0 < v["precision"]["value"] <= 1 and v["recall"]["ci"]["method"] == "wilson"
    proc = lm_audit("scorers", "validate", "--role", "toxicity", "--scorer",
                    f"toxicity=hf-classifier:{classifier_dir}", "--scorer-labels", "toxicity=toxic")
    assert proc.returncode == 0, proc.stderr
    assert "hf-classifier" in proc.stdout and "precision" in proc.stdout and "accuracy by kind" in proc.stdout
