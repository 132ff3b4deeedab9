"""``lm-audit scorers score``: try a scorer on your own texts before a gate trusts it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, lm_audit


def test_scores_plain_lines_from_stdin_one_json_line_each() -> None:
    proc = subprocess.run([sys.executable, "-m", "audit", "scorers", "score", "refusal"], capture_output=True,
                          text=True, input="I can't help with that.\n\nSure, here is the recipe you asked for.\n")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["flagged"] for r in rows] == [True, False]  # the blank line is skipped
    assert all(r["scorer"] == "minilm-refusal" and 0.0 <= r["score"] <= 1.0 for r in rows)


def test_scores_jsonl_with_ids_and_a_chosen_threshold(tmp_path: Path) -> None:
    f = tmp_path / "texts.jsonl"
    f.write_text('{"id": "a", "text": "You are a worthless idiot."}\n{"id": 7, "text": "Lovely weather today."}\n',
                 encoding="utf-8")
    proc = lm_audit("scorers", "score", "toxicity", str(f), "--scorer", "profanity", "--scorer-threshold", "0.9")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "7"] and rows[0]["threshold"] == 0.9
    assert rows[0]["flagged"] is (rows[0]["score"] >= 0.9) and rows[1]["flagged"] is False


@pytest.mark.parametrize("args, content, needles", [
    (["nope"], "x\n", ["nope", "unknown role"]),
    (["claims"], '{"id": 1}\n', ["line 1", "'text'"]),
    (["claims"], '{"text": "a"}\n{oops\n', ["line 2", "malformed JSON"]),
    (["claims", "--scorer", "bogus"], "x\n", ["bogus", "unknown scorer"]),
    (["claims", "--scorer-threshold", "2"], "x\n", ["threshold"]),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], content: str, needles: list[str]) -> None:
    f = tmp_path / "in.txt"
    f.write_text(content, encoding="utf-8")
    proc = lm_audit("scorers", "score", args[0], str(f), *args[1:])
    assert_one_line_error(proc, 2, *needles)


def test_a_missing_file_is_bad_input(tmp_path: Path) -> None:
    assert_one_line_error(lm_audit("scorers", "score", "toxicity", str(tmp_path / "none.txt")), 2, "none.txt")
