"""Log-likelihoods in shared-context batches.

Requests are grouped by context (each distinct context encoded once) and packed into
batches across groups in token order, within the row and token budgets; ``_score.score_batch``
scores a batch. A computed batch is stored in the run's cache under its exact token layout, which a
resumed run looks up, so the packing decides the cache keys: change it and old caches miss.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from audit.cache import BatchCache
from audit.errors import BadInput
from audit.models._prompts import EncodedContext, PromptEncoder
from probes.model import LoglikRequest, LoglikResult, ProgressFn, Prompt

Continuations = list[tuple[int, list[int]]]  # (request index, continuation tokens)
Group = tuple[tuple[int, ...], Continuations]  # a context's tokens and (some of) its continuations
Batch = list[Group]
ScoreFn = Callable[[Batch], list[tuple[int, LoglikResult]]]


def loglikelihoods(requests: list[LoglikRequest], prompts: PromptEncoder, score: ScoreFn, *, batch_size: int,
                   max_batch_tokens: int, progress: ProgressFn | None, cache: BatchCache | None) -> list[LoglikResult]:
    """One result per request, in order; ``score`` computes a batch that ``cache`` lacks."""
    if not requests:
        return []
    groups = group_by_context(requests, prompts)
    results: list[LoglikResult | None] = [None] * len(requests)
    for batch in pack(groups, batch_size, max_batch_tokens):
        for idx, res in cached_score(batch, cache, score):
            results[idx] = res
        if progress:
            progress(sum(len(conts) for _, conts in batch))
    return [r for r in results if r is not None]


def group_by_context(requests: list[LoglikRequest], prompts: PromptEncoder) -> dict[tuple[int, ...], Continuations]:
    """Continuation tokens of every request, keyed by its context's tokens."""
    groups: dict[tuple[int, ...], Continuations] = defaultdict(list)
    # Each distinct context is rendered and encoded once, however many continuations it has.
    contexts: dict[Prompt, EncodedContext] = {}
    for i, req in enumerate(requests):
        if req.context not in contexts:
            contexts[req.context] = prompts.encode_context(req.context)
        encoded = contexts[req.context]
        cont = prompts.split(encoded, req.continuation)
        if not cont:
            raise BadInput(f"log-likelihood request {i}: continuation {req.continuation!r} encodes to no tokens")
        groups[encoded.ids].append((i, cont))
    return groups


def pack(groups: dict[tuple[int, ...], Continuations], batch_size: int, max_batch_tokens: int) -> list[Batch]:
    """Batches of (context, continuations) holding at most ``batch_size`` continuations and
    ``max_batch_tokens`` fed tokens (counted as if nothing were shared; a request longer than
    that gets a batch of its own). Contexts, and each context's continuations, go in token
    order, so that those sharing an opening land side by side and share it in a token tree."""
    batches: list[Batch] = []
    current: Batch = []
    rows = tokens = 0
    for ctx in sorted(groups):
        for idx, cont in sorted(groups[ctx], key=lambda ic: ic[1]):
            cost = len(ctx) + len(cont)
            if current and (rows + 1 > batch_size or tokens + cost > max_batch_tokens):
                batches.append(current)
                current, rows, tokens = [], 0, 0
            if not current or current[-1][0] != ctx:
                current.append((ctx, []))
            current[-1][1].append((idx, cont))
            rows += 1
            tokens += cost
    if current:
        batches.append(current)
    return batches


def cached_score(batch: Batch, cache: BatchCache | None, score: ScoreFn) -> list[tuple[int, LoglikResult]]:
    """``score`` through the run's cache: the key is the batch's exact token layout."""
    if cache is None:
        return score(batch)
    key = ("loglikelihood", [[list(ctx), [c for _, c in conts]] for ctx, conts in batch])
    order = [idx for _, conts in batch for idx, _ in conts]
    cached = cache.get(*key)
    if cached is not None:
        return [(idx, LoglikResult.model_validate(r)) for idx, r in zip(order, cached)]
    scored = dict(score(batch))
    cache.put([scored[idx].model_dump() for idx in order], *key)
    return [(idx, scored[idx]) for idx in order]


__all__ = ["Batch", "ScoreFn", "cached_score", "group_by_context", "loglikelihoods", "pack"]
