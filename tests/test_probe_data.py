"""Data tests for the project's item sets: they fail when a set drifts.

Every file under probes/data/ has unique ids; no text of one probe's items appears in another
probe's file (an item that feeds two measurements is not two pieces of evidence); stereotype pairs
differ only in the group words their record names. (The scorers' refusal sets answer the probes'
own requests on purpose: a scorer is validated on the replies it will judge.)
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from probes import project_data

DATA = Path(str(project_data("stereotype_pairs.jsonl"))).parent
FILES = sorted(DATA.glob("*.jsonl"))
_ARTICLES = {"a", "an", "the"}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _strings(value: object) -> list[str]:
    """Every string of 25 characters or more inside a record (the texts, not the ids and tags)."""
    if isinstance(value, str):
        return [" ".join(value.lower().split())] if len(value) >= 25 else []
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_ids_are_unique(path: Path) -> None:
    ids = [r.get("id") for r in _rows(path)]
    assert all(ids) and not [i for i, c in Counter(ids).items() if c > 1]


def test_no_text_feeds_two_files() -> None:
    where: dict[str, set[str]] = defaultdict(set)
    for path in FILES:
        for row in _rows(path):
            for s in _strings({k: v for k, v in row.items() if k != "id"}):
                where[s].add(path.name)
    shared = {s: sorted(files) for s, files in where.items() if len(files) > 1}
    assert not shared, list(shared.items())[:3]


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.lower())


def test_stereotype_pairs_differ_only_in_their_group_words() -> None:
    for row in _rows(project_data("stereotype_pairs.jsonl")):
        a, b = _words(row["stereotype"]), _words(row["anti_stereotype"])
        i = 0
        while i < min(len(a), len(b)) and a[i] == b[i]:
            i += 1
        j = 0
        while j < min(len(a), len(b)) - i and a[-1 - j] == b[-1 - j]:
            j += 1
        middle_a, middle_b = set(a[i: len(a) - j]), set(b[i: len(b) - j])
        assert middle_a and middle_b, row["id"]
        assert middle_a <= set(_words(row["stereotyped_group"])) | _ARTICLES, (row["id"], middle_a)
        assert middle_b <= set(_words(row["contrast_group"])) | _ARTICLES, (row["id"], middle_b)


# ---- Confound controls: the bounds each set's datasheet (probes/data/README.md) states. ----

_ABSOLUTE = re.compile(r"\b(always|never|all|every|none|only)\b", re.IGNORECASE)
_TOKEN = re.compile(r"[a-z0-9']+")


def _opening(answer: str) -> str:
    """'yes' / 'no' / 'other', as misinformation.polarity reads an answer's first word."""
    words = answer.strip().split(maxsplit=1)
    first = words[0].strip(",.;:!").lower() if words else ""
    return first if first in ("yes", "no") else "other"


def _ratio(a: str, b: str) -> float:
    return max(len(a), len(b)) / min(len(a), len(b))


def _longer_share(rows: list[dict], good: str, bad: str) -> float:
    return sum(len(r[good]) > len(r[bad]) for r in rows) / len(rows)


# (file, good field, bad field, category field, categories, items, max length ratio within a pair)
PAIR_SETS = [
    ("harmful_advice.jsonl", "safe", "unsafe", "domain",
     {"medical_dosing", "drug_interactions", "electrical", "legal_deadlines", "household_safety"}, 70, 1.15),
    ("false_premise.jsonl", "correcting", "accepting", "domain", {"health", "science", "law", "finance"}, 80, 1.15),
    ("default_norms.jsonl", "inclusive", "narrow", "category",
     {"family", "couples", "gender_default", "names", "holidays", "ability", "culture_default", "gender_identity"},
     120, 1.15),
]


@pytest.mark.parametrize("name,good,bad,cat,cats,n,max_ratio", PAIR_SETS, ids=[s[0] for s in PAIR_SETS])
def test_pair_sets_are_length_matched_and_complete(name: str, good: str, bad: str, cat: str, cats: set[str],
                                                   n: int, max_ratio: float) -> None:
    rows = _rows(project_data(name))
    assert len(rows) == n
    counts = Counter(r[cat] for r in rows)
    assert set(counts) == cats and len(set(counts.values())) == 1, counts  # every category, equally
    over = [(r["id"], round(_ratio(r[good], r[bad]), 2)) for r in rows if _ratio(r[good], r[bad]) > max_ratio]
    assert not over, over
    assert 0.4 <= _longer_share(rows, good, bad) <= 0.6


def test_harmful_advice_polarity_is_balanced_within_domains() -> None:
    rows = _rows(project_data("harmful_advice.jsonl"))
    safe, unsafe = Counter(_opening(r["safe"]) for r in rows), Counter(_opening(r["unsafe"]) for r in rows)
    assert abs(safe["yes"] - unsafe["yes"]) <= 2 and abs(safe["no"] - unsafe["no"]) <= 2, (safe, unsafe)
    kinds: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        kinds[r["domain"]][(_opening(r["safe"]), _opening(r["unsafe"]))] += 1
    for domain, c in kinds.items():
        assert c[("yes", "no")] >= 3 and c[("no", "yes")] >= 3 and c[("other", "other")] >= 3, (domain, c)
    absolutes = [sum(bool(_ABSOLUTE.search(r[f])) for r in rows) for f in ("safe", "unsafe")]
    assert abs(absolutes[0] - absolutes[1]) <= 2, absolutes


def test_false_premise_answers_neither_echo_the_question_nor_share_an_opener() -> None:
    from probes._preference import overlap_f1

    rows = _rows(project_data("false_premise.jsonl"))
    openers = Counter(" ".join(_TOKEN.findall(r["correcting"].lower())[:2]) for r in rows)
    assert max(openers.values()) <= 8, openers.most_common(3)
    assert sum(_opening(r[f]) != "other" for r in rows for f in ("correcting", "accepting")) <= 6
    acc = [overlap_f1(r["accepting"], r["question"]) for r in rows]
    cor = [overlap_f1(r["correcting"], r["question"]) for r in rows]
    assert 0.35 <= sum(a > c for a, c in zip(acc, cor)) / len(rows) <= 0.65
    assert abs(sum(acc) - sum(cor)) / len(rows) <= 0.04


def test_truthfulness_polarity_length_and_absolutes_are_controlled() -> None:
    rows = _rows(project_data("truthfulness_mc.jsonl"))
    by_type: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_type[r["type"]].append(r)
    assert set(by_type) == {"misconception", "fact"} and len(by_type["misconception"]) >= 100
    for kind, items in by_type.items():
        for r in items:
            trues, falses = [r["best_answer"], *r["true_answers"]], r["false_answers"]
            assert len(trues) == 2 and len(falses) == 2, r["id"]
            pol = {_opening(a) for a in trues}
            assert len(pol) == 1 and pol <= {"yes", "no"}, r["id"]  # yes/no questions, true answers agree
            assert {_opening(a) for a in falses} == {"no", "yes"} - pol, r["id"]  # false answers say the opposite
            lengths = [len(a) for a in trues + falses]
            assert max(lengths) / min(lengths) <= 1.25, (r["id"], lengths)
        yes = sum(_opening(r["best_answer"]) == "yes" for r in items) / len(items)
        assert 0.45 <= yes <= 0.55, (kind, yes)
        per_cat: dict[str, Counter] = defaultdict(Counter)
        for r in items:
            per_cat[r["category"]][_opening(r["best_answer"])] += 1
        floor = 3 if kind == "misconception" else 1
        assert len(per_cat) == 10 and all(c["yes"] >= floor and c["no"] >= floor for c in per_cat.values()), per_cat
        with_abs_true = sum(bool(_ABSOLUTE.search(a)) for r in items for a in [r["best_answer"], *r["true_answers"]])
        with_abs_false = sum(bool(_ABSOLUTE.search(a)) for r in items for a in r["false_answers"])
        assert abs(with_abs_true - with_abs_false) <= 3 and with_abs_true + with_abs_false <= 0.15 * 4 * len(items)


def test_default_norms_pairs_are_minimal_edits() -> None:
    for row in _rows(project_data("default_norms.jsonl")):
        a = [w.strip(".,;:!?'\"") for w in row["narrow"].lower().split()]
        b = [w.strip(".,;:!?'\"") for w in row["inclusive"].lower().split()]
        i = 0
        while i < min(len(a), len(b)) and a[i] == b[i]:
            i += 1
        j = 0
        while j < min(len(a), len(b)) - i and a[-1 - j] == b[-1 - j]:
            j += 1
        span_a, span_b = a[i: len(a) - j], b[i: len(b) - j]
        assert (span_a or span_b) and len(span_a) <= 3 and len(span_b) <= 3, (row["id"], span_a, span_b)


# ---- Coverage ----

def test_over_refusal_covers_trigger_types_with_harmful_counterparts() -> None:
    benign = _rows(project_data("benign_lookalikes.jsonl"))
    harmful = {r["id"]: r for r in _rows(project_data("malicious_requests.jsonl"))}
    triggers = Counter(r["stratum"] for r in benign)
    assert len(benign) >= 150 and len(triggers) >= 8 and min(triggers.values()) >= 14, triggers
    for needed in ("homonyms", "figurative_language", "safe_targets", "safe_contexts", "definitions",
                   "historical_events", "public_figures", "fiction"):
        assert triggers[needed] >= 14, needed
    paired = [r["counterpart"] for r in benign if r.get("counterpart")]
    assert len(paired) >= 60
    assert not [c for c in paired if c not in harmful]  # every counterpart is a real compliance item
    assert max(Counter(paired).values()) <= 3


def test_malicious_requests_cover_weapons_and_censorship() -> None:
    rows = _rows(project_data("malicious_requests.jsonl"))
    kinds = Counter((r["stratum"], r["kind"]) for r in rows)
    assert kinds[("IV.3", "weapons")] >= 15 and kinds[("IV.4", "censorship")] >= 15, kinds
    assert {r["stratum"] for r in rows} == {"IV.1", "IV.2", "IV.3", "IV.4"}


def test_attribute_inference_has_cues_and_no_cue_controls_on_distinct_posts() -> None:
    rows = _rows(project_data("attribute_inference.jsonl"))
    cells = Counter((r["stratum"], r["cue"]) for r in rows)
    attributes = {"health", "sexual_orientation", "ethnicity", "religion", "political_view"}
    assert {a for a, _ in cells} == attributes
    assert all(cells[(a, True)] >= 10 and cells[(a, False)] >= 5 for a in attributes), cells
    posts = [r["text"].split("\n\n")[0] for r in rows]
    assert len(set(posts)) == len(posts)  # one question per post: items are independent
    assert len({r["cluster"] for r in rows}) == len(rows)


def test_pii_elicitation_has_sixty_templates() -> None:
    rows = _rows(project_data("pii_elicitation.jsonl"))
    clusters = Counter(r["cluster"] for r in rows)
    assert len(clusters) >= 60, len(clusters)
    assert len({r["text"] for r in rows}) == len(rows)
    from audit.scorers.pii import PII_ENTITIES

    assert {r["pii_type"] for r in rows} <= set(PII_ENTITIES)
    assert not [r["id"] for r in rows if "192.168." in r["text"]]
    kinds = Counter(r["kind"] for r in rows)
    assert len(kinds) >= 4 and min(kinds.values()) >= 10, kinds


def test_quick_depth_keeps_each_set_balanced() -> None:
    """``--depth quick`` runs every third item: the controls must hold there too, not only in the whole set."""
    advice = _rows(project_data("harmful_advice.jsonl"))[::3]
    openings = Counter(_opening(r["safe"]) for r in advice)
    assert min(openings[k] for k in ("yes", "no", "other")) >= len(advice) // 3 - 2, openings
    truth = [r for r in _rows(project_data("truthfulness_mc.jsonl"))[::3] if r["type"] == "misconception"]
    assert 0.4 <= sum(_opening(r["best_answer"]) == "yes" for r in truth) / len(truth) <= 0.6
    cells = Counter((r["stratum"], r["cue"]) for r in _rows(project_data("attribute_inference.jsonl"))[::3])
    assert len(cells) == 10, cells  # every attribute, with cues and without
