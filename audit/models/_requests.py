"""Requests by identity: the id of a generation or log-likelihood request, independent of the
model, the batch and the backend. The run's request log (``MeteredModel`` writes each result under
its id), ``lm-audit prompts export``, the ``outputs:`` backend and ``lm-audit rescore`` all use
these ids, so an output recorded anywhere answers the same request everywhere."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from audit.cache import cache_key
from audit.errors import BadInput
from probes.model import GenerationParams, LoglikRequest, Prompt

LOG_PREFIX = "request"


def per_request(n: int, params: GenerationParams | Sequence[GenerationParams]) -> list[GenerationParams]:
    """One parameter set per prompt, from one set for all or one per prompt (checked to match)."""
    per = [params] * n if isinstance(params, GenerationParams) else list(params)
    if len(per) != n:
        raise BadInput(f"generate: {n} prompts but {len(per)} parameter sets")
    return per


def plain_layout(prompt: Prompt) -> str:
    """A prompt as text for a model without a chat template: a conversation as 'Role: text' lines
    ending in 'Assistant:' (the in-process backend and the endpoint backend send the same text)."""
    if isinstance(prompt, str):
        return prompt
    return "".join(f"{m.role.capitalize()}: {m.content}\n" for m in prompt) + "Assistant:"


def prompt_record(prompt: Prompt) -> dict[str, Any]:
    """The prompt as an export line holds it: ``messages`` for a conversation, ``prompt`` for raw text."""
    if isinstance(prompt, str):
        return {"prompt": prompt}
    return {"messages": [{"role": m.role, "content": m.content} for m in prompt]}


def _digest(value: Any) -> str:
    raw = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:24]


def generation_id(prompt: Prompt, params: GenerationParams) -> str:
    return "gen-" + _digest([prompt_record(prompt), params.model_dump(mode="json")])


def loglik_id(request: LoglikRequest) -> str:
    return "ll-" + _digest([prompt_record(request.context), request.continuation])


def log_key(request_id: str) -> str:
    """Where the run's cache keeps a request's result (apart from the backends' batch entries)."""
    return cache_key(LOG_PREFIX, request_id)


__all__ = ["generation_id", "log_key", "loglik_id", "per_request", "plain_layout", "prompt_record"]
