"""Batched generation: prompts grouped by their parameters, each group length-sorted and
run in left-padded batches through ``model.generate``; a computed batch is stored in the
run's cache under its token ids and parameters (and, when sampling, its requests' seeds),
which a resumed run looks up.

Sampled requests draw from one random stream each (``_sampling``), so a request's sample
is the same whatever batch it shares and whatever the batch size."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessorList

from audit.cache import BatchCache
from audit.models._prompts import PromptEncoder
from audit.models._requests import per_request
from audit.models._sampling import RowSampler, request_seeds
from audit.models._tensors import padded
from probes.model import Generation, GenerationParams, ProgressFn, Prompt


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
    """One generation per prompt in ``batch``, all with ``params``, longest prompt first in
    batches of ``batch_size``; each batch is read from ``cache`` first and put there after."""
    if not batch:
        return []
    encoded = [prompts.encode(p) for p in batch]
    order = sorted(range(len(batch)), key=lambda i: -len(encoded[i]))
    results: list[Generation | None] = [None] * len(batch)
    eos = eos_ids(model, prompts.tok)
    # Seeded per request, not per batch: a sample does not depend on the batch size.
    seeds = None if params.greedy else request_seeds(batch, params)
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
        key: tuple[Any, ...] = ("generate", [encoded[i] for i in idxs], params.model_dump(mode="json"))
        if seeds is not None:
            row_seeds = [seeds[i] for i in idxs]
            kwargs.update(logits_processor=LogitsProcessorList([
                RowSampler(row_seeds, params.temperature, params.top_p)]))
            key += (row_seeds,)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=prompts.tok)
        cached = cache.get(*key) if cache is not None else None
        if cached is not None:
            for i, g in zip(idxs, cached):
                results[i] = Generation.model_validate(g)
        else:
            out = model.generate(**kwargs)
            for r, i in enumerate(idxs):
                results[i] = finish(prompts.tok, out[r, width:].tolist(), params, eos, pad_id=pad_id)
            if cache is not None:
                cache.put([results[i].model_dump() for i in idxs], *key)  # type: ignore[union-attr]
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


__all__ = ["eos_ids", "finish", "generate_group", "group_by_params"]
