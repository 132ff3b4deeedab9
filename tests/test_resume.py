"""Resumable runs: results cached per model batch (keyed by fingerprint, tokens and parameters);
an interrupted or SIGKILLed run resumed with --resume recomputes nothing that finished and
ends with the same report as an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from audit import AuditConfig, run_audit
from audit.cache import ResultCache, cache_key
from audit.models._hf import HFBackend
from probes import GenerationParams

PROBES = ["bias.stereotype_pairs", "toxicity.dialogue"]
PARAMS = {"toxicity.dialogue": {"max_new_tokens": 6}}


def normalised(run_dir: Path) -> dict[str, Any]:
    """report.json without what legitimately differs between two runs of the same audit."""
    r = json.loads((run_dir / "report.json").read_text())
    for k in ("id", "directory", "started_at", "finished_at", "duration_s", "command", "resumed", "cache_hits",
              "cache_misses", "model_s", "scoring_s"):
        r["run"].pop(k, None)
    r["config"].pop("out", None)
    for p in r["probes"]:
        p.pop("duration_s", None)
        p.pop("model_s", None)
        p.pop("scoring_s", None)
    return r


def samples(run_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((run_dir / "samples").glob("*.jsonl"))}


def test_cache_keys_include_the_model_and_parameters(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c.sqlite")
    a = cache_key("fingerprint-a", "generate", [[1, 2, 3]], GenerationParams().model_dump(mode="json"), 0)
    b = cache_key("fingerprint-b", "generate", [[1, 2, 3]], GenerationParams().model_dump(mode="json"), 0)
    c = cache_key("fingerprint-a", "generate", [[1, 2, 3]], GenerationParams(temperature=0.7).model_dump(mode="json"), 0)
    assert len({a, b, c}) == 3
    cache.put(a, [{"x": 1}])
    assert cache.get(a) == [{"x": 1}] and cache.get(b) is None and (cache.hits, cache.misses) == (1, 1)
    assert len(ResultCache(tmp_path / "c.sqlite")) == 1  # durable across connections


@pytest.mark.slow
def test_interrupted_run_resumes_without_repeating_model_calls(tiny_model, tiny_tokenizer, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.models import _generate

    calls: list[str] = []
    real_score, real_finish = HFBackend._score_batch, _generate.finish

    def counting_score(self, batch):  # type: ignore[no-untyped-def]
        calls.append("loglik")
        return real_score(self, batch)

    def counting_finish(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("generate")  # one per computed generation (cache hits are not finished again)
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(HFBackend, "_score_batch", counting_score)
    monkeypatch.setattr(_generate, "finish", counting_finish)

    def backend() -> HFBackend:
        return HFBackend(tiny_model, tiny_tokenizer, model_id="tiny", batch_size=4)

    def config(out: Path, resume: bool = False) -> AuditConfig:
        # a resume may repeat the recorded settings: equal values are not a change
        return AuditConfig(model="tiny", probes=PROBES, limit=20, out=out, probe_params=PARAMS,
                           pii={"nlp_model": "none"}, resume=out if resume else None)

    run_audit(config(tmp_path / "whole"), model=backend())
    total = len(calls)
    assert total > 10
    calls.clear()

    def interrupting(self, batch):  # type: ignore[no-untyped-def]
        if len(calls) == 7:
            raise KeyboardInterrupt
        return counting_score(self, batch)

    monkeypatch.setattr(HFBackend, "_score_batch", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run_audit(config(tmp_path / "cut"), model=backend())
    before = len(calls)
    assert before == 7
    monkeypatch.setattr(HFBackend, "_score_batch", counting_score)
    calls.clear()
    report = run_audit(config(tmp_path / "cut", resume=True), model=backend())
    assert before + len(calls) == total  # nothing computed twice, nothing missing
    assert report.run.cache_hits == before and report.run.cache_misses == len(calls) and report.run.resumed
    assert normalised(tmp_path / "cut") == normalised(tmp_path / "whole")
    assert samples(tmp_path / "cut") == samples(tmp_path / "whole")


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_report(tiny_model, save_checkpoint, tmp_path: Path) -> None:
    ckpt = save_checkpoint(tiny_model)
    args = [sys.executable, "-m", "audit", "run", "--model", str(ckpt), "--probes", ",".join(PROBES),
            "--param", "toxicity.dialogue:max_new_tokens=6", "--batch-size", "2", "--quiet", "--pii-nlp-model", "none"]
    whole = subprocess.run([*args, "--out", str(tmp_path / "whole")], capture_output=True, text=True, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=tmp_path)
    db = killed_dir / "cache.sqlite"
    deadline = time.monotonic() + 120
    rows = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                rows = sqlite3.connect(str(db)).execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.Error:
                rows = 0
            if rows >= 20:
                break
        time.sleep(0.05)
    assert proc.poll() is None, (f"the run finished (exit {proc.returncode}) before it could be killed: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not json.loads((killed_dir / "report.json").read_text())["run"]["complete"] \
        if (killed_dir / "report.json").exists() else True
    resumed = subprocess.run([sys.executable, "-m", "audit", "run", "--resume", str(killed_dir), "--quiet"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((killed_dir / "report.json").read_text())
    assert report["run"]["resumed"] and report["run"]["cache_hits"] >= 20
    assert normalised(killed_dir) == normalised(tmp_path / "whole")
    assert samples(killed_dir) == samples(tmp_path / "whole")


# --- resume is part of the library: the Python API and the CLI resume the same way ---------------

FAST = dict(probes=["misinformation.truthfulness_mc", "bias.stereotype_pairs"], limit=4, pii={"nlp_model": "none"})


def lm_audit_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process (no interpreter start-up): exit code, stdout, stderr."""
    from audit.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


def cut_short(whole: Path, dest: Path) -> Path:
    """A run directory as an interrupted run leaves it: its settings and half of its cache."""
    dest.mkdir()
    shutil.copy(whole / "config.json", dest / "config.json")
    with sqlite3.connect(str(whole / "cache.sqlite")) as src, sqlite3.connect(str(dest / "cache.sqlite")) as db:
        src.backup(db)  # the cache is in WAL mode: a file copy could miss the latest batches
        n = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        db.execute("DELETE FROM results WHERE rowid IN (SELECT rowid FROM results ORDER BY rowid DESC LIMIT ?)",
                   (n // 2,))
    return dest


def recorded_run(tmp_path: Path, **settings: Any) -> Path:
    """A run directory holding only a recorded config.json (enough for the refusals)."""
    run_dir = tmp_path / "recorded"
    run_dir.mkdir()
    config = AuditConfig(model=str(tmp_path / "no-such-model"), out=run_dir, **{**FAST, **settings})
    (run_dir / "config.json").write_text(config.model_dump_json(indent=2, exclude={"resume"}))
    return run_dir


@pytest.mark.slow
def test_resume_through_the_api_equals_resume_through_the_cli(tiny_model, save_checkpoint, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = save_checkpoint(tiny_model)
    run_audit(AuditConfig(model=str(ckpt), out=tmp_path / "whole", batch_size=4, **FAST))
    api_dir = cut_short(tmp_path / "whole", tmp_path / "api")
    cli_dir = cut_short(tmp_path / "whole", tmp_path / "cli")

    report = run_audit(AuditConfig(resume=api_dir))  # the recorded settings: no model to repeat
    assert report.run.resumed and report.run.cache_hits > 0 and report.run.cache_misses > 0
    assert report.config["model"] == str(ckpt) and report.config["limit"] == 4
    code, _, err = lm_audit_here(capsys, "run", "--resume", str(cli_dir), "--quiet")
    assert code == 0, err
    cli_report = json.loads((cli_dir / "report.json").read_text())
    assert cli_report["run"]["resumed"] and cli_report["run"]["cache_hits"] == report.run.cache_hits
    assert normalised(api_dir) == normalised(cli_dir) == normalised(tmp_path / "whole")
    assert samples(api_dir) == samples(cli_dir) == samples(tmp_path / "whole")


@pytest.mark.slow
def test_policy_and_junit_apply_to_a_resumed_run(tiny_model, save_checkpoint, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = save_checkpoint(tiny_model)
    run_audit(AuditConfig(model=str(ckpt), out=tmp_path / "whole", batch_size=4, **FAST))
    assert json.loads((tmp_path / "whole" / "report.json").read_text())["policy"] is None
    run_dir = cut_short(tmp_path / "whole", tmp_path / "cut")
    junit = tmp_path / "junit.xml"
    code, out, err = lm_audit_here(capsys, "run", "--resume", str(run_dir), "--policy", "default",
                                   "--junit", str(junit), "--quiet")
    report = json.loads((run_dir / "report.json").read_text())
    assert report["policy"] is not None and report["policy"]["checks"]
    blocking = any(not c["passed"] and c["severity"] == "block" for c in report["policy"]["checks"])
    assert code == (1 if blocking else 0), err
    assert "policy " in out and junit.is_file()


@pytest.mark.parametrize("flag, needle", [(["--seed", "5"], "--seed 5"), (["--limit", "3"], "--limit 3"),
                                          (["--probes", "toxicity.dialogue"], "--probes"),
                                          (["--pii-nlp-model", "auto"], "--pii-nlp-model auto"),
                                          (["--scorer-threshold", "toxicity=0.7"], "--scorer-threshold toxicity="),
                                          (["--no-chat-template"], "--no-chat-template")])
def test_resume_refuses_a_flag_that_changes_what_is_measured(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             flag: list[str], needle: str) -> None:
    run_dir = recorded_run(tmp_path)
    code, _, err = lm_audit_here(capsys, "run", "--resume", str(run_dir), *flag)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "the resumed run measured with" in lines[0], err


def test_resume_needs_trust_remote_code_on_its_own_command_line(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = recorded_run(tmp_path, trust_remote_code=True)
    code, _, err = lm_audit_here(capsys, "run", "--resume", str(run_dir))
    assert code == 2 and "--trust-remote-code is required" in err, err
    # given again, the resume gets past the check (and stops at the model, which does not exist)
    code, _, err = lm_audit_here(capsys, "run", "--resume", str(run_dir), "--trust-remote-code")
    assert code == 2 and "trust-remote-code" not in err and "no-such-model" in err, err
