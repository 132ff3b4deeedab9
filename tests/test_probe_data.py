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
