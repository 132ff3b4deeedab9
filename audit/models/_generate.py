"""Batched generation: prompts grouped by their parameters, each group run by continuous
batching (``_continuous``: a row that ends leaves the batch and a queued prompt takes its
slot), or for models that loop cannot run, length-sorted in left-padded static batches
through ``model.generate``. Each request's result is stored in the run's cache as soon as it
ends, under its token ids and parameters (and, when sampling, its seed), which a resumed run
looks up; both paths use the same keys and give the same results.

Sampled requests draw from one random stream each (``_sampling``), so a request's sample
is the same whatever batch it shares and whatever the batch size."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessorList

from audit.cache import BatchCache
from audit.models._continuous import (
    DecodeForward,
    DecodeSettings,
    Row,
    Unsupported,
    decode,
    unsupported_reason,
)
from audit.models._prompts import PromptEncoder
from audit.models._requests import per_request
from audit.models._sampling import RowSampler, request_seeds
from audit.models._tensors import padded
from probes.model import Generation, GenerationParams, ProgressFn, Prompt

log = logging.getLogger(__name__)


def group_by_params(n_prompts: int, params: GenerationParams | Sequence[GenerationParams]) -> dict[GenerationParams, list[int]]:
    """Prompt indices by parameter set (one set for all, or one per prompt), in first-seen
    order: prompts with equal parameters share batches; greedy and sampled ones never do."""
    per_prompt = per_request(n_prompts, params)
    groups: dict[GenerationParams, list[int]] = defaultdict(list)
    for i, p in enumerate(per_prompt):
        groups[p].append(i)
    return groups


@torch.inference_mode()
def generate_group(model: Any, prompts: PromptEncoder, batch: list[Prompt], params: GenerationParams, *,
                   batch_size: int, pad_id: int, device: Any, progress: ProgressFn | None,
                   cache: BatchCache | None) -> list[Generation]:
    """One generation per prompt in ``batch``, all with ``params``, at most ``batch_size`` rows
    at once by continuous batching (``_continuous``): a row leaves the batch as soon as it ends
    and a queued prompt takes its place. Each request is read from ``cache`` first and put
    there as soon as it ends; ``progress`` hears of each request once, when it is done.
    Models the loop cannot run go through the static path (``generate_static``)."""
    if not batch:
        return []
    reason = unsupported_reason(model)
    reported = _Reported(progress)
    if reason is None:
        try:
            return _generate_continuous(model, prompts, batch, params, batch_size=batch_size, pad_id=pad_id,
                                        device=device, progress=reported, cache=cache)
        except Unsupported as exc:  # raised before any request is decided (cache hits were reported)
            reason = str(exc)
    log.debug("generation through static batches: %s", reason)
    progress = reported.rest() if progress else None
    return generate_static(model, prompts, batch, params, batch_size=batch_size, pad_id=pad_id, device=device,
                           progress=progress, cache=cache)


class _Reported:
    """A progress callback that counts what it passed on, so that a fallback to the static
    path does not report the cache hits again."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self._progress = progress
        self.n = 0

    def __call__(self, n: int) -> None:
        self.n += n
        if self._progress:
            self._progress(n)

    def rest(self) -> ProgressFn:
        """A callback that drops the first ``n`` items it hears of and passes on the others."""
        skip = self.n

        def report(n: int) -> None:
            nonlocal skip
            drop = min(skip, n)
            skip -= drop
            if n > drop and self._progress:
                self._progress(n - drop)

        return report


def _request_key(ids: list[int], params: GenerationParams, seed: int | None) -> tuple[Any, ...]:
    """A request's cache key: the layout of a one-row batch, so entries do not depend on the batch."""
    key: tuple[Any, ...] = ("generate", [ids], params.model_dump(mode="json"))
    return key if seed is None else key + ([seed],)


def _lookup(cache: BatchCache | None, key: tuple[Any, ...]) -> Generation | None:
    cached = cache.get(*key) if cache is not None else None
    return Generation.model_validate(cached[0]) if cached is not None else None


def _generate_continuous(model: Any, prompts: PromptEncoder, batch: list[Prompt], params: GenerationParams, *,
                         batch_size: int, pad_id: int, device: Any, progress: ProgressFn | None,
                         cache: BatchCache | None) -> list[Generation]:
    encoded = [prompts.encode(p) for p in batch]
    eos = eos_ids(model, prompts.tok)
    # Seeded per request, not per batch: a sample does not depend on the batch size.
    seeds: list[int | None] = list(request_seeds(batch, params)) if not params.greedy else [None] * len(batch)
    results: list[Generation | None] = [None] * len(batch)
    keys = [_request_key(encoded[i], params, seeds[i]) for i in range(len(batch))]
    # Identical requests (greedy ones with one prompt) are computed once.
    twins: dict[str, list[int]] = defaultdict(list)
    queue: list[Row] = []
    for i, key in enumerate(keys):
        ident = json.dumps(key)
        twins[ident].append(i)
        if len(twins[ident]) > 1:
            continue
        results[i] = _lookup(cache, key)
        if results[i] is None:
            queue.append(Row(index=i, prompt=encoded[i], seed=seeds[i]))
    for idxs in twins.values():
        if results[idxs[0]] is not None:
            for i in idxs[1:]:
                results[i] = results[idxs[0]]
            if progress:
                progress(len(idxs))
    queue.sort(key=lambda r: -len(r.prompt))  # newcomers of similar length share a prefill

    def done(row: Row) -> None:
        gen = finish(prompts.tok, row.new, params, eos, pad_id=pad_id)
        if cache is not None:
            cache.put([gen.model_dump()], *keys[row.index])
        group = twins[json.dumps(keys[row.index])]
        for i in group:
            results[i] = gen
        if progress:
            progress(len(group))

    if queue:
        settings = DecodeSettings(eos=eos, max_new_tokens=params.max_new_tokens, pad_id=pad_id,
                                  sampling=None if params.greedy else (params.temperature, params.top_p),
                                  stop=tuple(params.stop), tokenizer=prompts.tok)
        if settings.sampling is not None and settings.sampling[0] <= 0:
            raise ValueError(f"temperature {params.temperature}: sampling needs a temperature above 0")
        decode(DecodeForward(model), queue, settings, batch_size=batch_size, device=device, done=done)
    return [g for g in results if g is not None]


@torch.inference_mode()
def generate_static(model: Any, prompts: PromptEncoder, batch: list[Prompt], params: GenerationParams, *,
                    batch_size: int, pad_id: int, device: Any, progress: ProgressFn | None,
                    cache: BatchCache | None) -> list[Generation]:
    """The static path: prompts longest first in left-padded batches of ``batch_size`` through
    ``model.generate``, a batch running until its longest row ends. Each request is read from
    ``cache`` first (under the same key as the continuous path) and put there with its batch."""
    if not batch:
        return []
    encoded = [prompts.encode(p) for p in batch]
    eos = eos_ids(model, prompts.tok)
    seeds: list[int | None] = list(request_seeds(batch, params)) if not params.greedy else [None] * len(batch)
    keys = [_request_key(encoded[i], params, seeds[i]) for i in range(len(batch))]
    results: list[Generation | None] = [_lookup(cache, k) for k in keys]
    if progress and any(g is not None for g in results):
        progress(sum(g is not None for g in results))
    todo = [i for i in range(len(batch)) if results[i] is None]
    order = sorted(todo, key=lambda i: -len(encoded[i]))
    for start in range(0, len(order), batch_size):
        idxs = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in idxs)
        ids, mask = padded([encoded[i] for i in idxs], width, pad_id, device, left=True)
        kwargs: dict[str, Any] = dict(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=params.max_new_tokens,
            pad_token_id=pad_id,
            eos_token_id=eos or None,
            # Greedy over the logits, or over RowSampler's one-token choice when sampling.
            do_sample=False, temperature=None, top_p=None, top_k=None,
        )
        if not params.greedy:
            kwargs.update(logits_processor=LogitsProcessorList([
                RowSampler([seeds[i] for i in idxs], params.temperature, params.top_p)]))  # type: ignore[misc]
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=prompts.tok)
        out = model.generate(**kwargs)
        for r, i in enumerate(idxs):
            results[i] = gen = finish(prompts.tok, out[r, width:].tolist(), params, eos, pad_id=pad_id)
            if cache is not None:
                cache.put([gen.model_dump()], *keys[i])
        if progress:
            progress(len(idxs))
    return [g for g in results if g is not None]


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token that ends a generation: the generation config's (one or several), then the tokenizer's."""
    ids: list[int] = []
    for source in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        for tid in source if isinstance(source, list) else [source]:
            if tid is not None and int(tid) not in ids:
                ids.append(int(tid))
    return ids


def finish(tokenizer: Any, new_ids: list[int], params: GenerationParams, eos: list[int], *,
           pad_id: int | None = None) -> Generation:
    """New tokens as a ``Generation``: cut at the first end-of-sequence token, then before the
    earliest stop string (``model.generate`` stops after one but leaves it in the output).
    A row that stopped at a stop string before the rest of its batch is filled with
    ``pad_id`` after it; those tokens are not counted, so ``n_tokens`` does not depend on the batch."""
    reason = "length"
    for k, tid in enumerate(new_ids):
        if tid in eos:
            new_ids, reason = new_ids[:k], "eos"
            break
    if params.stop and pad_id is not None and pad_id not in eos:
        while new_ids and new_ids[-1] == pad_id:
            new_ids = new_ids[:-1]
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    cut = min((text.find(s) for s in params.stop if s in text), default=-1)
    if cut >= 0:
        text, reason = text[:cut], "stop"
    return Generation(text=text, n_tokens=len(new_ids), finish_reason=reason)  # type: ignore[arg-type]


__all__ = ["eos_ids", "finish", "generate_group", "generate_static", "group_by_params"]
