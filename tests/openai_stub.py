"""A small OpenAI-compatible server for the endpoint tests: real answers from a transformers causal LM,
and faults on demand.

``OpenAIStub(model, tokenizer, ...)`` serves ``/v1/models``, ``/v1/completions`` and
``/v1/chat/completions`` on 127.0.0.1 (a free port unless one is given) from a background thread;
use it as a context manager, which always shuts it down.

Answers are computed, not canned: greedy generation with ``model.generate`` (sampling, seeded by the
request's ``seed``, when ``temperature`` > 0) and log-probabilities from one forward pass over the
prompt and the generated tokens (for a greedy one-token answer, the scoring requests, that one pass
also picks the token). Prompts are tokenized as the tokenizer does by default (the tiny test
tokenizer adds no start-of-sequence token, so the first prompt token has no log-probability).

Log-probability shapes (``shape``):
- ``"legacy"``: ``echo`` + ``logprobs`` give the OpenAI legacy ``choice["logprobs"]`` over prompt and
  generated tokens (``token_logprobs[0]`` None); ``prompt_logprobs`` is ignored.
- ``"vllm"``: ``prompt_logprobs`` gives vLLM's ``choice["prompt_logprobs"]`` ([None, {"<id>": {logprob,
  rank, decoded_token}}, ...], the prompt's own token first); ``echo`` is ignored, and ``logprobs``
  covers the generated tokens only.
- ``None``: every log-probability field is ignored (as ``transformers serve`` does).
``text_offset`` is computed as vLLM computes it: the running sum of the decoded tokens' lengths (a
start-of-sequence token's ``<s>`` included). Without echo it counts from 0 as vLLM does
(``offsets_from_zero``; default: with the vLLM shape) or from the prompt's start as OpenAI did.

Faults: ``echo_shift`` (nats added to every echoed prompt log-probability, never to a generated
token's: llama.cpp's wrong echo), ``fail_first`` (N POSTs answered with HTTP ``fail_status``),
``malformed`` (POSTs answered with a body that is not JSON), both from the first POST or after
``faults_after`` answered POSTs; ``die_after`` (after N answered POSTs every request gets its
connection closed without an answer), ``require_key`` (HTTP 401 unless ``Authorization: Bearer
<key>``). ``requests`` logs every request (method, path, JSON body, Authorization header),
``posts``/``answered`` count POSTs, ``max_in_flight`` is the most POSTs handled at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import torch


class OpenAIStub:
    def __init__(self, model: Any, tokenizer: Any, *, name: str = "tiny", shape: str | None = "legacy",
                 echo_shift: float = 0.0, fail_first: int = 0, fail_status: int = 500, malformed: bool = False,
                 faults_after: int = 0, die_after: int | None = None, require_key: str | None = None,
                 offsets_from_zero: bool | None = None, port: int = 0) -> None:
        assert shape in ("legacy", "vllm", None)
        self.model, self.tok, self.name, self.shape = model.eval(), tokenizer, name, shape
        self.echo_shift, self.fail_first, self.fail_status = echo_shift, fail_first, fail_status
        self.malformed, self.faults_after, self.die_after = malformed, faults_after, die_after
        self.require_key = require_key
        self.offsets_from_zero = shape == "vllm" if offsets_from_zero is None else offsets_from_zero
        self.requests: list[dict[str, Any]] = []
        self.posts = 0  # POSTs seen
        self.answered = 0  # POSTs answered with 200
        self.faulted = 0  # POSTs answered with an injected failure
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()  # the counters and the log
        self._model_lock = threading.Lock()  # one computation at a time: deterministic, and torch stays calm
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"openai-stub-{self.port}",
                                        daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(10)
        self._server.server_close()

    def posts_to(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]

    # ---- the model ----

    def _encode(self, text: str) -> list[int]:
        ids = list(self.tok(text)["input_ids"])
        if not ids:
            raise ValueError("empty prompt")
        return ids

    @torch.no_grad()
    def _run(self, ids: list[int], max_tokens: int, temperature: float, top_p: float, seed: int | None,
             scores: bool) -> tuple[list[int], torch.Tensor | None, bool]:
        """Generated ids, the log-softmax at every position of prompt + generated (when ``scores``), and
        whether generation stopped at EOS."""
        with self._model_lock, _one_thread():
            logp: torch.Tensor | None
            if max_tokens == 1 and temperature == 0:  # one forward pass gives the greedy token and every score
                logp = torch.log_softmax(self.model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
                gen = [int(logp[-1].argmax())]
            else:
                gen = []
                if max_tokens > 0:
                    inp = torch.tensor([ids])
                    kw: dict[str, Any] = {"do_sample": False}
                    if temperature > 0:
                        torch.manual_seed(seed or 0)
                        kw = {"do_sample": True, "temperature": temperature, "top_p": top_p}
                    out = self.model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=max_tokens,
                                              pad_token_id=self.tok.pad_token_id,
                                              eos_token_id=self.tok.eos_token_id, **kw)
                    gen = out[0, len(ids):].tolist()
                logp = torch.log_softmax(self.model(input_ids=torch.tensor([ids + gen])).logits[0].float(),
                                         dim=-1) if scores else None
            hit_eos = bool(gen) and gen[-1] == self.tok.eos_token_id
            return gen, logp if scores else None, hit_eos

    def _piece(self, tid: int) -> str:
        return self.tok.decode([tid])

    def _completion(self, body: dict[str, Any], prompt: str) -> dict[str, Any]:
        ids = self._encode(prompt)
        max_tokens = int(body["max_tokens"]) if body.get("max_tokens") is not None else 16
        temperature = float(body["temperature"]) if body.get("temperature") is not None else 1.0
        k_top = body.get("logprobs") if self.shape else None
        want_prompt = self.shape == "vllm" and body.get("prompt_logprobs") is not None
        gen, logp, hit_eos = self._run(ids, max_tokens, temperature, float(body.get("top_p") or 1.0),
                                       body.get("seed"), scores=k_top is not None or want_prompt)
        full = ids + gen
        text_ids = gen[:-1] if hit_eos else gen
        text = self.tok.decode(text_ids, skip_special_tokens=True)
        finish = "length" if len(gen) >= max_tokens and not hit_eos else "stop"
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        cuts = [(text.find(s), s) for s in stops if s and s in text]
        stop_reason = None  # as vLLM says it: the stop string that ended the text, None at EOS or length
        if cuts:
            at, stop_reason = min(cuts)
            text, finish = text[:at], "stop"
        choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish, "stop_reason": stop_reason,
                                  "logprobs": None}
        if logp is not None:
            choice.update(self._scores(body, prompt, ids, full, logp))
        if self.shape == "legacy" and k_top is not None and body.get("echo"):
            choice["text"] = prompt + text
        return {"id": "cmpl-stub", "object": "text_completion", "created": 0, "model": self.name,
                "choices": [choice], "usage": {"prompt_tokens": len(ids), "completion_tokens": len(gen),
                                               "total_tokens": len(full)}}

    def _scores(self, body: dict[str, Any], prompt: str, ids: list[int], full: list[int], logp: torch.Tensor
                ) -> dict[str, Any]:
        """The log-probability fields of a choice, in this stub's shape."""
        lps: list[float | None] = [None] + [float(logp[k - 1, full[k]]) for k in range(1, len(full))]
        k_top = body.get("logprobs")
        out: dict[str, Any] = {}
        if self.shape == "legacy" and k_top is not None:
            echo = bool(body.get("echo"))
            pos = list(range(0 if echo else len(ids), len(full)))
            values = [v + self.echo_shift if v is not None and k < len(ids) else v
                      for k, v in ((k, lps[k]) for k in pos)]
            out["logprobs"] = self._legacy(full, pos, values, logp, int(k_top),
                                           base=0 if echo or self.offsets_from_zero else len(prompt))
        if self.shape == "vllm":
            if k_top is not None:  # the generated tokens only
                pos = list(range(len(ids), len(full)))
                out["logprobs"] = self._legacy(full, pos, [lps[k] for k in pos], logp, int(k_top),
                                               base=0 if self.offsets_from_zero else len(prompt))
            if body.get("prompt_logprobs") is not None:
                out["prompt_logprobs"] = [None] + [
                    self._vllm_entry(full[k], logp[k - 1], int(body["prompt_logprobs"]), self.echo_shift)
                    for k in range(1, len(ids))]
        return out

    def _legacy(self, full: list[int], pos: list[int], values: list[float | None], logp: torch.Tensor, k_top: int,
                base: int) -> dict[str, Any]:
        tokens = [self._piece(full[k]) for k in pos]
        offsets, at = [], base
        for t in tokens:
            offsets.append(at)
            at += len(t)
        tops: list[dict[str, float] | None] = []
        for k in pos:
            if k == 0:
                tops.append(None)
                continue
            vals, idx = torch.topk(logp[k - 1], max(1, k_top))
            tops.append({self._piece(int(i)): float(v) for v, i in zip(vals, idx)})
        return {"tokens": tokens, "token_logprobs": values, "text_offset": offsets, "top_logprobs": tops}

    def _vllm_entry(self, tid: int, row: torch.Tensor, k_top: int, shift: float) -> dict[str, Any]:
        own = float(row[tid])
        entry = {str(tid): {"logprob": own + shift, "rank": int((row > row[tid]).sum()) + 1,
                            "decoded_token": self._piece(tid)}}
        vals, idx = torch.topk(row, max(1, k_top))
        for r, (v, i) in enumerate(zip(vals, idx), start=1):
            entry.setdefault(str(int(i)), {"logprob": float(v), "rank": r, "decoded_token": self._piece(int(i))})
        return entry

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        if not getattr(self.tok, "chat_template", None):
            raise ValueError("this tokenizer has no chat template")
        prompt = self.tok.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True)
        out = self._completion({k: v for k, v in body.items() if k not in ("logprobs", "echo")}, prompt)
        choice = out["choices"][0]
        return {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": self.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": choice["text"]},
                             "finish_reason": choice["finish_reason"], "stop_reason": choice["stop_reason"]}],
                "usage": out["usage"]}


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread while the stub computes: the tiny model gains nothing from more, and on a busy
    machine a second thread waiting for a core makes every forward pass some fifty times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _err(status: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "code": status}}


def _handler(stub: OpenAIStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: Any, raw: bytes | None = None) -> None:
            data = raw if raw is not None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, _err(status, message))

        def _begin(self, body: Any) -> bool:
            """Log the request; False when the connection is to be dropped (die_after)."""
            with stub._lock:
                stub.requests.append({"method": self.command, "path": self.path, "body": body,
                                      "authorization": self.headers.get("Authorization"), "t": time.monotonic()})
                dead = stub.die_after is not None and stub.answered >= stub.die_after
            if dead:
                self.close_connection = True
            return not dead

        def do_GET(self) -> None:
            if not self._begin(None) or not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": stub.name, "object": "model", "created": 0,
                                                             "owned_by": "stub"}]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = None
            if not self._begin(body) or not self._authorised():
                return
            with stub._lock:
                stub.posts += 1
                stub.in_flight += 1
                stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
            try:
                status, payload = self._answer(body)
            finally:  # before the answer goes out: the client may send its next request at once
                with stub._lock:
                    stub.in_flight -= 1
            if isinstance(payload, bytes):
                return self._send(status, None, raw=payload)
            self._send(status, payload)

        def _answer(self, body: Any) -> tuple[int, Any]:
            """(HTTP status, JSON payload, or raw bytes) for a POST."""
            with stub._lock:
                faulty = stub.answered >= stub.faults_after
                failing = faulty and stub.faulted < stub.fail_first
                if failing:
                    stub.faulted += 1
            if failing:
                return stub.fail_status, _err(stub.fail_status, "injected failure")
            if faulty and stub.malformed:
                return 200, b"<html>not json</html>"
            if not isinstance(body, dict):
                return 400, _err(400, "body is not a JSON object")
            if body.get("model") not in (None, stub.name):
                return 404, _err(404, f"model {body.get('model')!r} not found")
            try:
                if self.path == "/v1/completions":
                    if not isinstance(body.get("prompt"), str):
                        return 400, _err(400, "prompt must be a string")
                    payload = stub._completion(body, body["prompt"])
                elif self.path == "/v1/chat/completions":
                    payload = stub._chat(body)
                else:
                    return 404, _err(404, f"no route {self.path}")
            except Exception as exc:  # noqa: BLE001 - a server answers 500, as the real ones do
                return 500, _err(500, f"{type(exc).__name__}: {exc}")
            with stub._lock:
                stub.answered += 1
            return 200, payload

        def _authorised(self) -> bool:
            if stub.require_key is None or self.headers.get("Authorization") == f"Bearer {stub.require_key}":
                return True
            self._error(401, "invalid API key")
            return False

    return Handler
