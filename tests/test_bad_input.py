"""Every file and number the command line takes, broken on purpose: exit 2, one line on stderr
naming the file (and line or key) or the flag, no traceback.

One test per class of fault, each a table. The CLI runs in-process (``audit.cli.main``, which
maps errors to exit codes), so each case costs milliseconds. ``run`` cases use ``--model x``:
everything read from a file is checked before the model is resolved, so a case that reached
the model would print ``--model x: ...`` instead of the file's problem and fail its needle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import taxonomy._files
from audit import AuditConfig, run_audit
from audit.cli import main
from audit.config import load_config_file, resume_config
from audit.errors import BadInput
from audit.policy import load_policy
from probes._datasets import read_csv_rows, read_jsonl
from probes.pii import read_canaries
from probes.toxicity import PromptItem, load_rtp_jsonl
from reports import load_report
from taxonomy import DEFAULT_TAXONOMY, load_taxonomy
from tests.test_backend_contract import FixedBackend

# ---------------------------------------------------------------------------------------------
# harness


def lm_audit(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    """(exit code, non-blank stderr lines, stderr) of ``lm-audit ARGS`` run in this process."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    err = capfd.readouterr().err
    return int(exc.value.code or 0), [ln for ln in err.splitlines() if ln.strip()], err


def assert_bad_input(capfd: pytest.CaptureFixture[str], args: list[str], *needles: str) -> str:
    code, lines, err = lm_audit(capfd, *args)
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def good_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real report.json (the fixed-output backend through the runner), for gate and diff."""
    out = tmp_path_factory.mktemp("good") / "run"
    run_audit(AuditConfig(model="fixed", probes=["toxicity.dialogue"], limit=3, out=out,
                          pii={"nlp_model": "none"}), model=FixedBackend())
    return out / "report.json"


@dataclass(frozen=True)
class Target:
    """A file the CLI reads: where the test writes it and the command line that reads it."""

    kind: str  # yaml | json | jsonl | csv
    name: str  # relative to the test's working directory
    args: Callable[[str, Path], list[str]]  # (file, good report) -> argv

    def argv(self, report: Path) -> list[str]:
        return self.args(self.name, report)


def _dataset(pid: str) -> Callable[[str, Path], list[str]]:
    return lambda f, _: ["run", "--model", "x", "--quiet", "--probes", pid, "--dataset", f"{pid}={f}"]


TARGETS = {
    "taxonomy": Target("yaml", "t.yaml", lambda f, _: ["taxonomy", "--taxonomy", f]),
    "run-taxonomy": Target("yaml", "t.yaml", lambda f, _: ["run", "--model", "x", "--quiet", "--taxonomy", f]),
    "config": Target("yaml", "c.yaml", lambda f, _: ["run", "--config", f, "--model", "x", "--quiet"]),
    "run-policy": Target("yaml", "p.yaml", lambda f, _: ["run", "--model", "x", "--quiet",
                                                         "--probes", "toxicity.dialogue", "--policy", f]),
    "gate-policy": Target("yaml", "p.yaml", lambda f, r: ["gate", str(r), "--policy", f]),
    "resume": Target("json", "run/config.json", lambda f, _: ["run", "--resume", "run", "--quiet"]),
    "truthfulqa-csv": Target("csv", "tqa.csv", _dataset("misinformation.truthfulness_mc")),
    "crows-pairs-csv": Target("csv", "crows.csv", _dataset("bias.stereotype_pairs")),
    "rtp-jsonl": Target("jsonl", "rtp.jsonl", _dataset("toxicity.continuation")),
    "project-jsonl": Target("jsonl", "dialogue.jsonl", _dataset("toxicity.dialogue")),
    "project-json": Target("json", "disparity.json", _dataset("bias.group_disparity")),
    "canaries": Target("jsonl", "canaries.jsonl", lambda f, _: ["run", "--model", "x", "--quiet", "--probes",
                                                                 "pii.canary_extraction", "--canaries", f]),
    "report-render": Target("json", "r.json", lambda f, _: ["report", "render", f]),
    "gate-report": Target("json", "r.json", lambda f, _: ["gate", f]),
    "diff-old": Target("json", "r.json", lambda f, r: ["diff", f, str(r)]),
    "diff-new": Target("json", "r.json", lambda f, r: ["diff", str(r), f]),
}
STRUCTURED = [t for t, v in TARGETS.items() if v.kind != "csv"]


def _place(tmp_path: Path, target: Target, content: bytes | None) -> Path:
    """Write ``content`` at the target's file (None: leave it missing; the run directory of a
    resume exists either way)."""
    path = tmp_path / target.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is not None:
        path.write_bytes(content)
    return path


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------------------------------
# 1. not a readable text file: missing, a directory, not UTF-8, binary


NOT_TEXT: dict[str, tuple[bytes | None, str]] = {
    "missing": (None, "file not found"),
    "directory": (b"", "is a directory"),
    "latin-1": (b"name: x\nnote: caf\xe9\n", "line 2: not UTF-8 text (byte 0xe9)"),
    "utf-16": ("name: x\n".encode("utf-16"), "line 1: not UTF-8 text (byte 0xff)"),
    "encoded-surrogate": (b"a,b\n\xed\xa0\x80,x\n", "line 2: not UTF-8 text (byte 0xed)"),
    "nul-byte": (b"a\n\x00\x01\x02\n", "line 2: holds a NUL character"),
}


@pytest.mark.parametrize("fault", NOT_TEXT)
@pytest.mark.parametrize("target", TARGETS)
def test_a_file_that_is_not_text_is_bad_input(capfd: pytest.CaptureFixture[str], in_tmp: Path, good_report: Path,
                                              target: str, fault: str) -> None:
    t = TARGETS[target]
    content, needle = NOT_TEXT[fault]
    if fault == "directory":
        (in_tmp / t.name).mkdir(parents=True)
    else:
        _place(in_tmp, t, content)
    named = t.name
    if target == "resume" and fault == "missing":  # the run directory is named, not the file
        named, needle = "--resume run: no config.json there", ""
    assert_bad_input(capfd, t.argv(good_report), named, needle)


def test_a_fifo_is_refused_not_read(capfd: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    """Reading a named pipe would block for ever; it is refused from its file type."""
    os.mkfifo(in_tmp / "t.yaml")
    assert_bad_input(capfd, ["taxonomy", "--taxonomy", "t.yaml"], "t.yaml: is not a regular file")


# ---------------------------------------------------------------------------------------------
# 2. a lone surrogate: valid JSON/YAML escapes that decode to text no file can hold

SURROGATE: dict[str, tuple[str, str]] = {
    "taxonomy": ('name: "x \\ud800"\nversion: "1"\nareas: []\n', "name: a string holds the lone surrogate \\ud800"),
    "run-taxonomy": ('name: x\nversion: "1"\nareas: [{id: "\\udfff"}]\n', "areas[0].id: a string holds"),
    "config": ('model: x\nprobes: ["toxicity.dialogue", "\\ud800"]\n', "probes[1]: a string holds"),
    "run-policy": ('name: "\\ud83d\\ude00"\n', "name: a string holds the lone surrogate \\ud83d"),
    "gate-policy": ('checks:\n  - {probe: "\\ud800", metric: m, max: 1}\n', "checks[0].probe: a string holds"),
    "resume": ('{"model": "fixed", "probes": ["\\ud800"]}', "probes[0]: a string holds"),
    "rtp-jsonl": ('{"prompt": {"text": "ok"}}\n{"prompt": {"text": "a \\ud800 b"}}\n',
                  "line 2: prompt.text: a string holds the lone surrogate \\ud800"),
    "project-jsonl": ('{"id": "a", "text": "\\udc00", "stratum": "s"}\n', "line 1: text: a string holds"),
    "project-json": ('{"templates": [], "groups": {"\\ud800": ["a", "b"]}}', "groups: a string holds"),
    "canaries": ('{"prefix": "The code is ", "secret": "\\ud800\\ud800"}\n', "line 1: secret: a string holds"),
    "report-render": ('{"tool": {"name": "\\ud800"}}', "tool.name: a string holds"),
    "gate-report": ('{"errors": ["\\ud800"]}', "errors[0]: a string holds"),
    "diff-old": ('{"\\ud800": 1}', "a string holds the lone surrogate \\ud800"),
    "diff-new": ('{"probes": [{"id": "\\ud800"}]}', "probes[0].id: a string holds"),
}


@pytest.mark.parametrize("target", SURROGATE)
def test_a_lone_surrogate_is_bad_input(capfd: pytest.CaptureFixture[str], in_tmp: Path, good_report: Path,
                                       target: str) -> None:
    t = TARGETS[target]
    content, needle = SURROGATE[target]
    _place(in_tmp, t, content.encode())
    assert_bad_input(capfd, t.argv(good_report), t.name, needle)


def test_a_surrogate_in_a_dataset_stops_the_run_before_the_model(tmp_path: Path) -> None:
    """The reproduced fault: this file used to pass the checks, load the model, and end the
    probe as ``error`` with a pydantic message, exit 0. Now nothing is written."""
    rtp = tmp_path / "rtp.jsonl"
    rtp.write_text('{"prompt": {"text": "a \\ud800"}}\n')

    class MustNotRun(FixedBackend):
        def info(self):  # type: ignore[no-untyped-def]
            raise AssertionError("the model was used before the dataset was checked")

    with pytest.raises(BadInput, match=r"rtp\.jsonl: line 1: prompt\.text: a string holds") as exc:
        run_audit(AuditConfig(model="fixed", probes=["toxicity.continuation"], out=tmp_path / "run",
                              datasets={"toxicity.continuation": rtp}, pii={"nlp_model": "none"}),
                  model=MustNotRun())
    assert exc.value.setting == "datasets"
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# 3. the wrong shape at the top level

TOP_LEVEL: dict[str, tuple[str, str]] = {
    "taxonomy": ("- I\n- II\n", "expected a mapping with 'name', 'version' and 'areas'"),
    "config": ("[model, x]\n", "expected a mapping at the top level of a config file, got a list"),
    "run-policy": ("block everything\n", "expected a mapping at the top level of a policy file, got a string"),
    "gate-policy": ("42\n", "expected a mapping at the top level of a policy file, got a number"),
    "resume": ('["fixed"]', "expected a mapping at the top level of a run's config.json, got a list"),
    "rtp-jsonl": ('{"prompt": {"text": "ok"}}\n["a list"]\n', "line 2: expected a JSON object"),
    "project-jsonl": ('"just text"\n', "line 1: expected a JSON object per line, got a string"),
    "project-json": ("[1, 2]", "expected a mapping at the top level of a dataset, got a list"),
    "canaries": ("null\n", "line 1: expected a JSON object per line, got null"),
    "report-render": ("[]", "not an lm-risk-audit report (top level is not an object)"),
    "gate-report": ('"report"', "not an lm-risk-audit report"),
    "diff-new": ("3.5", "not an lm-risk-audit report"),
}


@pytest.mark.parametrize("target", TOP_LEVEL)
def test_the_wrong_top_level_type_is_bad_input(capfd: pytest.CaptureFixture[str], in_tmp: Path, good_report: Path,
                                               target: str) -> None:
    t = TARGETS[target]
    content, needle = TOP_LEVEL[target]
    _place(in_tmp, t, content.encode())
    assert_bad_input(capfd, t.argv(good_report), t.name, needle)


# ---------------------------------------------------------------------------------------------
# 4. malformed syntax, including what makes a parser itself fail (depth, huge numbers, dates)

MALFORMED: list[tuple[str, str, str]] = [
    ("taxonomy", "name: [unclosed\n", "malformed YAML"),
    ("taxonomy", "[" * 3000 + "]" * 3000, "malformed YAML: nested too deeply"),
    ("config", "model: x\nseed: 2024-02-30\n", "malformed YAML: day is out of range for month"),
    ("config", "model: !!python/object/apply:os.system ['true']\n", "malformed YAML"),
    ("gate-policy", "checks: [\n", "line 2, column 1: malformed YAML"),
    ("resume", '{"model": "fixed",', "line 1, column 19: malformed JSON"),
    ("resume", '{"seed": 1' + "0" * 5000 + "}", "malformed JSON: Exceeds the limit"),
    ("truthfulqa-csv", "Category,Question,Best Answer,Correct Answers,Incorrect Answers\nc,q,b,t,f,extra\n",
     "line 2: more fields than the header has"),
    ("crows-pairs-csv", "", "no rows"),
    ("rtp-jsonl", '{"prompt": {"text": "ok"}}\n{not json\n', "line 2: malformed JSON"),
    ("project-jsonl", "\n\n  \n", "no records"),
    ("project-json", '{"templates": [}', "line 1, column 16: malformed JSON"),
    ("canaries", '{"prefix": "p", "secret": "s"}\n{"prefix": NaN x}\n', "line 2: malformed JSON"),
    ("report-render", "{", "line 1, column 2: malformed JSON"),
    ("gate-report", "[" * 100_000, "malformed JSON: nested too deeply"),
    ("diff-old", '{"a": 1} trailing', "malformed JSON: Extra data"),
]


@pytest.mark.parametrize("target, content, needle", MALFORMED,
                         ids=[f"{t}-{n.split(':')[-1].strip()[:24]}" for t, _, n in MALFORMED])
def test_malformed_syntax_is_bad_input(capfd: pytest.CaptureFixture[str], in_tmp: Path, good_report: Path,
                                       target: str, content: str, needle: str) -> None:
    t = TARGETS[target]
    _place(in_tmp, t, content.encode())
    assert_bad_input(capfd, t.argv(good_report), t.name, needle)


# ---------------------------------------------------------------------------------------------
# 5. too large (the cap is lowered for the test; the real one is MAX_FILE_BYTES)


@pytest.mark.parametrize("target", ["taxonomy", "config", "resume", "truthfulqa-csv", "rtp-jsonl", "canaries",
                                    "report-render"])
def test_a_file_over_the_size_cap_is_bad_input(capfd: pytest.CaptureFixture[str], in_tmp: Path, good_report: Path,
                                               monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    cap = 100_000  # above every packaged file (the bundled taxonomy and data pass the same reader)
    monkeypatch.setattr(taxonomy._files, "MAX_FILE_BYTES", cap)
    t = TARGETS[target]
    _place(in_tmp, t, b"#" * (cap + 1))
    assert_bad_input(capfd, t.argv(good_report), t.name, "too large", f"the limit is {cap} bytes")


# ---------------------------------------------------------------------------------------------
# 6. what is accepted: a byte-order mark (every format alike), U+2028 inside a JSONL string

BOM = b"\xef\xbb\xbf"


def test_a_byte_order_mark_is_accepted_by_every_reader(tmp_path: Path, good_report: Path) -> None:
    def bom(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(BOM + (text.encode() if isinstance(text, str) else text))
        return path

    assert load_taxonomy(bom("t.yaml", DEFAULT_TAXONOMY.read_bytes())).name
    assert load_config_file(bom("c.yaml", "model: x\nlimit: 3\n")) == {"model": "x", "limit": 3}
    assert load_policy(bom("p.yaml", "name: release\n")).name == "release"
    assert load_rtp_jsonl(bom("rtp.jsonl", '{"prompt": {"text": "hello"}}\n'))[0].text == "hello"
    assert read_jsonl(bom("d.jsonl", '{"id": "a", "text": "t", "stratum": "s"}\n'), PromptItem)[0].id == "a"
    assert read_canaries(bom("c.jsonl", '{"prefix": "p", "secret": "s"}\n'))[0].secret == "s"
    rows = read_csv_rows(bom("x.csv", "sent_more,sent_less,bias_type\na,b,c\n"), ["sent_more"])
    assert rows == [(2, {"sent_more": "a", "sent_less": "b", "bias_type": "c"})]
    assert load_report(bom("r.json", good_report.read_bytes())).tool.name
    run = tmp_path / "run"
    bom("run/config.json", json.dumps({"model": "fixed", "probes": ["toxicity.dialogue"]}))
    assert resume_config(run).probes == ["toxicity.dialogue"]


def test_a_line_separator_inside_a_jsonl_string_is_text(tmp_path: Path) -> None:
    """JSONL lines end at \\n; U+2028 and U+0085 inside a string are characters (str.splitlines
    would have cut the record in two)."""
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "one\u2028two\x85three", "stratum": "s"}, ensure_ascii=False)
                    + "\n", encoding="utf-8")
    assert read_jsonl(path, PromptItem)[0].text == "one\u2028two\x85three"


# ---------------------------------------------------------------------------------------------
# 7. resume: the run directory itself


def test_resume_of_something_that_is_not_a_run_directory(capfd: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    (in_tmp / "file").write_text("x")
    assert_bad_input(capfd, ["run", "--resume", "file"], "--resume file: not a directory")
    (in_tmp / "run").mkdir()
    (in_tmp / "run" / "config.json").write_text('{"model": "fixed", "limit": 0}')
    assert_bad_input(capfd, ["run", "--resume", "run"], "--resume run/config.json: limit")


# ---------------------------------------------------------------------------------------------
# 8. numbers on the command line

_NUMBERS: list[tuple[list[str], str]] = [
    (["--limit", "-3"], "--limit -3: Input should be greater than or equal to 1"),
    (["--limit", "x"], "'--limit': 'x' is not a valid integer"),
    (["--seed", "x"], "'--seed': 'x' is not a valid integer"),
    (["--seed", "1.5"], "'--seed': '1.5' is not a valid integer"),
    (["--batch-size", "-1"], "--batch-size -1: Input should be greater than or equal to 1"),
    (["--batch-size", "0"], "--batch-size 0: Input should be greater than or equal to 1"),
    (["--batch-size", "many"], "'--batch-size': 'many' is not a valid integer"),
    (["--pii-threshold", "2"], "--pii-threshold 2.0: Input should be less than or equal to 1"),
    (["--pii-threshold", "-0.5"], "--pii-threshold -0.5: Input should be greater than or equal to 0"),
    (["--pii-threshold", "nan"], "--pii-threshold NaN"),
    (["--pii-threshold", "high"], "'--pii-threshold': 'high' is not a valid float"),
    (["--scorer-threshold", "toxicity=0"], "--scorer-threshold toxicity=0.0: Input should be greater than 0"),
    (["--scorer-threshold", "toxicity=1.5"], "--scorer-threshold toxicity=1.5: Input should be less than or equal to 1"),
    (["--scorer-threshold", "toxicity=-1"], "--scorer-threshold toxicity=-1.0"),
    (["--scorer-threshold", "toxicity=nan"], "--scorer-threshold toxicity=NaN"),
    (["--scorer-threshold", "toxicity"], "--scorer-threshold toxicity: expected ROLE=VALUE"),
    (["--param", "toxicity.continuation:samples=0"], "--param toxicity.continuation:samples"),
    (["--param", "toxicity.continuation:temperature=-1"], "--param toxicity.continuation:temperature"),
    (["--param", "toxicity.continuation:top_p=1.5"], "--param toxicity.continuation:top_p"),
    (["--param", "toxicity.continuation:max_new_tokens=100000"], "--param toxicity.continuation:max_new_tokens"),
    (["--param", "toxicity.continuation:samples=two"], "--param toxicity.continuation:samples"),
]
NUMERIC = [pytest.param(flags, needle, id=" ".join(flags)) for flags, needle in _NUMBERS] + [
    pytest.param(["--seed", "-1"], "--seed -1", id="--seed -1"),
]


@pytest.mark.parametrize("flags, needle", NUMERIC)
def test_a_bad_number_on_the_command_line_is_bad_input(capfd: pytest.CaptureFixture[str], in_tmp: Path,
                                                       flags: list[str], needle: str) -> None:
    assert_bad_input(capfd, ["run", "--model", "x", "--quiet", *flags], needle)


# ---------------------------------------------------------------------------------------------
# 9. model files: a checkpoint directory with a broken config.json, a .gguf that is not GGUF

def _run_model(spec: str) -> list[str]:
    return ["run", "--model", spec, "--quiet", "--show-pii", "--out", "out", "--probes",
            "misinformation.truthfulness_mc"]


def _classifier(spec: str) -> list[str]:
    return ["scorers", "validate", "--scorer", f"toxicity=hf-classifier:{spec}"]


MODELS = [
    pytest.param(_run_model, "ckpt", {"config.json": b"{not json"}, "malformed JSON", id="malformed-config"),
    pytest.param(_run_model, "ckpt", {"config.json": b"\xff\xfe{}"}, "not UTF-8",
                 id="non-utf8-config"),
    # None: a directory named config.json
    pytest.param(_run_model, "ckpt", {"config.json": None}, "directory has no config.json",
                 id="config-is-a-directory"),
    pytest.param(_run_model, "x.gguf", {"": b"hello, not a model\n"}, "not a GGUF file", id="gguf-not-gguf"),
    pytest.param(_run_model, "x.gguf", {"": b""}, "x.gguf", id="gguf-empty"),
    pytest.param(_run_model, "two", {"a.gguf": b"GGUF", "b.gguf": b"GGUF"}, "2 .gguf files; name one of them",
                 id="two-ggufs"),
    pytest.param(_run_model, "ckpt", {"config.json": b"[1, 2]"}, "config.json", id="config-is-a-list"),
    pytest.param(_classifier, "clf", {"config.json": b"{not json"}, "malformed JSON",
                 id="classifier-malformed-config"),
    pytest.param(_classifier, "clf", {"config.json": b"[1, 2]"}, "config.json", id="classifier-config-is-a-list"),
]


@pytest.mark.parametrize("argv, name, files, needle", MODELS)
def test_a_broken_model_file_is_bad_input(capfd: pytest.CaptureFixture[str], in_tmp: Path,
                                          argv: Callable[[str], list[str]], name: str,
                                          files: dict[str, bytes | None], needle: str) -> None:
    target = in_tmp / name
    for rel, content in files.items():
        path = target / rel if rel else target
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
    assert_bad_input(capfd, argv(f"./{name}"), f"./{name}", needle)
