"""Audits without the model: a finished run re-scored from its request log (``lm-audit rescore``),
and a system audited from recorded outputs (``lm-audit prompts export`` + ``--model outputs:FILE``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, lm_audit

PROBES = "toxicity.dialogue,misinformation.truthfulness_mc,bias.stereotype_pairs"


def _report(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())


def _metrics(report: dict) -> dict[tuple[str, str], tuple]:
    return {(p["id"], m["name"]): (m["value"], m["n"], (m.get("ci") or {}).get("low")) for p in report["probes"]
            for m in p["metrics"]}


@pytest.mark.slow
def test_rescore_reproduces_a_run_without_its_model_and_applies_new_scorers(tiny_model, save_checkpoint,
                                                                            tmp_path: Path) -> None:
    ckpt = save_checkpoint(tiny_model)
    first = tmp_path / "first"
    proc = lm_audit("run", "--model", str(ckpt), "--probes", PROBES, "--limit", "4", "--out", str(first), "--quiet",
                    "--pii-nlp-model", "none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shutil.rmtree(ckpt)  # the re-score must not need the model
    again = tmp_path / "again"
    proc = lm_audit("rescore", str(first), "--out", str(again), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    old, new = _report(first), _report(again)
    assert _metrics(new) == _metrics(old) and len(_metrics(new)) >= 8
    assert new["run"]["rescore_of"].startswith(f"{old['run']['id']} (") and new["model"] == old["model"]
    assert "Re-score of run" in (again / "report.md").read_text()
    # another toxicity scorer: the same outputs, judged again
    other = tmp_path / "other"
    proc = lm_audit("rescore", str(first), "--out", str(other), "--scorer", "toxicity=profanity", "--quiet",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tox = next(p for p in _report(other)["probes"] if p["id"] == "toxicity.dialogue")
    assert [s["name"] for s in tox["scorers"]] == ["profanity"]
    old_samples = [json.loads(x) for x in (first / "samples" / "toxicity.dialogue.jsonl").read_text().splitlines()]
    new_samples = [json.loads(x) for x in (other / "samples" / "toxicity.dialogue.jsonl").read_text().splitlines()]
    assert [[o["text"] for o in s["outputs"]] for s in new_samples] == [[o["text"] for o in s["outputs"]] for s in old_samples]


def test_rescore_of_something_that_is_not_a_run_is_bad_input(tmp_path: Path) -> None:
    assert_one_line_error(lm_audit("rescore", str(tmp_path), cwd=tmp_path), 2, str(tmp_path), "not a run directory")


@pytest.mark.slow
def test_recorded_outputs_are_audited_and_missing_ones_are_not_made_up(tmp_path: Path) -> None:
    probes = "malicious_use.compliance,toxicity.dialogue,misinformation.truthfulness_mc"
    proc = lm_audit("prompts", "export", "--probes", probes, "--limit", "6", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(lines) == 12 and {tuple(x["probes"]) for x in lines} == {("malicious_use.compliance",),
                                                                          ("toxicity.dialogue",)}
    assert all(x["id"].startswith("gen-") and x["messages"][0]["role"] == "user" for x in lines)

    def audit(answer: str, leave_out: str | None = None) -> dict:
        path = tmp_path / "answers.jsonl"
        rows = [{"id": x["id"], "output": answer} for x in lines if x["id"] != leave_out]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows + [{"id": "gen-not-asked", "output": "hi"}]))
        out = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
        # the fast rule-based scorers: what is checked here is the outputs backend, not the scorers
        proc = lm_audit("run", "--model", f"outputs:{path}", "--probes", probes, "--limit", "6", "--out", str(out),
                        "--quiet", "--pii-nlp-model", "none", "--scorer", "refusal=refusal-patterns",
                        "--scorer", "non_answer=nonanswer-rules", "--scorer", "toxicity=profanity", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return _report(out)

    complied = audit("Sure. Here is the text you asked for, written to persuade: first, open with a shocking claim.")
    refused = audit("I'm sorry, but I can't help with that request.")
    rate = {name: next(m["value"] for p in r["probes"] for m in p["metrics"] if m["name"] == "compliance_rate")
            for name, r in (("complied", complied), ("refused", refused))}
    assert rate["complied"] >= 0.8 and rate["refused"] <= 0.2, rate
    assert complied["model"]["backend"] == "outputs"
    assert any("answer no request of this audit" in n and "gen-not-asked" in n for n in complied["model"]["notes"])
    truth = next(p for p in complied["probes"] if p["id"] == "misinformation.truthfulness_mc")
    assert truth["status"] == "not_evaluated" and "log-probabilities" in truth["notes"][0]

    missing = next(x["id"] for x in lines if x["probes"] == ["malicious_use.compliance"])
    partial = audit("I can't help with that.", leave_out=missing)
    comp = next(p for p in partial["probes"] if p["id"] == "malicious_use.compliance")
    assert comp["status"] == "not_evaluated" and missing in comp["notes"][0]
    assert next(p for p in partial["probes"] if p["id"] == "toxicity.dialogue")["status"] != "not_evaluated"


@pytest.mark.parametrize("content, needle", [
    ('{"id": "gen-1", "output": "x"}\n{"id": "gen-1", "output": "y"}\n', "duplicate id 'gen-1'"),
    ('{"id": "gen-1", "output": "x"}\nnot json\n', "line 2"),
    ('{"id": "gen-1"}\n', "line 1"),
])
def test_a_malformed_outputs_file_is_bad_input(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text(content)
    proc = lm_audit("run", "--model", f"outputs:{path}", "--probes", "toxicity.dialogue", "--out",
                    str(tmp_path / "run"), "--quiet", cwd=tmp_path)
    assert_one_line_error(proc, 2, "answers.jsonl", needle)
    assert_one_line_error(lm_audit("run", "--model", f"outputs:{tmp_path / 'nope.jsonl'}", "--quiet", cwd=tmp_path),
                          2, "nope.jsonl", "no such outputs file")
