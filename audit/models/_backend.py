"""The backend contract the runner relies on, and the wrapper every backend goes through.

A backend implements four methods: ``capabilities``, ``info``, ``generate`` and
``loglikelihood``; the last two take an optional ``cache`` (a ``BatchCache``) to read each
batch from and write each computed batch to. One more is optional: ``token_logprobs(texts,
progress=None, *, cache=None)`` (every token's log-probability of plain texts), offered when
``capabilities().token_logprobs`` says so. The runner
never touches a backend directly: it wraps it in ``MeteredModel``, which owns the run's
result cache, the time spent inside the model, the cache bypass for probes that time
the model and the deployment's system prompt (``_system``: applied to every conversation before
the cache or the backend sees it); it also logs each request's result under the request's own id (``_requests``), which
``lm-audit rescore`` replays without the model. Probes see the wrapper only through ``probes.Model``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from audit.cache import BatchCache, ResultCache, cache_key
from audit.models._requests import generation_id, log_key, loglik_id, per_request
from audit.models._system import (
    system_prompt_info,
    with_system_prompt,
    with_system_prompt_request,
)
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


@runtime_checkable
class Backend(Protocol):
    """What a model backend implements. Write a new one against these four methods alone."""

    def capabilities(self) -> Capabilities:
        """Chat template or not, log-likelihoods or not, context length."""
        ...

    def info(self) -> ModelInfo:
        """The model's identity for the report; ``fingerprint_sha256``, ``dtype``, the device
        type and ``libraries`` scope its cache entries (``cache_scope``)."""
        ...

    def generate(
        self,
        prompts: list[Prompt],
        params: GenerationParams | Sequence[GenerationParams],
        progress: ProgressFn | None = None,
        *,
        cache: BatchCache | None = None,
    ) -> list[Generation]:
        """One generation per prompt, in order. With ``cache``: look each batch up before
        computing it, and put each computed batch (so an interrupted run resumes)."""
        ...

    def loglikelihood(
        self, requests: list[LoglikRequest], progress: ProgressFn | None = None, *, cache: BatchCache | None = None
    ) -> list[LoglikResult]:
        """One result per request, in order; ``cache`` as for ``generate``. A backend that
        cannot score says so in ``capabilities`` and raises here."""
        ...


def _takes_cache(method: object) -> bool:
    params = inspect.signature(method).parameters.values()  # type: ignore[arg-type]
    return any(p.name == "cache" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def check_backend(obj: object) -> None:
    """TypeError naming what is missing when ``obj`` does not implement ``Backend`` (checked once,
    before a run starts, rather than as a failure inside every probe)."""
    missing = [m for m in ("capabilities", "info", "generate", "loglikelihood") if not callable(getattr(obj, m, None))]
    if not missing:
        missing = [f"{m}(..., cache=None)" for m in ("generate", "loglikelihood") if not _takes_cache(getattr(obj, m))]
    if missing:
        raise TypeError(f"{type(obj).__name__} is not an audit.models.Backend: it lacks {', '.join(missing)} "
                        "(see ARCHITECTURE.md, 'The two contracts')")


def cache_scope(info: ModelInfo) -> str:
    """What a model's cached results are scoped to: its weights (fingerprint), the dtype and
    device type they ran in, and the libraries that computed them. A run resumed on another
    machine (float32 on a CPU, bfloat16 on a GPU, another torch) recomputes rather than mix
    both in one report; ``cuda:0`` and ``cuda:1`` share a scope."""
    device_type = info.device.split(":", 1)[0]
    return cache_key("model", info.fingerprint_sha256, info.dtype, device_type, sorted(info.libraries.items()))


class _Clock:
    """Seconds spent inside the model, shared by a wrapper and its uncached view."""

    def __init__(self) -> None:
        self.seconds = 0.0


class MeteredModel:
    """A backend as the runner uses it: every call timed, every batch through the run's cache.

    Implements ``probes.Model``. ``uncached()`` is the same model without the cache, for a
    probe that measures the model itself (its time still counts). ``system_prompt``: the
    deployment's system prompt, made the first message of every conversation (``with_system_prompt``:
    a conversation that has its own system message keeps it; raw text is left alone) before the
    backend, its cache and the request log see the prompt; ``without_system_prompt()`` is the same
    model sending conversations as the probe wrote them, for a probe that measures the system prompt
    itself (``Probe.manages_system_prompt``).
    """

    def __init__(self, backend: Backend, cache: ResultCache | None = None, *, system_prompt: str | None = None,
                 _clock: _Clock | None = None) -> None:
        self.backend = backend  # checked by the runner (check_backend) before the run starts
        self._store = cache
        self._cache = BatchCache(cache, cache_scope(backend.info())) if cache is not None else None
        self._clock = _clock or _Clock()
        self.system_prompt = system_prompt

    @property
    def seconds(self) -> float:
        """Wall time spent inside ``generate`` and ``loglikelihood`` so far."""
        return self._clock.seconds

    def uncached(self) -> MeteredModel:
        """This model without the result cache; time spent still counts here."""
        return MeteredModel(self.backend, None, system_prompt=self.system_prompt, _clock=self._clock)

    def without_system_prompt(self) -> MeteredModel:
        """This model (same cache, same clock) sending conversations without the run's system prompt."""
        return MeteredModel(self.backend, self._store, _clock=self._clock)

    def info(self) -> ModelInfo:
        """The backend's identity, with the system prompt this model applies recorded in it."""
        return system_prompt_info(self.backend.info(), self.system_prompt, self.backend.capabilities().chat_template)

    def capabilities(self) -> Capabilities:
        caps = self.backend.capabilities()
        if caps.token_logprobs and not callable(getattr(self.backend, "token_logprobs", None)):
            # A capability the backend claims but does not implement is not offered.
            caps = caps.model_copy(update={"token_logprobs": False})
        return caps

    def token_logprobs(self, texts: list[str], progress: ProgressFn | None = None) -> list[list[float]]:
        """The optional capability (``probes.model.TokenScorer``), through the run's cache. Not in
        the request log: ``lm-audit rescore`` replays no token log-probabilities."""
        scorer = getattr(self.backend, "token_logprobs", None)
        if not callable(scorer):
            raise NotImplementedError(f"{type(self.backend).__name__} does not score tokens (token_logprobs)")
        t0 = time.perf_counter()
        try:
            return scorer(texts, progress, cache=self._cache)  # type: ignore[no-any-return]
        finally:
            self._clock.seconds += time.perf_counter() - t0

    def generate(
        self,
        prompts: list[Prompt],
        params: GenerationParams | Sequence[GenerationParams],
        progress: ProgressFn | None = None,
    ) -> list[Generation]:
        if self.system_prompt is not None:
            prompts = [with_system_prompt(p, self.system_prompt) for p in prompts]
        t0 = time.perf_counter()
        try:
            out = self.backend.generate(prompts, params, progress, cache=self._cache)
        finally:
            self._clock.seconds += time.perf_counter() - t0
        if self._store is not None:
            per = per_request(len(prompts), params)
            self._store.put_many([(log_key(generation_id(p, q)), g.model_dump()) for p, q, g in zip(prompts, per, out)])
        return out

    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None) -> list[LoglikResult]:
        if self.system_prompt is not None:
            requests = [with_system_prompt_request(r, self.system_prompt) for r in requests]
        t0 = time.perf_counter()
        try:
            out = self.backend.loglikelihood(requests, progress, cache=self._cache)
        finally:
            self._clock.seconds += time.perf_counter() - t0
        if self._store is not None:
            self._store.put_many([(log_key(loglik_id(r)), res.model_dump()) for r, res in zip(requests, out)])
        return out
