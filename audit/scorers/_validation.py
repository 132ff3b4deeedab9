"""Measure a scorer on a labelled set: precision, recall (sensitivity), specificity and F1 with intervals,
the confusion counts, accuracy by kind."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from audit.errors import BadInput
from audit.scorers._base import Scorer
from audit.scorers._registry import ROLES
from probes import read_jsonl, stats
from reports import Figure, GroupValue, ScorerValidation


class LabelledText(BaseModel):
    """One labelled text: ``label`` is true when the text has the property (toxic, negative regard)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    text: str = Field(min_length=1)
    label: bool
    kind: str = Field(min_length=1, description="why the item is there: explicit, implicit, quoted, negation ...")
    # refusal sets: refusal / attempt / non_answer (the three-way judgement); None elsewhere
    judgement: str | None = None
    prompt: str | None = None  # refusal sets: the request the text replies to (the three-way judgement reads it)
    source: str | None = None  # the style it was written in: forum, chat, assistant, small_model ...


# Held-out sets live in data/heldout/ (ROLE.jsonl, and toxicity_functional.jsonl), were written
# apart from the development sets and the scorers, and are frozen: SHA256SUMS there records them.
HELDOUT_DIR = "heldout"
# Functional-test kinds (and held-out kinds) whose texts mention an identity group without being toxic.
IDENTITY_KINDS = ("identity_neutral", "identity_positive", "reclaimed_use")


# A role whose labelled sets are another role's, relabelled: non-answers are judged on the refusal
# sets' three-way judgement (label: the judgement is non_answer; rows without a judgement are left out).
DERIVED: dict[str, tuple[str, str]] = {"non_answer": ("refusal", "non_answer")}
# The development set of a derived role (the refusal development set has no three-way judgement).
_DERIVED_DEVELOPMENT = {"non_answer": "train/refusal_v1.jsonl"}


def validation_set_path(measures: str) -> Path:
    """The project's development set for a property: ``audit/scorers/data/ROLE_validation.jsonl`` (a derived
    role's is another role's set, relabelled when loaded with ``load_role_set``)."""
    if measures not in ROLES:
        raise BadInput(f"no validation set for scorers of {measures!r} (known: {', '.join(ROLES)})")
    if measures in _DERIVED_DEVELOPMENT:
        return scorer_data(_DERIVED_DEVELOPMENT[measures])
    return scorer_data(f"{measures}_validation.jsonl")


def load_role_set(path: Path, measures: str) -> list[LabelledText]:
    """A labelled set as ``measures`` reads it: relabelled from the three-way judgement for a derived role."""
    if measures not in DERIVED:
        return load_labelled(path)
    _, positive = DERIVED[measures]
    items = [i.model_copy(update={"label": i.judgement == positive})
             for i in read_jsonl(path, LabelledText) if i.judgement]
    return _both_labels(path, items)


def scorer_data(name: str) -> Path:
    """Path of a labelled set shipped under audit/scorers/data/."""
    return Path(str(resources.files("audit.scorers").joinpath("data", name)))


def load_labelled(path: Path) -> list[LabelledText]:
    """Records of a labelled JSONL file; errors name the file and line."""
    return _both_labels(path, read_jsonl(path, LabelledText))


def _both_labels(path: Path, items: list[LabelledText]) -> list[LabelledText]:
    if all(i.label for i in items) or not any(i.label for i in items):
        raise BadInput(f"{path}: a validation set needs both positive and negative items")
    return items


def validate(scorer: Scorer, items: Sequence[LabelledText], dataset: str, sha256: str, seed: int = 0) -> ScorerValidation:
    """Score every item once and compare with its label at the scorer's threshold."""
    truth = [i.label for i in items]
    prompts = [i.prompt or "" for i in items] if any(i.prompt for i in items) else None
    predicted = scorer.flags(scorer.score([i.text for i in items], prompts))
    tp = sum(1 for t, p in zip(truth, predicted) if t and p)
    tn = sum(1 for t, p in zip(truth, predicted) if not t and not p)
    n_pred, n_pos = sum(predicted), sum(truth)
    n_neg = len(truth) - n_pos
    precision = Figure(value=tp / n_pred if n_pred else None, ci=stats.wilson_interval(tp, n_pred), n=n_pred)
    recall = Figure(value=tp / n_pos, ci=stats.wilson_interval(tp, n_pos), n=n_pos)
    specificity = Figure(value=tn / n_neg if n_neg else None, ci=stats.wilson_interval(tn, n_neg), n=n_neg)
    f1v, f1ci, n = stats.f1_interval(truth, predicted, seed=seed)
    by_kind = stats.grouped("kind", ((i.kind, t == p) for i, t, p in zip(items, truth, predicted)), "rate")
    return ScorerValidation(dataset=dataset, sha256=sha256, n=len(items), n_positive=n_pos, threshold=scorer.threshold,
                            precision=precision, recall=recall, f1=Figure(value=f1v, ci=f1ci, n=n),
                            accuracy_by_kind=by_kind.groups, specificity=specificity,
                            tp=tp, fn=n_pos - tp, tn=tn, fp=n_neg - tn)


def validate_on_project_set(scorer: Scorer, seed: int = 0) -> ScorerValidation:
    """Validate on the project's development set (the one the pattern scorers were tuned on)."""
    return _validate_file(scorer, validation_set_path(scorer.measures), "lm-risk-audit", seed)


def heldout_set_path(measures: str) -> Path | None:
    """The role's held-out labelled set (a derived role's: the other role's), or None when there is none."""
    path = scorer_data(f"{HELDOUT_DIR}/{DERIVED.get(measures, (measures,))[0]}.jsonl")
    return path if path.is_file() else None


def validate_heldout(scorer: Scorer, seed: int = 0) -> ScorerValidation | None:
    """Validate on the role's held-out set (dataset named 'lm-risk-audit held-out ROLE'); None without one."""
    path = heldout_set_path(scorer.measures)
    return None if path is None else _validate_file(scorer, path, "lm-risk-audit held-out", seed)


def _validate_file(scorer: Scorer, path: Path, prefix: str, seed: int) -> ScorerValidation:
    """``validate`` on a file as the scorer's role reads it, named after the file (and the relabelling)."""
    items = load_role_set(path, scorer.measures)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    relabelled = f" ({scorer.measures} labels)" if scorer.measures in DERIVED else ""
    return validate(scorer, items, f"{prefix} {path.stem}{relabelled}", sha, seed=seed)


def functional_tests(scorer: Scorer) -> tuple[list[GroupValue], Figure | None]:
    """Accuracy per functionality on the role's functional tests (``heldout/ROLE_functional.jsonl``),
    and the share of identity-mentioning non-toxic texts flagged (functional and held-out items of
    the ``IDENTITY_KINDS``). Empty and None when the role has no functional tests."""
    path = scorer_data(f"{HELDOUT_DIR}/{scorer.measures}_functional.jsonl")
    if not path.is_file():
        return [], None
    items = load_labelled(path)
    held = heldout_set_path(scorer.measures)
    extra = [i for i in load_labelled(held) if not i.label and i.kind.startswith("identity")] if held else []
    texts = [i.text for i in items] + [i.text for i in extra]
    flagged = scorer.flags(scorer.score(texts))
    by_kind = stats.grouped("functionality", ((i.kind, f == i.label) for i, f in zip(items, flagged)), "rate")
    identity = [f for i, f in zip([*items, *extra], flagged) if not i.label and (i.kind in IDENTITY_KINDS
                                                                                 or i.kind.startswith("identity"))]
    fp = Figure(value=sum(identity) / len(identity), ci=stats.wilson_interval(sum(identity), len(identity)),
                n=len(identity)) if identity else None
    return by_kind.groups, fp
