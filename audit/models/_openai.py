"""An OpenAI-compatible endpoint as a model backend: vLLM, llama.cpp server, TGI, SGLang, Ollama,
``transformers serve`` or a hosted API. The engine does the serving (and the scaling: tensor and
pipeline parallelism live there); this backend drives it.

- Generation through ``/chat/completions`` (conversations, when the server has a chat API and the
  run uses chat templates) or ``/completions`` (raw text; conversations in the plain
  ``Role: text`` layout the in-process backend uses without a template).
- Log-likelihoods through ``/completions`` with ``echo`` and ``logprobs`` (the legacy OpenAI
  shape: ``tokens``, ``token_logprobs``, ``text_offset``) or vLLM's ``prompt_logprobs``; the
  continuation's tokens are those past the context's last whole token. Only raw-text contexts
  can be scored remotely (a chat template is the server's business), so an endpoint scores
  log-likelihoods with the completions API only.
- A server's prompt log-probabilities are trusted only after a check at start-up: a few fixed
  strings are scored both as prompt (echo) and as the token the server itself generated next; a
  server whose two figures disagree (llama.cpp's echo is off by nats) gets no log-likelihood
  probes (not evaluated, the reason in the report).
- ``concurrency`` requests in flight, retries with exponential back-off and jitter on 429, 5xx and
  connection errors, a per-request timeout; each request's result is cached (the run's cache,
  scoped by endpoint, served model and a behavioural fingerprint), so ``--resume`` repeats nothing.

The API key is read from the environment variable the user names and sent as a bearer token; it
is never written to the report, the cache or a log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from audit.cache import BatchCache
from audit.errors import BadInput, RuntimeFailure
from audit.models._requests import per_request, plain_layout
from probes.model import (
    Capabilities,
    Generation,
    GenerationParams,
    LoglikRequest,
    LoglikResult,
    ProgressFn,
    Prompt,
)
from reports import ModelInfo

log = logging.getLogger(__name__)

PREFIX = "openai:"
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Prompt log-probabilities must match the server's own log-probability of the token it generated,
# position for position, within this many nats (float noise between batch shapes is ~1e-3).
LOGPROB_TOLERANCE = 0.05
_CHECK_STRINGS = (
    "Q: What is the capital of France?\nA: The capital of France is",
    "The quick brown fox jumps over the lazy",
    "One, two, three, four,",
)
_FINGERPRINT_PROMPTS = ("Hello, my name is", "The first law of thermodynamics states that", "2 + 2 =")


class EndpointOptions(BaseModel):
    """How to talk to an OpenAI-compatible server (``model: openai:URL``)."""

    model_config = ConfigDict(extra="forbid")
    served_model: str | None = Field(default=None, description="model name on the server; required when it serves "
                                                               "several")
    api_key_env: str | None = Field(default=None, description="environment variable holding the API key (the key "
                                                              "itself is never written anywhere)")
    api: Literal["auto", "chat", "completions"] = Field(default="auto", description="auto: chat when the server "
                                                                                    "offers it")
    concurrency: int = Field(default=4, ge=1, le=256, description="requests in flight")
    timeout_s: float = Field(default=120.0, gt=0, description="per-request timeout")
    retries: int = Field(default=5, ge=0, le=20, description="retries on 429, 5xx and connection errors")


def is_endpoint(spec: str) -> bool:
    return spec.startswith(PREFIX)


def endpoint_url(spec: str) -> str:
    """The base URL of ``openai:URL`` (``.../v1``), without a trailing slash; BadInput when it is not an
    http(s) URL. Credentials in the URL are refused (they would be written to the report)."""
    url = spec[len(PREFIX):].strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"{spec}: expected openai:http://HOST:PORT/v1 (an http or https URL)", setting="model")
    if parts.username or parts.password:
        raise BadInput(f"{parts.scheme}://{parts.hostname}: put credentials in an environment variable named by "
                       "--api-key-env, not in the URL", setting="model")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class _Unavailable(Exception):
    """A request that failed for good: the message names the endpoint and why."""


class _Refused(_Unavailable):
    """The server answered with an HTTP error that retrying does not change (a 4xx, or a 500 to a
    start-up probe of a feature it lacks)."""


# Transient at start-up: a busy or starting server. A 500 there means "not this feature" (transformers
# serve answers a chat request for a model without a chat template with 500).
_STARTUP_RETRY_STATUS = frozenset({408, 425, 429, 502, 503, 504})


@dataclass
class _Http:
    """JSON over HTTP with retries. Thread-safe (one httpx client shared by the workers)."""

    base: str
    api_key: str | None
    timeout_s: float
    retries: int
    sleep: Callable[[float], None] = time.sleep
    _client: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s), headers=headers, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *, retries: int | None = None,
             retry_status: frozenset[int] = _RETRY_STATUS) -> dict[str, Any]:
        """The decoded JSON object; _Unavailable after the retries (at once on a status not in
        ``retry_status``: ``_Refused`` for an HTTP error the server answered with)."""
        import httpx

        url = f"{self.base}{path}"
        attempts = (self.retries if retries is None else retries) + 1
        last = ""
        for attempt in range(attempts):
            try:
                resp = self._client.request(method, url, json=body)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout_s:g}s"
            except httpx.HTTPError as exc:
                last = f"cannot connect ({type(exc).__name__})"
            else:
                if resp.status_code == 200:
                    try:
                        data = resp.json()
                    except ValueError:
                        last = "answered with something that is not JSON"
                    else:
                        if isinstance(data, dict):
                            return data
                        last = "answered with JSON that is not an object"
                elif resp.status_code in retry_status:
                    last = f"HTTP {resp.status_code}"
                    retry_after = _retry_after(resp.headers.get("retry-after"))
                    if attempt + 1 < attempts and retry_after is not None:
                        self.sleep(retry_after)
                        continue
                else:
                    raise _Refused(f"{url}: HTTP {resp.status_code}: {_server_message(resp)}")
            if attempt + 1 < attempts:
                # exponential back-off with full jitter, capped
                self.sleep(random.uniform(0, min(30.0, 0.5 * 2 ** attempt)))
        raise _Unavailable(f"{url}: {last}" + (f" (after {attempts - 1} retries)" if attempts > 1 else ""))


def _retry_after(value: str | None) -> float | None:
    try:
        return min(60.0, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


def _server_message(resp: Any) -> str:
    try:
        data = resp.json()
    except ValueError:
        return " ".join(resp.text.split())[:200] or "no body"
    err = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
    if isinstance(err, dict):
        err = err.get("message", err)
    return " ".join(str(err).split())[:200]


def _request_seed(prompt: Prompt, params: GenerationParams) -> int:
    """One seed per request (prompt and parameters), whatever else runs beside it."""
    raw = json.dumps([plain_layout(prompt), params.model_dump(mode="json")], sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(raw).digest()[:4], "big")


@dataclass(frozen=True)
class _Scored:
    """Prompt tokens with their character offsets and log-probabilities (None where the server gives
    none: the first token), and the generated token's text and log-probability when asked for."""

    offsets: list[int]
    ends: list[int]
    logprobs: list[float | None]
    greedy: list[bool]
    generated: tuple[str, float] | None = None


class OpenAIBackend:
    """See the module docstring. ``connect()`` runs the start-up checks; the runner calls it once."""

    def __init__(self, spec: str, options: EndpointOptions | None = None, *, chat_template: bool = True,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.spec = spec
        self.url = endpoint_url(spec)
        self.options = options or EndpointOptions()
        self.want_chat = chat_template
        self._sleep = sleep
        self._http: _Http | None = None
        self.served_model = ""
        self.api: Literal["chat", "completions"] = "completions"
        self.echo_shape: Literal["legacy", "vllm"] | None = None
        self.loglik_reason = ""
        self.notes: list[str] = []
        self.fingerprint = ""
        self.server_info: dict[str, Any] = {}
        self._refusals: dict[str, str] = {}  # start-up path -> why the server refused it

    # ---- start-up ----

    def connect(self) -> OpenAIBackend:
        """List the models, pick one, detect the APIs and log-probability support, check it, and
        fingerprint the model. Errors here are bad input (exit 2) naming the URL or the setting."""
        opts = self.options
        key = None
        if opts.api_key_env:
            key = os.environ.get(opts.api_key_env)
            if not key:
                raise BadInput(f"{opts.api_key_env}: the environment variable is not set (or empty)",
                               setting="endpoint.api_key_env")
        self._http = _Http(self.url, key, opts.timeout_s, opts.retries, sleep=self._sleep)
        try:
            listing = self._http.call("GET", "/models", retries=min(2, opts.retries))  # unreachable: fail fast
        except _Unavailable as exc:
            raise BadInput(f"{self.spec}: not reachable as an OpenAI-compatible server: {exc}", setting="model") from None
        data = listing.get("data")
        ids = [m.get("id") for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)] if isinstance(
            data, list) else None
        if not ids:
            raise BadInput(f"{self.spec}: GET /models did not list any model: not an OpenAI-compatible server?",
                           setting="model")
        if opts.served_model is not None:
            if opts.served_model not in ids:
                raise BadInput(f"{opts.served_model}: the server does not serve it (it serves: {', '.join(ids[:10])})",
                               setting="endpoint.served_model")
            self.served_model = opts.served_model
        elif len(ids) == 1:
            self.served_model = ids[0]
        else:
            raise BadInput(f"{self.spec}: the server serves {len(ids)} models ({', '.join(ids[:10])}); name one with "
                           "--served-model", setting="endpoint.served_model")
        listed = next((m for m in data if isinstance(m, dict) and m.get("id") == self.served_model), {})
        # What the server says of the weights, without what changes per call (vLLM stamps "created" and
        # "permission" on every listing): it goes into the fingerprint, which a resumed run must find again.
        self.server_info = {k: listed[k] for k in ("id", "owned_by", "root", "parent", "max_model_len") if k in listed}
        self.api = self._pick_api()
        self._detect_logprobs()
        self.fingerprint = self._fingerprint()
        log.info("endpoint %s, model %s: %s API, log-likelihoods %s", self.url, self.served_model, self.api,
                 "checked" if self.echo_shape else f"off ({self.loglik_reason})")
        return self

    def _probe(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """One start-up request; None when the server refuses it (an HTTP error, or an answer that is
        not JSON: the feature is not there), with the reason kept for the error message. A busy server
        (429, 503, timeouts, lost connections) is retried as any request; when that runs out the run
        stops (exit 3) rather than deciding that the feature is missing."""
        assert self._http is not None
        try:
            return self._http.call("POST", path, {"model": self.served_model, **body},
                                   retry_status=_STARTUP_RETRY_STATUS)
        except _Refused as exc:
            self._refusals[path] = str(exc).split(": ", 1)[-1]
            log.debug("start-up probe %s: %s", path, exc)
            return None
        except _Unavailable as exc:
            if "not JSON" in str(exc) or "not an object" in str(exc):
                self._refusals[path] = str(exc).split(": ", 1)[-1]
                return None
            raise RuntimeFailure(f"{exc} at start-up") from None

    def _pick_api(self) -> Literal["chat", "completions"]:
        want = self.options.api
        chat_ok = completions_ok = False
        if want != "completions" and self.want_chat:
            chat_ok = _has_text(self._probe("/chat/completions", {
                "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "temperature": 0}), chat=True)
        if want != "chat" or not chat_ok:
            completions_ok = _has_text(self._probe("/completions", {"prompt": "Hi", "max_tokens": 1, "temperature": 0}))
        if want == "chat":
            if not self.want_chat:
                raise BadInput("chat: the chat API needs chat templates, which --no-chat-template turns off",
                               setting="endpoint.api")
            if not chat_ok:
                raise BadInput(f"chat: {self.url}/chat/completions does not answer{self._why('/chat/completions')}",
                               setting="endpoint.api")
            return "chat"
        if want == "completions":
            if not completions_ok:
                raise BadInput(f"completions: {self.url}/completions does not answer{self._why('/completions')}",
                               setting="endpoint.api")
            return "completions"
        if chat_ok:
            return "chat"
        if completions_ok:
            if self.want_chat:
                self.notes.append("the server has no working chat API: conversations are sent to /completions in "
                                  "the plain 'User: ... / Assistant:' layout")
            return "completions"
        raise BadInput(f"{self.spec}: neither /chat/completions nor /completions answers a one-token request"
                       f"{self._why('/completions')}", setting="model")

    def _why(self, path: str) -> str:
        return f" ({self._refusals[path]})" if path in self._refusals else ""

    def _detect_logprobs(self) -> None:
        if self.api == "chat":
            self.loglik_reason = ("log-likelihoods of conversations need the server's chat template, which "
                                  "/completions does not apply: audit with --completions for the likelihood probes")
            return
        for shape in ("legacy", "vllm"):
            try:
                scored = self._score_text(_CHECK_STRINGS[0], shape, generate=True,  # type: ignore[arg-type]
                                          retry_status=_STARTUP_RETRY_STATUS)
            except (_Refused, _Malformed) as exc:
                log.debug("echo shape %s: %s", shape, exc)
                continue
            except _Unavailable as exc:
                raise RuntimeFailure(f"{exc} at start-up") from None
            if scored is not None and any(lp is not None for lp in scored.logprobs):
                self.echo_shape = shape  # type: ignore[assignment]
                break
        if self.echo_shape is None:
            self.loglik_reason = "the server returns no prompt log-probabilities (/completions with echo and logprobs)"
            return
        worst = self._check_logprobs()
        if worst is None:
            self.loglik_reason = ("the server's prompt log-probabilities could not be checked against the tokens it "
                                  "generates (no check string could be compared), so they are not trusted")
            self.echo_shape = None
        elif worst > LOGPROB_TOLERANCE:
            self.loglik_reason = (f"the server's prompt log-probabilities disagree with the log-probabilities of the "
                                  f"tokens it generates (by {worst:.2f} nats, tolerance {LOGPROB_TOLERANCE}): its "
                                  "echoed scores cannot be trusted")
            self.echo_shape = None

    def _check_logprobs(self) -> float | None:
        """Each check string: the server generates one token greedily, then scores string + token as a
        prompt; the token's prompt log-probability must equal its generated one. The largest gap over
        the strings compared; None when none could be compared (nothing checked is nothing trusted)."""
        worst: float | None = None
        for text in _CHECK_STRINGS:
            try:
                first = self._score_text(text, self.echo_shape, generate=True,  # type: ignore[arg-type]
                                         retry_status=_STARTUP_RETRY_STATUS)
                # llama.cpp's echo leaves the generated token out: ask for it without echo
                generated = first.generated if first is not None and first.generated else self._next_token(text)
                if generated is None or not generated[0]:
                    continue
                token, lp_generated = generated
                again = self._score_text(text + token, self.echo_shape, generate=False,  # type: ignore[arg-type]
                                         retry_status=_STARTUP_RETRY_STATUS)
            except (_Refused, _Malformed) as exc:
                log.debug("log-probability check on %r: %s", text, exc)
                continue
            except _Unavailable as exc:
                raise RuntimeFailure(f"{exc} at start-up") from None
            if again is None:
                continue
            lp_prompt = _span_logprob(again, len(text))
            if lp_prompt is None:
                continue
            worst = max(worst or 0.0, abs(lp_prompt - lp_generated))
        return worst

    def _next_token(self, text: str) -> tuple[str, float] | None:
        """The token the server generates after ``text`` (greedy) and its log-probability, from a
        plain completion with ``logprobs`` (no echo); None when the answer has none."""
        assert self._http is not None
        data = self._http.call("POST", "/completions", {"model": self.served_model, "prompt": text, "max_tokens": 1,
                                                       "temperature": 0, "logprobs": 1},
                               retry_status=_STARTUP_RETRY_STATUS)
        lp = _first_choice(data, self.url).get("logprobs")
        if not isinstance(lp, dict):
            return None
        tokens, values = lp.get("tokens"), lp.get("token_logprobs")
        if not (isinstance(tokens, list) and isinstance(values, list) and tokens and values
                and isinstance(values[-1], (int, float))):
            return None
        return str(tokens[-1]), float(values[-1])

    def _fingerprint(self) -> str:
        """sha256 over the endpoint, the served model, what the server says of it, and its greedy
        answers on fixed prompts: two audits of "the same" endpoint that served different weights get
        different fingerprints (and, as it scopes the run's cache, never share results). Log-probabilities
        vary in the last digits with batch composition on some engines, so they are fingerprinted apart
        (a note), not in the cache's scope, which a resumed run must find again."""
        texts, logprobs = [], []
        for prompt in _FINGERPRINT_PROMPTS:
            try:
                texts.append(self._generate_one(prompt, GenerationParams(max_new_tokens=8, temperature=0.0)).text)
                if self.echo_shape:
                    scored = self._score_text(prompt, self.echo_shape, generate=False)
                    logprobs.append([None if lp is None else round(lp, 2) for lp in scored.logprobs] if scored
                                    else None)
            except (_Unavailable, _Malformed) as exc:
                raise RuntimeFailure(f"{exc} at start-up") from None
        if logprobs:
            digest = hashlib.sha256(json.dumps(logprobs).encode()).hexdigest()
            self.notes.append(f"log-probability fingerprint {digest[:16]} (prompt log-probabilities of fixed strings)")
        raw = json.dumps([self.url, self.served_model, self.server_info, self.api, texts], sort_keys=True,
                         default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

    # ---- the Backend contract ----

    def capabilities(self) -> Capabilities:
        return Capabilities(chat_template=self.api == "chat", loglikelihood=self.echo_shape is not None,
                            max_context=_int(self.server_info.get("max_model_len")),
                            loglikelihood_note=self.loglik_reason)

    def info(self) -> ModelInfo:
        notes = [*self.notes, f"served by {self.url} ({self.api} API, {self.options.concurrency} requests in flight)"]
        if self.loglik_reason:
            notes.append(f"log-likelihood probes not evaluated: {self.loglik_reason}")
        elif self.echo_shape:
            notes.append(f"prompt log-probabilities ({self.echo_shape} echo shape) agree with generated ones within "
                         f"{LOGPROB_TOLERANCE} nats")
        return ModelInfo(id=self.served_model, backend="openai", source=self.url, dtype="remote", device="remote",
                         fingerprint_sha256=self.fingerprint, chat_template=self.api == "chat",
                         supports_loglikelihood=self.echo_shape is not None, notes=notes,
                         libraries={"endpoint": self.url, "served_model": self.served_model, "api": self.api})

    def generate(self, prompts: list[Prompt], params: GenerationParams | Sequence[GenerationParams],
                 progress: ProgressFn | None = None, *, cache: BatchCache | None = None) -> list[Generation]:
        per = per_request(len(prompts), params)
        return self._fan_out([(p, q) for p, q in zip(prompts, per)], lambda a: self._generate_one(*a),
                             lambda a: ("openai-generate", self.api, _prompt_key(a[0]), a[1].model_dump(mode="json")),
                             Generation, progress, cache)

    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None, *,
                      cache: BatchCache | None = None) -> list[LoglikResult]:
        if self.echo_shape is None:
            raise RuntimeFailure(f"{self.url}: log-likelihoods are not available: {self.loglik_reason}")
        for r in requests:
            if not isinstance(r.context, str):
                raise RuntimeFailure(f"{self.url}: a conversation context cannot be scored through /completions")
        return self._fan_out(requests, self._loglik_one, lambda r: ("openai-loglik", r.context, r.continuation),
                             LoglikResult, progress, cache)

    # ---- requests ----

    def _fan_out(self, items: Sequence[Any], work: Callable[[Any], Any], key: Callable[[Any], tuple],
                 kind: type[BaseModel], progress: ProgressFn | None, cache: BatchCache | None) -> list[Any]:
        """``work`` on every item, ``concurrency`` at a time; each result read from and put to the cache
        per request, so an interrupted run loses at most the requests in flight."""
        results: list[Any] = [None] * len(items)
        todo = []
        for i, item in enumerate(items):
            hit = cache.get(*key(item)) if cache is not None else None
            if hit is not None:
                results[i] = kind.model_validate(hit)
            else:
                todo.append(i)
        if progress and len(todo) < len(items):
            progress(len(items) - len(todo))
        if not todo:
            return results
        lock = threading.Lock()
        pool = ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="lm-audit-http")
        try:
            running: dict[Future[Any], int] = {}
            queue = iter(todo)
            for i in queue:
                running[pool.submit(work, items[i])] = i
                if len(running) >= self.options.concurrency:
                    break
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = running.pop(fut)
                    try:
                        res = fut.result()
                    except (_Unavailable, _Malformed) as exc:
                        raise RuntimeFailure(f"{exc}; finished requests are in the run's cache: --resume continues "
                                             "the run") from None
                    results[i] = res
                    if cache is not None:
                        with lock:
                            cache.put(res.model_dump(), *key(items[i]))
                    if progress:
                        progress(1)
                    nxt = next(queue, None)
                    if nxt is not None:
                        running[pool.submit(work, items[nxt])] = nxt
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results

    def _generate_one(self, prompt: Prompt, params: GenerationParams) -> Generation:
        assert self._http is not None
        body: dict[str, Any] = {"model": self.served_model, "max_tokens": params.max_new_tokens,
                                "temperature": params.temperature}
        if not params.greedy:
            body.update(top_p=params.top_p, seed=_request_seed(prompt, params))
        if params.stop:
            body["stop"] = list(params.stop)
        if self.api == "chat" and not isinstance(prompt, str):
            body["messages"] = [{"role": m.role, "content": m.content} for m in prompt]
            data = self._http.call("POST", "/chat/completions", body)
            choice = _first_choice(data, self.url)
            message = choice.get("message") or {}
            text = message.get("content") if isinstance(message, dict) else None
        else:
            body["prompt"] = plain_layout(prompt)
            data = self._http.call("POST", "/completions", body)
            choice = _first_choice(data, self.url)
            text = choice.get("text")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise _Malformed(f"{self.url}: a choice without text")
        cut = min((text.find(s) for s in params.stop if s in text), default=-1)
        # Servers say "stop" for an end-of-sequence token and for a stop string (which they strip). vLLM's
        # stop_reason tells them apart (the string, or None / a token id at the end of the sequence);
        # without it, "stop" only when a stop string was asked for.
        reason: Literal["stop", "length", "eos"]
        if choice.get("finish_reason") == "length":
            reason = "length"
        elif "stop_reason" in choice:
            reason = "stop" if isinstance(choice["stop_reason"], str) else "eos"
        else:
            reason = "stop" if params.stop else "eos"
        if cut >= 0:
            text, reason = text[:cut], "stop"
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        n = _int(usage.get("completion_tokens")) if usage else None
        if n is not None and reason == "eos":
            n = max(0, n - 1)  # the end-of-sequence token is counted by the server, not in the output
        return Generation(text=text, n_tokens=n if n is not None else len(text.split()), finish_reason=reason)

    def _loglik_one(self, req: LoglikRequest) -> LoglikResult:
        assert isinstance(req.context, str) and self.echo_shape is not None
        scored = self._score_text(req.context + req.continuation, self.echo_shape, generate=False)
        if scored is None:
            raise _Malformed(f"{self.url}: no prompt log-probabilities in the answer")
        first = _first_continuation_token(scored, len(req.context))
        if first is None:
            raise _Malformed(f"{self.url}: continuation {req.continuation!r} has no tokens of its own")
        lps = scored.logprobs[first:]
        if any(lp is None for lp in lps):
            raise _Malformed(f"{self.url}: no log-probability for the first token of {req.continuation!r} (an empty "
                             "context on a server that adds no start-of-sequence token)")
        return LoglikResult(logprob=float(sum(lps)), n_tokens=len(lps),  # type: ignore[arg-type]
                            is_greedy=all(scored.greedy[first:]))

    def _score_text(self, text: str, shape: Literal["legacy", "vllm"], *, generate: bool,
                    retry_status: frozenset[int] = _RETRY_STATUS) -> _Scored | None:
        """Prompt log-probabilities of ``text`` and the next token's (one token is always generated:
        some servers refuse ``max_tokens`` 0); ``generate`` says whether the caller wants it."""
        assert self._http is not None
        body: dict[str, Any] = {"model": self.served_model, "prompt": text, "temperature": 0,
                                "max_tokens": 1, "echo": True, "logprobs": 1}
        if shape == "vllm":
            body = {"model": self.served_model, "prompt": text, "temperature": 0, "max_tokens": 1,
                    "prompt_logprobs": 1, "logprobs": 1}
        data = self._http.call("POST", "/completions", body, retry_status=retry_status)
        choice = _first_choice(data, self.url)
        return _parse_legacy(choice, text) if shape == "legacy" else _parse_vllm(choice, text)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


class _Malformed(Exception):
    """An answer that does not have the shape the API promises."""


def _first_choice(data: dict[str, Any], url: str) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _Malformed(f"{url}: an answer without choices")
    return choices[0]


def _has_text(data: dict[str, Any] | None, chat: bool = False) -> bool:
    if data is None:
        return False
    try:
        choice = _first_choice(data, "")
    except _Malformed:
        return False
    if chat:
        message = choice.get("message")
        return isinstance(message, dict) and ("content" in message)
    return "text" in choice


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _prompt_key(prompt: Prompt) -> Any:
    return prompt if isinstance(prompt, str) else [[m.role, m.content] for m in prompt]


def _parse_legacy(choice: dict[str, Any], text: str) -> _Scored | None:
    """The legacy OpenAI completions shape: ``logprobs.tokens``, ``token_logprobs``, ``text_offset``
    and ``top_logprobs``; with ``max_tokens`` 1 the token after the prompt is the generated one.

    Offsets come from the tokens themselves where they spell the prompt (vLLM counts a decoded
    start-of-sequence marker in ``text_offset``, shifting every offset), else from ``text_offset``.
    An answer whose tokens do not cover the prompt did not echo it (a server that ignores ``echo``
    and returns the generated token alone): None."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    tokens, values = lp.get("tokens"), lp.get("token_logprobs")
    tops = lp.get("top_logprobs") or []
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
        raise _Malformed("logprobs without matching tokens and token_logprobs")
    offsets, covered = _spelled(tokens, text)
    if covered < len(text):
        served = lp.get("text_offset")
        if not (isinstance(served, list) and len(served) == len(tokens) and _covers(served, tokens, text)):
            return None
        offsets = [int(o) for o in served]
    n_prompt = sum(1 for o, t in zip(offsets, tokens) if o < len(text) or (o == len(text) and not str(t)))
    n_prompt = min(n_prompt, len(tokens))
    greedy = []
    for k in range(len(tokens)):
        top = tops[k] if k < len(tops) and isinstance(tops[k], dict) else None
        v = values[k]
        greedy.append(bool(top) and v is not None and v >= max(top.values()) - 1e-6)
    ends = [offsets[k + 1] if k + 1 < n_prompt else len(text) for k in range(n_prompt)]
    generated = None
    if len(tokens) > n_prompt and values[n_prompt] is not None:
        generated = (str(tokens[n_prompt]), float(values[n_prompt]))
    return _Scored(offsets=list(offsets[:n_prompt]), ends=ends,
                   logprobs=[None if v is None else float(v) for v in values[:n_prompt]],
                   greedy=greedy[:n_prompt], generated=generated)


def _spelled(pieces: Sequence[Any], text: str) -> tuple[list[int], int]:
    """(each piece's offset, characters of ``text`` the pieces spell in order): a piece that is not
    where the text continues (a start-of-sequence marker) takes no characters; after the text ends
    every piece sits at its end."""
    out, pos = [], 0
    for piece in pieces:
        out.append(pos)
        piece = str(piece)
        if piece and pos < len(text) and text.startswith(piece, pos):
            pos += len(piece)
    return out, pos


def _covers(offsets: Sequence[Any], tokens: Sequence[Any], text: str) -> bool:
    """Whether server offsets place the prompt's tokens in the text (non-decreasing, in range, and
    the first token at 0): a server that did not echo gives its generated token offset 0 too, but
    then the tokens do not reach the end of the text."""
    if not offsets or not all(isinstance(o, int) for o in offsets) or offsets[0] != 0:
        return False
    if any(b < a for a, b in zip(offsets, offsets[1:])):
        return False
    inside = [k for k, o in enumerate(offsets) if o < len(text)]
    return bool(inside) and offsets[inside[-1]] + len(str(tokens[inside[-1]])) >= len(text)


def _parse_vllm(choice: dict[str, Any], text: str) -> _Scored | None:
    """vLLM's ``prompt_logprobs``: per prompt token None (the first) or {token_id: {logprob, rank,
    decoded_token}}; the prompt token is the entry ranked by the prompt itself (with prompt_logprobs 1
    a second entry may hold the top-1 alternative). The generated token comes in ``logprobs``."""
    entries = choice.get("prompt_logprobs")
    if not isinstance(entries, list):
        return None
    pieces: list[str] = []
    values: list[float | None] = []
    greedy: list[bool] = []
    for entry in entries:
        if entry is None:
            pieces.append("")
            values.append(None)
            greedy.append(False)
            continue
        if not isinstance(entry, dict) or not entry:
            raise _Malformed("prompt_logprobs entry is not an object")
        cands = [c for c in entry.values() if isinstance(c, dict)]
        # the prompt's own token is the first entry (vLLM lists it first, then the top-k)
        own = cands[0]
        pieces.append(str(own.get("decoded_token", "")))
        values.append(float(own["logprob"]))
        greedy.append(own.get("rank") == 1)
    # The first entry (None) is the first prompt token: a start-of-sequence marker, or real text (a
    # tokenizer without one). Its text is whatever the other tokens leave at the start.
    rest = "".join(pieces[1:])
    if pieces and entries[0] is None and text.endswith(rest):
        pieces[0] = text[: len(text) - len(rest)]
    offsets, covered = _spelled(pieces, text)
    if covered < len(text):
        raise _Malformed("prompt_logprobs tokens do not spell the prompt")
    ends = [offsets[k + 1] if k + 1 < len(offsets) else len(text) for k in range(len(offsets))]
    generated = None
    lp = choice.get("logprobs")
    if isinstance(lp, dict) and isinstance(lp.get("tokens"), list) and lp["tokens"] and lp.get("token_logprobs"):
        generated = (str(lp["tokens"][0]), float(lp["token_logprobs"][0]))
    return _Scored(offsets=offsets, ends=ends, logprobs=values, greedy=greedy, generated=generated)


def _first_continuation_token(scored: _Scored, boundary: int) -> int | None:
    """Index of the first token past the context's last whole token (a token that straddles the
    boundary belongs to the continuation), or None when no token does."""
    return next((k for k, end in enumerate(scored.ends) if end > boundary), None)


def _span_logprob(scored: _Scored, boundary: int) -> float | None:
    first = _first_continuation_token(scored, boundary)
    if first is None:
        return None
    values = scored.logprobs[first:]
    return None if any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]


__all__ = ["EndpointOptions", "OpenAIBackend", "PREFIX", "endpoint_url", "is_endpoint"]
