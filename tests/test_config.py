"""AuditConfig's one settings path: packaged defaults < config file < flags, and the rules of a
resume (recorded settings; only output settings change; trusted settings never read back)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from audit.config import (
    AuditConfig,
    explicit_settings,
    layered,
    load_config_file,
    resume_config,
)
from audit.errors import BadInput
from audit.scorers import ROLES


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_then_file_then_flags(tmp_path: Path) -> None:
    path = write_config(tmp_path / "run.yaml", "model: from-file\nlimit: 5\nseed: 3\npii:\n  nlp_model: none\n"
                                               "scorers:\n  toxicity:\n    name: hf-classifier\n    model: ./clf\n")
    config = layered(load_config_file(path),
                     {"model": None, "seed": 7, "pii": {"threshold": 0.6}, "scorers": {"toxicity": {"threshold": 0.8}}},
                     source=path)
    assert config.model == "from-file" and config.limit == 5  # file over defaults; None flags are not given
    assert config.seed == 7  # flags over the file
    assert config.dtype == "auto" and config.probes == []  # packaged defaults where nobody said anything
    assert (config.pii.nlp_model, config.pii.threshold) == ("none", 0.6)  # pii merges option by option
    tox = config.scorers["toxicity"]  # a threshold alone refines the file's scorer; a name would replace it
    assert (tox.name, tox.model, tox.threshold) == ("hf-classifier", "./clf", 0.8)
    replaced = layered(load_config_file(path), {"scorers": {"toxicity": {"name": "profanity"}}}, source=path)
    assert replaced.scorers["toxicity"].model is None
    assert layered({}, {"model": "m", "scorers": {"regard": {"threshold": 0.3}}}).scorers["regard"].name \
        == "minilm-regard"  # a role given only a threshold gets its default scorer
    assert explicit_settings(config).keys() == {"model", "limit", "seed", "pii", "scorers"}


def test_layering_errors_name_the_setting_or_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "run.yaml", "model: m\nlimit: 0\n")
    with pytest.raises(BadInput) as exc:
        layered(load_config_file(path), {}, source=path)
    assert exc.value.setting == "config" and str(exc.value) == f"config {path}: limit: Input should be greater " \
                                                                 "than or equal to 1"
    with pytest.raises(BadInput) as exc:  # the flag's value is the bad one, not the file's
        layered(load_config_file(path), {"limit": -2}, source=path)
    assert (exc.value.setting, exc.value.detail) == ("limit", "-2: Input should be greater than or equal to 1")
    with pytest.raises(BadInput) as exc:
        layered({}, {"limit": 3})
    assert exc.value.setting == "model" and "required" in str(exc.value)
    with pytest.raises(BadInput, match="unknown field"):
        layered(load_config_file(write_config(tmp_path / "typo.yaml", "model: m\nlimt: 3\n")), {})
    with pytest.raises(BadInput, match="malformed YAML"):
        load_config_file(write_config(tmp_path / "bad.yaml", "model: [\n"))
    with pytest.raises(BadInput, match="file not found") as exc:
        load_config_file(tmp_path / "missing.yaml")
    assert exc.value.setting == "config"


def test_the_api_needs_a_model_unless_it_resumes(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="model is required"):
        AuditConfig(limit=3)
    assert AuditConfig(resume=tmp_path).model is None


def record(run_dir: Path, **settings: object) -> Path:
    run_dir.mkdir(exist_ok=True)
    config = AuditConfig(model="tiny", out=run_dir, probes=["misinformation.truthfulness_mc"], limit=4, **settings)
    (run_dir / "config.json").write_text(config.model_dump_json(indent=2, exclude={"resume"}))
    return run_dir


def test_resume_takes_the_recorded_settings_and_output_overrides(tmp_path: Path) -> None:
    run_dir = record(tmp_path / "run", seed=3, policy="old.yaml")
    config = resume_config(run_dir)
    assert (config.model, config.limit, config.seed, config.policy) == ("tiny", 4, 3, "old.yaml")
    assert config.resume == run_dir and config.out == run_dir
    config = resume_config(run_dir, {"policy": "default", "junit": tmp_path / "j.xml", "limit": 4, "model": "tiny",
                                     "out": run_dir})  # repeating a recorded value is not a change
    assert (config.policy, config.junit, config.limit) == ("default", tmp_path / "j.xml", 4)
    # the API: the fields the caller set are the overrides; resolving twice changes nothing
    api = AuditConfig(resume=run_dir, policy="default")
    resolved = resume_config(run_dir, explicit_settings(api))
    assert resolved.policy == "default" and resolved.seed == 3
    assert resume_config(run_dir, explicit_settings(resolved)) == resolved


@pytest.mark.parametrize("overrides, setting", [({"seed": 5}, "seed"), ({"limit": 3}, "limit"),
                                                ({"model": "other"}, "model"), ({"dtype": "float16"}, "dtype"),
                                                ({"pii": {"threshold": 0.9}}, "pii.threshold"),
                                                ({"canaries": "c.jsonl"}, "canaries"),
                                                ({"datasets": {"misinformation.truthfulness_mc": "t.csv"}}, "datasets"),
                                                ({"out": "elsewhere"}, "out")])
def test_resume_refuses_a_change_to_what_is_measured(tmp_path: Path, overrides: dict[str, object],
                                                     setting: str) -> None:
    run_dir = record(tmp_path / "run")
    with pytest.raises(BadInput) as exc:
        resume_config(run_dir, overrides)
    assert exc.value.setting == setting


def test_resume_reads_scorers_with_their_role_defaults(tmp_path: Path) -> None:
    run_dir = record(tmp_path / "run")  # recorded with no scorer choices: every role at its default
    default = ROLES["toxicity"]
    same = resume_config(run_dir, {"scorers": {"toxicity": {"name": default}}})  # the default, named again
    assert same.scorers["toxicity"].name == default
    with pytest.raises(BadInput) as exc:
        resume_config(run_dir, {"scorers": {"toxicity": {"name": default, "threshold": 0.6}}})
    assert exc.value.setting == "scorers.toxicity.threshold" and str(exc.value).startswith("scorers.toxicity.threshold 0.6")


@pytest.mark.parametrize("setting", ["trust_remote_code", "allow_download", "show_pii"])
def test_trusted_settings_are_never_read_back(tmp_path: Path, setting: str) -> None:
    run_dir = record(tmp_path / "run", **{setting: True})
    with pytest.raises(BadInput) as exc:
        resume_config(run_dir)
    assert exc.value.setting == setting and "required" in str(exc.value)
    assert getattr(resume_config(run_dir, {setting: True}), setting) is True
    # and a recorded false does not stop the caller from giving one
    assert getattr(resume_config(record(tmp_path / "plain"), {setting: True}), setting) is True


def test_resume_of_something_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no config.json") as exc:
        resume_config(tmp_path)
    assert exc.value.setting == "resume"
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(BadInput, match="malformed JSON"):
        resume_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": "m", "limit": 0}))
    with pytest.raises(BadInput, match="limit"):
        resume_config(tmp_path)


def test_a_run_recorded_before_resume_named_a_directory_still_resumes(tmp_path: Path) -> None:
    recorded = AuditConfig(model="tiny").model_dump(mode="json", exclude={"resume", "canaries"})
    (tmp_path / "config.json").write_text(json.dumps({**recorded, "resume": False}))
    assert resume_config(tmp_path).model == "tiny"


def test_the_report_records_settings_as_before(tmp_path: Path) -> None:
    recorded = AuditConfig(model="tiny", resume=tmp_path).recorded()
    assert "resume" not in recorded and "canaries" not in recorded  # canaries only when given
    assert AuditConfig(model="tiny", canaries=tmp_path / "c.jsonl").recorded()["canaries"] == str(tmp_path / "c.jsonl")


@pytest.mark.slow
def test_canaries_are_the_dataset_of_the_probes_that_take_them(backend_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from audit import run_audit

    canaries = tmp_path / "canaries.jsonl"
    canaries.write_text("".join(json.dumps({"prefix": f"The code of vault {i} is ", "secret": f"{i}7{i}3"}) + "\n"
                                for i in range(3)))
    settings = dict(model="tiny", probes=["pii.canary_extraction"], limit=2, pii={"nlp_model": "none"},
                    probe_params={"pii.canary_extraction": {"candidates": 10, "samples": 1}})
    report = run_audit(AuditConfig(out=tmp_path / "run", canaries=canaries, **settings), model=backend_factory())
    (probe,) = report.probes
    assert probe.dataset is not None and probe.dataset.origin == "user" and not probe.errors
    assert report.config["canaries"] == str(canaries) and report.config["datasets"] == {}
    with pytest.raises(BadInput) as exc:  # no selected probe takes them
        run_audit(AuditConfig(out=tmp_path / "r2", canaries=canaries, **{**settings, "probes": ["interaction.identity"],
                                                                         "probe_params": {}}),
                  model=backend_factory())
    assert exc.value.setting == "canaries" and "no selected probe" in str(exc.value)
