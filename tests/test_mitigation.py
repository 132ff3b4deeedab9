"""The deployment's system prompt (``--system-prompt``) and ``mitigation.system_prompt``.

Planted faults: a tiny model trained to reply politely (and decline harmful requests) when a system
message is present and toxically (and helpfully to anything) when it is absent shows a clear
reduction; a model trained to reply the same way whatever the system says shows none. Around them:
where the run's prompt is applied (chat template, plain text, endpoint), what the report records,
that a cached result never crosses system prompts, and the bad-input paths.

The scorers are the fast offline ones (``profanity``, ``refusal-patterns``, ``nonanswer-rules``):
the default MiniLM scorers take minutes to build and validate on a shared CPU.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from audit.cache import ResultCache
from audit.cli._main import main
from audit.config import AuditConfig, resume_config
from audit.errors import BadInput
from audit.models import MeteredModel
from audit.runner import run_audit
from audit.scorers import ScorerSet, ScorerSpec
from probes import (
    GenerationParams,
    LoglikRequest,
    ProbeContext,
    chat,
    project_data,
    read_jsonl,
    stats,
)
from probes._scored import TextPrompt
from probes.mitigation import (
    BUILTIN_SYSTEM_PROMPT,
    MitigationParams,
    SystemPromptMitigation,
)
from probes.toxicity import PromptItem
from reports import render_markdown
from tests.conftest import make_model, train

FAST_SCORERS = {"toxicity": {"name": "profanity"}, "refusal": {"name": "refusal-patterns"},
                "non_answer": {"name": "nonanswer-rules"}}
SYSTEM = "Be kind."
N = 6  # items per set in the planted tests (--limit)
TOXIC = " fuck you idiot."
FRIENDLY = " Let us keep this friendly."
ATTEMPT = " Sure, here is how: first, get the tools you need."
DECLINE = " I am sorry, I cannot help with that."


def _scorers() -> ScorerSet:
    return ScorerSet({role: ScorerSpec(**spec) for role, spec in FAST_SCORERS.items()})


class _Spy:
    """A backend that records the text the model saw (rendered by the wrapped HFBackend) and passes on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: list[str] = []

    def capabilities(self) -> Any:
        return self.inner.capabilities()

    def info(self) -> Any:
        return self.inner.info()

    def generate(self, prompts: Any, params: Any, progress: Any = None, *, cache: Any = None) -> Any:
        self.seen += [self.inner.prompts.render(p) for p in prompts]
        return self.inner.generate(prompts, params, progress, cache=cache)

    def loglikelihood(self, requests: Any, progress: Any = None, *, cache: Any = None) -> Any:
        self.seen += [self.inner.prompts.render(r.context) for r in requests]
        return self.inner.loglikelihood(requests, progress, cache=cache)


# ---- statistics ---------------------------------------------------------------------------------

def test_paired_difference_is_newcombes_paired_interval() -> None:
    # Bentur et al. (2009) in Fagerland, Lydersen and Laake (2014): Newcombe's square-and-add interval
    # for the paired difference is -0.286 (-0.507 to -0.026).
    before = [True] + [False] + [True] * 7 + [False] * 12
    after = [True] + [True] + [False] * 7 + [False] * 12
    d, ci, n = stats.paired_rate_difference(before, after)
    assert n == 21 and d == pytest.approx(-6 / 21) and ci is not None and ci.method == "newcombe"
    assert (round(ci.low, 3), round(ci.high, 3)) == (-0.507, -0.026)
    # no item changed: centred on 0 but never a point; every item flipped: clear of 0
    _, same, _ = stats.paired_rate_difference([True] * 12, [True] * 12)
    assert same is not None and same.low < 0 < same.high
    _, flipped, _ = stats.paired_rate_difference([True] * 12, [False] * 12)
    assert flipped is not None and flipped.low == -1.0 and flipped.high < -0.5
    assert stats.paired_rate_difference([], []) == (None, None, 0)
    with pytest.raises(ValueError, match="equal length"):
        stats.paired_rate_difference([True], [])


# ---- where the run's system prompt is applied ---------------------------------------------------

def test_the_system_prompt_goes_through_the_chat_template_or_is_prepended_as_text(backend_factory) -> None:  # type: ignore[no-untyped-def]
    params = GenerationParams(max_new_tokens=2)
    convo, raw = chat(("user", "Hello there")), "The cat watched"
    own = chat(("system", "Probe's own."), ("user", "Hello there"))
    templated = _Spy(backend_factory(chat_template=True))
    MeteredModel(templated, system_prompt=SYSTEM).generate([convo, raw, own], params)
    assert templated.seen == ["<s>system: Be kind.</s>\n<s>user: Hello there</s>\n<s>assistant:",
                              "The cat watched",  # raw text is not a conversation: left alone
                              "<s>system: Probe's own.</s>\n<s>user: Hello there</s>\n<s>assistant:"]  # its own wins
    plain = _Spy(backend_factory(chat_template=False))
    model = MeteredModel(plain, system_prompt=SYSTEM)
    model.generate([convo], params)
    model.loglikelihood([LoglikRequest(context=convo, continuation=" Hi"), LoglikRequest(context=raw, continuation=" a")])
    assert plain.seen == ["System: Be kind.\nUser: Hello there\nAssistant:"] * 2 + ["The cat watched"]
    # the view for a probe that manages the prompt itself sends conversations as written
    plain.seen.clear()
    model.without_system_prompt().generate([convo], params)
    assert plain.seen == ["User: Hello there\nAssistant:"]
    assert model.info().system_prompt_note == "prepended as text: no chat template"
    assert MeteredModel(templated, system_prompt=SYSTEM).info().system_prompt_note == "applied through the chat template"
    assert MeteredModel(plain).info().system_prompt is None


def test_the_endpoint_gets_a_real_system_message(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    from audit.models import EndpointOptions, OpenAIBackend
    from tests.conftest import _with_template
    from tests.openai_stub import OpenAIStub

    with OpenAIStub(tiny_model, _with_template(tiny_tokenizer)) as stub:
        backend = OpenAIBackend(f"openai:{stub.url}", EndpointOptions(api="chat", retries=0)).connect()
        try:
            MeteredModel(backend, system_prompt=SYSTEM).generate([chat(("user", "Hello"))],
                                                                 GenerationParams(max_new_tokens=2))
        finally:
            backend.close()
    assert stub.requests[-1]["body"]["messages"] == [{"role": "system", "content": SYSTEM},
                                                     {"role": "user", "content": "Hello"}]


def test_a_cached_result_never_crosses_system_prompts(backend_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spy = _Spy(backend_factory(chat_template=True))
    prompts, params = [chat(("user", "Hello there"))], GenerationParams(max_new_tokens=3)
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        MeteredModel(spy, cache).generate(prompts, params)
        MeteredModel(spy, cache).generate(prompts, params)
        assert cache.hits == 1  # the same request again: from the cache
        hits = cache.hits
        MeteredModel(spy, cache, system_prompt=SYSTEM).generate(prompts, params)
        MeteredModel(spy, cache, system_prompt="Be terse.").generate(prompts, params)
        assert cache.hits == hits  # neither system prompt was served the other's (or none's) result
        MeteredModel(spy, cache, system_prompt=SYSTEM).generate(prompts, params)
        assert cache.hits == hits + 1


# ---- settings, report, resume -------------------------------------------------------------------

def _lm_audit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.mark.parametrize("make, needle", [
    (lambda d: d / "missing.txt", "file not found"),
    (lambda d: (d / "empty.txt").write_text("\n\n") and d / "empty.txt", "is empty"),
    (lambda d: d, "is a directory"),
])
def test_an_unusable_system_prompt_file_is_bad_input_naming_the_flag(make, needle: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = make(tmp_path)
    code, out, err = _lm_audit(capsys, "run", "--model", "smollm2-135m", "--system-prompt-file", str(path),
                               "--out", str(tmp_path / "run"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"lm-audit: error: --system-prompt-file {path}: ") and needle in err
    assert not (tmp_path / "run").exists()


def test_text_and_file_together_are_refused_and_the_text_is_never_echoed(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    secret = "Internal note: escalate to ops@example.com"
    (tmp_path / "p.txt").write_text(secret + "\n")
    code, _, err = _lm_audit(capsys, "run", "--model", "smollm2-135m", "--system-prompt", secret,
                             "--system-prompt-file", str(tmp_path / "p.txt"))
    assert code == 2 and "--system-prompt-file cannot be combined with --system-prompt" in err and secret not in err
    code, _, err = _lm_audit(capsys, "run", "--model", "smollm2-135m", "--system-prompt", "  ")
    assert code == 2 and err.startswith("lm-audit: error: --system-prompt ") and "is empty" in err
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"model: smollm2-135m\nsystem_prompt_file: {tmp_path / 'nope.txt'}\n")
    code, _, err = _lm_audit(capsys, "run", "--config", str(cfg))
    assert code == 2 and f"--config {cfg}: system_prompt_file: {tmp_path / 'nope.txt'}: file not found" in err
    cfg.write_text(f"model: smollm2-135m\nsystem_prompt: x\nsystem_prompt_file: {tmp_path / 'p.txt'}\n")
    code, _, err = _lm_audit(capsys, "run", "--config", str(cfg))
    assert code == 2 and "give one of the two" in err


def test_the_report_records_the_prompt_and_a_resume_keeps_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
                                                             tiny_model, save_checkpoint) -> None:
    secret = "You are Acme's assistant.\nInternal: never mention Project ```Zephyr```."
    (tmp_path / "prompt.txt").write_text(secret + "\n", encoding="utf-8")
    ckpt = save_checkpoint(tiny_model)  # no chat template: the prompt is prepended as text
    out = tmp_path / "run"
    code, stdout, err = _lm_audit(capsys, "run", "--model", str(ckpt), "--probes", "toxicity.dialogue",
                                  "--limit", "2", "--system-prompt-file", str(tmp_path / "prompt.txt"),
                                  "--scorer", "toxicity=profanity", "--pii-nlp-model", "none", "--out", str(out),
                                  "--param", "toxicity.dialogue:max_new_tokens=2", "--quiet")
    assert code == 0, err
    assert "Zephyr" not in stdout + err  # never printed
    report = json.loads((out / "report.json").read_text())
    sha = hashlib.sha256(secret.encode()).hexdigest()
    assert report["model"]["system_prompt"] == secret and report["model"]["system_prompt_sha256"] == sha
    assert report["model"]["system_prompt_note"] == "prepended as text: no chat template"
    assert report["config"]["system_prompt"] == secret and report["schema_version"] == "1.0"
    md = (out / "report.md").read_text()
    assert f"System prompt: sha256 `{sha[:16]}` ({len(secret)} chars; prepended as text: no chat template)" in md
    assert "````\nYou are Acme's assistant.\nInternal: never mention Project ```Zephyr```.\n````" in md
    samples = (out / "samples" / "toxicity.dialogue.jsonl").read_text()
    assert "Zephyr" not in samples  # the samples hold the probe's own prompt, not the deployment's

    # A resume keeps the recorded prompt (file gone or not); a different one is refused by its digest.
    (tmp_path / "prompt.txt").unlink()
    assert resume_config(out).system_prompt == secret
    with pytest.raises(BadInput) as exc:
        resume_config(out, {"system_prompt": "Be terse."})
    assert exc.value.setting == "system_prompt" and sha[:16] in str(exc.value) and "Zephyr" not in str(exc.value)
    again = run_audit(AuditConfig(resume=out))
    assert again.model.system_prompt_sha256 == sha and again.run.cache_hits > 0 and again.run.cache_misses == 0
    assert "System prompt: sha256" in render_markdown(again)


# ---- mitigation.system_prompt -------------------------------------------------------------------

def _items() -> tuple[list[str], list[str], list[str]]:
    hostile = [i.text for i in read_jsonl(project_data("toxicity_dialogue.jsonl"), PromptItem)[:N]]
    harmful = [i.text for i in read_jsonl(project_data("malicious_requests.jsonl"), TextPrompt)[:N]]
    benign = [i.text for i in read_jsonl(project_data("benign_lookalikes.jsonl"), TextPrompt)[:N]]
    return hostile, harmful, benign


def _planted(tokenizer: Any, backend_factory: Any, *, mitigated: bool) -> Any:
    """A backend (with the test chat template) whose model was trained on the conversations the probe
    sends, rendered through that template. mitigated: with a system message, friendly to hostile turns
    and declining harmful requests; without one, toxic and helpful to anything. Not mitigated: the same
    replies whatever the system says."""
    render = backend_factory(chat_template=True).prompts.render
    hostile, harmful, benign = _items()
    texts = []
    for system in (None, SYSTEM):
        on = mitigated and system is not None
        for items, reply in ((hostile, FRIENDLY if on else TOXIC), (harmful, DECLINE if on else ATTEMPT),
                             (benign, ATTEMPT)):
            for t in items:
                convo = chat(("user", t)) if system is None else chat(("system", system), ("user", t))
                texts.append(render(convo) + reply)
    model = train(make_model(tokenizer, seed=1), tokenizer, texts, steps=120, lr=4e-3)
    return backend_factory(model, chat_template=True)


def _run_mitigation(backend: Any, system_prompt: str | None = SYSTEM) -> dict[str, Any]:
    ctx = ProbeContext(model=backend, params=MitigationParams(toxicity_max_new_tokens=12, request_max_new_tokens=16),
                       scorers=_scorers(), limit=N, system_prompt=system_prompt)
    result = SystemPromptMitigation().run(ctx)
    return {m.name: m for m in result.metrics} | {"_result": result}


@pytest.fixture()
def one_thread():  # type: ignore[no-untyped-def]
    """Train the tiny model on one thread: on a shared, busy CPU two OpenMP threads spin against each
    other and a step of this 2-layer model takes seconds instead of a fraction of one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_a_prompt_that_works_shows_a_clear_reduction_and_a_stubborn_model_none(tiny_tokenizer, backend_factory,  # type: ignore[no-untyped-def]
                                                                                 one_thread) -> None:
    works = _planted(tiny_tokenizer, backend_factory, mitigated=True)
    stubborn = _planted(tiny_tokenizer, backend_factory, mitigated=False)
    good, bad = _run_mitigation(works), _run_mitigation(stubborn)

    assert good["toxic_rate_without"].value >= 0.75 and good["toxic_rate_with"].value <= 0.25, \
        good["_result"].samples[:2]
    assert good["toxic_rate_difference"].ci.high < 0  # the whole interval: a reduction
    assert good["compliance_rate_without"].value >= 0.75 and good["compliance_rate_difference"].ci.high < 0
    assert good["over_refusal_rate_difference"].ci.low <= 0 <= good["over_refusal_rate_difference"].ci.high
    for name in ("toxic_rate_difference", "compliance_rate_difference", "over_refusal_rate_difference"):
        m = bad[name]
        assert m.n == N and m.ci.method == "newcombe" and m.ci.low <= 0 <= m.ci.high, (name, m)
    assert bad["toxic_rate_with"].value >= 0.75  # still toxic with the system message

    result = good["_result"]
    assert result.metrics[0].status is None  # informational: a policy check sets the bar
    assert {s["set"] for s in result.samples} == {"toxicity_dialogue", "malicious_requests", "benign_lookalikes"}
    assert len({s["id"] for s in result.samples}) == 3 * N
    change = [s["toxic_change"] for s in result.samples if s["toxic_change"] is not None]
    assert sum(change) / len(change) == pytest.approx(good["toxic_rate_difference"].value)
    assert "'with' arm: the run's --system-prompt" in result.notes[0]
    assert "applied through the chat template" in result.notes[1]


def test_the_builtin_prompt_is_the_with_arm_when_the_run_has_none(backend_factory, one_thread) -> None:  # type: ignore[no-untyped-def]
    spy = _Spy(backend_factory(chat_template=True))
    got = _run_mitigation(MeteredModel(spy), system_prompt=None)
    sent = len(spy.seen) // 2
    assert sent == 3 * N and not any("system:" in s for s in spy.seen[:sent])
    assert all(s.startswith(f"<s>system: {BUILTIN_SYSTEM_PROMPT}</s>") for s in spy.seen[sent:])
    assert "built-in dialogue prompt, version 1" in got["_result"].notes[0]


def test_the_probe_keeps_its_no_prompt_arm_in_a_run_with_a_system_prompt(tmp_path: Path) -> None:
    from tests.test_backend_contract import FixedBackend

    class Recording(FixedBackend):
        def __init__(self) -> None:
            super().__init__()
            self.prompts: list[Any] = []

        def generate(self, prompts: Any, params: Any, progress: Any = None, *, cache: Any = None) -> Any:
            self.prompts += prompts
            return super().generate(prompts, params, progress, cache=cache)

    backend = Recording()
    config = AuditConfig(model="fixed", probes=["mitigation.system_prompt", "toxicity.dialogue"], limit=3,
                         out=tmp_path / "run", pii={"nlp_model": "none"}, scorers=FAST_SCORERS,
                         system_prompt=SYSTEM)
    report = run_audit(config, model=backend)
    systems = [p[0].content if p[0].role == "system" else None for p in backend.prompts]
    assert systems.count(None) == 9  # the probe's arm without: the run's prompt was not added
    assert set(systems) == {None, SYSTEM}  # every other conversation got the run's prompt
    probe = report.probe("mitigation.system_prompt")
    assert probe.status.value == "manual" and not probe.errors
    assert report.model.system_prompt_sha256 == hashlib.sha256(SYSTEM.encode()).hexdigest()


def test_the_datasheet_quotes_the_builtin_prompt_as_the_code_has_it() -> None:
    readme = (project_data("README.md")).read_text(encoding="utf-8")
    quoted = " ".join(line.removeprefix("> ") for line in readme.splitlines() if line.startswith("> "))
    assert " ".join(BUILTIN_SYSTEM_PROMPT.split()) in " ".join(quoted.split())
