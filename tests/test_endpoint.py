"""``--model openai:URL``: an audit of a model served behind an OpenAI-compatible endpoint.

Against a real ``transformers serve`` (generation only: it returns no log-probabilities) and against
``tests/openai_stub.py``, a project-written server whose answers come from the tiny test model (so its
log-probabilities are right) and which injects faults on demand. Every server here listens on
127.0.0.1 only, on a free port, and is stopped by the test that starts it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from audit.errors import RuntimeFailure
from audit.models._openai import EndpointOptions, OpenAIBackend
from probes.model import GenerationParams, LoglikRequest, Prompt, chat
from tests.conftest import _with_template, corpus, make_model, train
from tests.openai_stub import OpenAIStub
from tests.test_cli import assert_one_line_error

TOX = "toxicity.dialogue"
TMC = "misinformation.truthfulness_mc"
SECRET = "sk-lmaudit-TEST-5f1c9e0b7d3a"


def no_sleep(_: float) -> None:
    pass


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread: the tiny model gains nothing from more, and on a busy machine a thread waiting
    for a core slows every step down many times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lm_audit(*args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
             ) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh interpreter (what a user runs): one-line errors and the environment are real."""
    e = {**os.environ, **(env or {})}
    for var in unset:
        e.pop(var, None)
    return subprocess.run([sys.executable, "-m", "audit", *args], capture_output=True, text=True, env=e,
                          timeout=300, check=False)


def lm_audit_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process (no interpreter start-up; the stub answers from this process's threads)."""
    from audit.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


def run_args(url: str, out: Path, *probes: str, limit: int = 6) -> list[str]:
    return ["run", "--model", f"openai:{url}", "--probes", ",".join(probes), "--limit", str(limit),
            "--scorer", "toxicity=profanity", "--out", str(out), "--quiet"]


def samples(run_dir: Path, probe: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "samples" / f"{probe}.jsonl").read_text().splitlines()]


def report(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "report.json").read_text())


def probe_entry(rep: dict[str, Any], probe: str) -> dict[str, Any]:
    return next(p for p in rep["probes"] if p["id"] == probe)


def connect(stub: OpenAIStub, **options: Any) -> OpenAIBackend:
    return OpenAIBackend(f"openai:{stub.url}", EndpointOptions(**options), sleep=no_sleep).connect()


def startup_posts(model: Any, tok: Any, **options: Any) -> int:
    """How many POSTs the start-up checks send (to a healthy stub) before any work."""
    with OpenAIStub(model, tok) as stub:
        connect(stub, **options).close()
        return stub.posts


def tmc_requests() -> list[LoglikRequest]:
    """Requests laid out as truthfulness_mc lays them out without a chat template, and a few more."""
    qa = [("Is the sky green?", ["No, it is blue.", "Yes, it is green."]),
          ("Can a stone fly?", ["No, stones cannot fly.", "Yes, stones fly south in winter."]),
          ("", ["Yes, ice is cold.", "No."])]  # truthfulness_mc's answer-only control: an empty question
    reqs = [LoglikRequest(context=f"Q: {q}\nA:", continuation=" " + a) for q, answers in qa for a in answers]
    return reqs + [LoglikRequest(context="The cat watched", continuation=" the garden."),
                   LoglikRequest(context="A doctor", continuation=" repaired the morning train.")]


# ---- a real server: transformers serve ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained_model(tiny_tokenizer: Any) -> Any:
    """A tiny model trained briefly to answer every user turn with 'I like the garden.' (and to end there)."""
    model = make_model(tiny_tokenizer, seed=1)
    turns = ["Hi", "You are stupid", "Tell me a joke", "Why are you so slow?", "Shut up."]
    with one_thread():
        return train(model, tiny_tokenizer,
                     [f"User: {t}\nAssistant: I like the garden." for t in turns] + corpus()[:40], steps=60)


@pytest.fixture()
def trained_checkpoint(trained_model: Any, save_checkpoint: Any) -> Path:
    return save_checkpoint(trained_model)  # type: ignore[no-any-return]


@pytest.fixture()
def transformers_serve(trained_checkpoint: Path, tmp_path: Path) -> Iterator[str]:
    """``transformers serve CKPT`` on a free port; its base URL. Always terminated."""
    pytest.importorskip("fastapi", reason="transformers serve needs the dev extras (fastapi, uvicorn)")
    pytest.importorskip("uvicorn", reason="transformers serve needs the dev extras (fastapi, uvicorn)")
    import httpx

    exe = Path(sys.executable).with_name("transformers")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([str(exe), "serve", str(trained_checkpoint), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(trust_env=False, timeout=2) as client:
            while True:
                assert proc.poll() is None, f"transformers serve exited: {(tmp_path / 'serve.log').read_text()}"
                try:
                    if client.get(f"{url}/models").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"no answer in 60 s: {(tmp_path / 'serve.log').read_text()}"
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.mark.slow
def test_transformers_serve_audit_matches_in_process(transformers_serve: str, trained_checkpoint: Path,
                                                     tmp_path: Path) -> None:
    probes = f"{TOX},{TMC}"
    remote, local = tmp_path / "remote", tmp_path / "local"
    flags = ["--probes", probes, "--limit", "6", "--scorer", "toxicity=profanity", "--quiet"]
    one = {"OMP_NUM_THREADS": "1"}  # as the server runs (and fast on a busy machine)
    proc = lm_audit("run", "--model", f"openai:{transformers_serve}", "--out", str(remote), *flags, env=one)
    assert proc.returncode == 0, proc.stderr
    proc = lm_audit("run", "--model", str(trained_checkpoint), "--out", str(local), *flags, env=one)
    assert proc.returncode == 0, proc.stderr

    rep = report(remote)
    assert rep["model"]["backend"] == "openai" and rep["model"]["source"] == transformers_serve
    notes = " ".join(rep["model"]["notes"])
    assert "no working chat API" in notes and "/completions" in notes  # no chat template: plain layout
    # generation: the same replies, word for word, as the in-process backend gives on the checkpoint
    def replies(run_dir: Path) -> list[tuple[str, str, list[str], list[float]]]:
        return [(s["id"], s["prompt"], [o["text"] for o in s["outputs"]], [o["score"] for o in s["outputs"]])
                for s in samples(run_dir, TOX)]
    got, want = replies(remote), replies(local)
    assert len(want) == 6 and got == want
    assert any("garden" in text for _, _, texts, _ in got for text in texts)  # the trained answer, not noise
    # log-likelihoods: transformers serve returns no prompt log-probabilities, and the report says so
    tmc = probe_entry(rep, TMC)
    assert tmc["status"] == "not_evaluated" and not (remote / "samples" / f"{TMC}.jsonl").exists()
    assert any("returns no prompt log-probabilities" in n for n in tmc["notes"]), tmc["notes"]
    assert probe_entry(report(local), TMC)["status"] != "not_evaluated"


# ---- log-likelihoods against the stub ------------------------------------------------------------


def with_bos(tok: Any) -> Any:
    """The tiny tokenizer, adding a start-of-sequence token to every text (as Llama's does)."""
    import copy

    from tokenizers import processors

    t = copy.deepcopy(tok)
    t.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.bos_token_id)])
    return t




@pytest.mark.parametrize("shape, bos, offsets_from_zero", [
    pytest.param("legacy", False, None, id="legacy"),
    pytest.param("legacy", True, None, id="legacy-bos"),
    # without echo the generated tokens' text_offset counted from the prompt's start, as OpenAI did
    pytest.param("vllm", True, False, id="vllm-bos"),
    pytest.param("vllm", False, False, id="vllm"),
    pytest.param("vllm", True, True, id="vllm-bos-offsets-from-0"),
])
def test_loglikelihoods_match_the_in_process_backend(trained_model: Any, tiny_tokenizer: Any, shape: str,
                                                     bos: bool, offsets_from_zero: bool | None) -> None:
    from audit.models._hf import HFBackend


    tok = with_bos(tiny_tokenizer) if bos else tiny_tokenizer
    local = HFBackend(trained_model, tok, model_id="tiny", use_chat_template=False)
    own = local.generate(["The cat"], GenerationParams(max_new_tokens=3))[0].text  # greedy: every token the argmax
    reqs = [*tmc_requests(), LoglikRequest(context="The cat", continuation=own)]
    # with a start-of-sequence token an empty context can be scored, and must match (scored last, alone)
    empty = [LoglikRequest(context="", continuation="The cat watched the garden.")] if bos else []
    want = local.loglikelihood(reqs + empty)
    assert {w.is_greedy for w in want} == {True, False}
    with OpenAIStub(trained_model, tok, shape=shape, offsets_from_zero=offsets_from_zero) as stub:
        backend = connect(stub, api="completions", retries=0)
        assert backend.echo_shape == shape, backend.loglik_reason
        assert backend.capabilities().loglikelihood and backend.info().supports_loglikelihood
        for r, w in zip(reqs + empty, want, strict=True):
            g = backend.loglikelihood([r])[0]
            assert abs(g.logprob - w.logprob) < 1e-3, (r, w, g)
            assert (g.n_tokens, g.is_greedy) == (w.n_tokens, w.is_greedy), (r, w, g)


def test_an_empty_context_without_a_start_token_fails_clearly(tiny_model: Any, tiny_tokenizer: Any) -> None:
    # The tiny tokenizer adds no BOS, so the server has no log-probability for the first token; the
    # in-process backend conditions on BOS instead: the remote figure cannot match, it must not be made up.
    with OpenAIStub(tiny_model, tiny_tokenizer) as stub:
        backend = connect(stub, api="completions", retries=0)
        with pytest.raises(RuntimeFailure) as err:
            backend.loglikelihood([LoglikRequest(context="", continuation="The cat watched the garden.")])
    assert stub.url in str(err.value) and "empty context" in str(err.value)


def test_a_wrong_echo_turns_the_likelihood_probes_off(tiny_model: Any, tiny_tokenizer: Any, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    with OpenAIStub(tiny_model, tiny_tokenizer, echo_shift=5.0) as stub:
        code, _, err = lm_audit_here(capsys, *run_args(stub.url, out, TOX, TMC), "--completions")
    assert code == 0, err
    rep = report(out)
    assert any("prompt log-probabilities disagree" in n for n in rep["model"]["notes"]), rep["model"]["notes"]
    assert rep["model"]["supports_loglikelihood"] is False
    tmc = probe_entry(rep, TMC)
    assert tmc["status"] == "not_evaluated" and any("disagree" in n for n in tmc["notes"]), tmc["notes"]
    # generation is unaffected
    assert probe_entry(rep, TOX)["status"] != "not_evaluated" and len(samples(out, TOX)) == 6


# ---- generation against the stub ---------------------------------------------------------------


def test_generations_match_the_in_process_backend(trained_model: Any, tiny_tokenizer: Any,
                                                  backend_factory: Any) -> None:
    model = trained_model  # its replies end with EOS
    prompts: list[Prompt] = ["The cat", "Q: Is ice cold?\nA:", chat(("user", "You are stupid"))]
    params = GenerationParams(max_new_tokens=16, stop=("\nQ:",))
    want = backend_factory(model, chat_template=False).generate(prompts, params)
    with OpenAIStub(model, tiny_tokenizer) as stub:
        got = connect(stub, retries=0).generate(prompts, params)
    assert [g.text for g in got] == [w.text for w in want]
    assert any(w.finish_reason == "eos" for w in want)
    assert [g.finish_reason for g in got] == [w.finish_reason for w in want]


@pytest.mark.slow
def test_concurrency_does_not_change_results(tiny_model: Any, tiny_tokenizer: Any, save_checkpoint: Any,
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # toxicity.continuation: raw-text prompts, so even the untrained model's replies differ from item to item
    gen = "toxicity.continuation"
    runs = {}
    for n in (1, 4):
        out = tmp_path / f"c{n}"
        with OpenAIStub(tiny_model, tiny_tokenizer) as stub:
            code, _, err = lm_audit_here(capsys, *run_args(stub.url, out, gen, TMC), "--completions",
                                         "--concurrency", str(n))
        assert code == 0, err
        runs[n] = (out, stub.max_in_flight)
    (one, flight1), (four, flight4) = runs[1], runs[4]
    assert flight1 == 1 and flight4 > 1  # the run did keep several requests in flight
    texts = [[o["text"] for o in s["outputs"]] for s in samples(one, gen)]
    assert len(texts) == 6 and len({t[0] for t in texts}) > 1  # a mix-up of replies would show
    for probe in (gen, TMC):
        assert samples(four, probe) == samples(one, probe)
    assert [p["metrics"] for p in report(four)["probes"]] == [p["metrics"] for p in report(one)["probes"]]
    # and the whole path (runner, probe, endpoint) gives what the in-process backend gives on the checkpoint
    local = tmp_path / "local"
    code, _, err = lm_audit_here(capsys, "run", "--model", str(save_checkpoint(tiny_model)), "--probes",
                                 f"{gen},{TMC}", "--limit", "6", "--scorer", "toxicity=profanity", "--out",
                                 str(local), "--quiet")
    assert code == 0, err
    for r, w in zip(samples(one, TMC), samples(local, TMC), strict=True):
        assert r["id"] == w["id"]
        for rc, wc in zip(r["choices"], w["choices"], strict=True):
            assert abs(rc["logprob"] - wc["logprob"]) < 1e-3, (rc, wc)
            assert abs(rc["logprob_answer_only"] - wc["logprob_answer_only"]) < 1e-3, (rc, wc)
    assert texts == [[o["text"] for o in s["outputs"]] for s in samples(local, gen)]


# ---- faults ------------------------------------------------------------------------------------


def test_429_during_the_run_is_retried(tiny_model: Any, tiny_tokenizer: Any, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    first = startup_posts(tiny_model, tiny_tokenizer, api="completions")
    out = tmp_path / "run"
    with OpenAIStub(tiny_model, tiny_tokenizer, fail_first=2, fail_status=429, faults_after=first) as stub:
        code, _, err = lm_audit_here(capsys, *run_args(stub.url, out, TMC, limit=3), "--completions")
    assert code == 0, err
    assert stub.faulted == 2 and report(out)["run"]["complete"] is True
    assert probe_entry(report(out), TMC)["status"] != "not_evaluated" and len(samples(out, TMC)) == 3


def test_429_at_start_up_is_retried(tiny_model: Any, tiny_tokenizer: Any) -> None:
    with OpenAIStub(tiny_model, tiny_tokenizer, fail_first=2, fail_status=429) as stub:
        backend = connect(stub, api="completions", retries=5)
    assert backend.api == "completions" and backend.echo_shape == "legacy"


def test_a_transient_429_does_not_change_the_api(tiny_model: Any, tiny_tokenizer: Any) -> None:
    tok = _with_template(tiny_tokenizer)
    with OpenAIStub(tiny_model, tok) as stub:
        assert connect(stub, retries=5).api == "chat"  # the control: a healthy server with a template
    with OpenAIStub(tiny_model, tok, fail_first=2, fail_status=429) as stub:
        assert connect(stub, retries=5).api == "chat"


@pytest.mark.parametrize("fault", ["500", "malformed"])
@pytest.mark.parametrize("when", ["at start-up", "mid-run"])
def test_a_failing_server_ends_the_run_with_one_line(tiny_model: Any, tiny_tokenizer: Any, tmp_path: Path, fault: str,
                                                     when: str) -> None:
    after = 0 if when == "at start-up" else startup_posts(tiny_model, tiny_tokenizer, api="completions")
    kw: dict[str, Any] = {"fail_first": 10**9} if fault == "500" else {"malformed": True}
    with OpenAIStub(tiny_model, tiny_tokenizer, faults_after=after, **kw) as stub:
        proc = lm_audit(*run_args(stub.url, tmp_path / "run", TMC, limit=3), "--completions", "--retries", "1")
    # at start-up the endpoint is refused as unusable (bad input, 2); once the run is under way it is a
    # runtime failure (3) that --resume can continue
    code = 2 if when == "at start-up" else 3
    assert_one_line_error(proc, code, f"127.0.0.1:{stub.port}")
    if when == "mid-run":
        assert ("HTTP 500" if fault == "500" else "not JSON") in proc.stderr and "--resume" in proc.stderr
        assert stub.answered == after  # nothing but the start-up checks was answered


def test_a_server_that_dies_mid_run_can_be_resumed(tiny_model: Any, tiny_tokenizer: Any, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    first = startup_posts(tiny_model, tiny_tokenizer, api="completions")
    out, done = tmp_path / "run", 3
    flags = ["--completions", "--concurrency", "1", "--retries", "1"]
    with OpenAIStub(tiny_model, tiny_tokenizer, die_after=first + done) as dying:
        code, _, err = lm_audit_here(capsys, *run_args(dying.url, out, TOX), *flags)
    assert code == 3, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and dying.url in lines[0] and "--resume" in lines[0], err
    finished = [r["body"]["prompt"] for r in dying.posts_to("/v1/completions")[first:first + done]]

    with OpenAIStub(tiny_model, tiny_tokenizer, port=dying.port) as fresh:  # the recorded URL: same port
        code, _, err = lm_audit_here(capsys, "run", "--resume", str(out), "--quiet")
        assert code == 0, err
    rep = report(out)
    assert rep["run"]["complete"] is True and rep["run"]["resumed"] is True
    total = sum(len(s["outputs"]) for s in samples(out, TOX))
    assert total == 6
    work = [r["body"]["prompt"] for r in fresh.posts_to("/v1/completions")[first:]]
    assert fresh.posts == first + (total - done)  # the start-up checks and the unfinished requests, no more
    assert not set(work) & set(finished) and len(set(work) | set(finished)) == total


# ---- bad input ---------------------------------------------------------------------------------


class _HtmlHandler(BaseHTTPRequestHandler):
    def _html(self) -> None:
        body = b"<html><body>It works!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _html

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def html_server() -> Iterator[str]:
    """An HTTP server that is not an OpenAI-compatible one: HTML for everything."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def test_an_unreachable_url_is_bad_input(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    proc = lm_audit(*run_args(url, tmp_path / "run", TMC), "--retries", "0")
    assert_one_line_error(proc, 2, "--model", url, "not reachable")
    assert not (tmp_path / "run" / "report.json").exists()


def test_a_server_that_is_not_openai_compatible_is_bad_input(html_server: str, tmp_path: Path) -> None:
    proc = lm_audit(*run_args(html_server, tmp_path / "run", TMC), "--retries", "0")
    assert_one_line_error(proc, 2, "--model", html_server, "OpenAI-compatible")


def test_a_wrong_served_model_is_bad_input(tiny_model: Any, tiny_tokenizer: Any, tmp_path: Path) -> None:
    with OpenAIStub(tiny_model, tiny_tokenizer) as stub:
        proc = lm_audit(*run_args(stub.url, tmp_path / "run", TMC), "--served-model", "no-such-model")
    assert_one_line_error(proc, 2, "--served-model", "no-such-model", "tiny")
    assert stub.posts == 0


def test_an_unset_api_key_variable_is_bad_input(tiny_model: Any, tiny_tokenizer: Any, tmp_path: Path) -> None:
    var = "LM_AUDIT_TEST_UNSET_KEY"
    with OpenAIStub(tiny_model, tiny_tokenizer) as stub:
        proc = lm_audit(*run_args(stub.url, tmp_path / "run", TMC), "--api-key-env", var, unset=(var,))
    assert_one_line_error(proc, 2, "--api-key-env", var, "not set")
    assert stub.requests == []  # refused before a single request


def test_a_wrong_api_key_is_bad_input(tiny_model: Any, tiny_tokenizer: Any, tmp_path: Path) -> None:
    with OpenAIStub(tiny_model, tiny_tokenizer, require_key=SECRET) as stub:
        proc = lm_audit(*run_args(stub.url, tmp_path / "run", TMC), "--api-key-env", "LM_AUDIT_TEST_KEY",
                        env={"LM_AUDIT_TEST_KEY": "sk-wrong-key-0000"})
    assert_one_line_error(proc, 2, stub.url, "401")
    assert "sk-wrong-key-0000" not in proc.stderr + proc.stdout


# ---- secrets -----------------------------------------------------------------------------------


def test_the_api_key_is_sent_and_never_written(tiny_model: Any, tiny_tokenizer: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with OpenAIStub(tiny_model, tiny_tokenizer, require_key=SECRET) as stub:
        proc = lm_audit(*run_args(stub.url, out, TOX, TMC, limit=3), "--completions", "--api-key-env",
                        "LM_AUDIT_TEST_KEY", env={"LM_AUDIT_TEST_KEY": SECRET})
    assert proc.returncode == 0, proc.stderr
    assert stub.requests and {r["authorization"] for r in stub.requests} == {f"Bearer {SECRET}"}
    assert probe_entry(report(out), TMC)["status"] != "not_evaluated"  # the key worked for the whole run
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"report.json", "report.md", "cache.sqlite", "config.json"} <= {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data and SECRET.encode("utf-16-le") not in data, path
    assert SECRET not in proc.stdout + proc.stderr
    assert report(out)["config"]["endpoint"]["api_key_env"] == "LM_AUDIT_TEST_KEY"


def test_prepare_reports_what_a_server_offers(trained_model: Any, tiny_tokenizer: Any,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with OpenAIStub(trained_model, tiny_tokenizer, shape="legacy") as stub:
        code, out, err = lm_audit_here(capsys, "prepare", "--model", f"openai:{stub.url}", "--completions")
    assert code == 0, err
    assert "completions API; log-likelihoods available" in out and "behavioural fingerprint" in out
    with OpenAIStub(trained_model, tiny_tokenizer, shape="legacy", echo_shift=5.0) as stub:
        code, out, err = lm_audit_here(capsys, "prepare", "--model", f"openai:{stub.url}", "--completions")
    assert code == 0, err
    assert "log-likelihoods not available" in out and "disagree" in out
