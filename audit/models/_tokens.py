"""Every token's log-probability of plain texts: one forward pass per text, texts batched.

A text is tokenised as ``LoglikRequest(context="", continuation=text)`` is (the sequence-start
token, then the text's tokens), so the values of one text sum to that request's ``logprob``.
Texts are packed longest first into batches within the row and token budgets (the token budget
already counts a float32 logits row per token: ``_memory.token_bytes``), right-padded. A computed
batch is stored in the run's cache under its exact token rows.
"""

from __future__ import annotations

from typing import Any

import torch

from audit.cache import BatchCache
from audit.errors import RuntimeFailure
from audit.models._prompts import PromptEncoder
from audit.models._score import ForwardPass
from audit.models._tensors import padded
from probes.model import ProgressFn


def encode_texts(texts: list[str], prompts: PromptEncoder) -> list[tuple[list[int], int]]:
    """(token ids with the sequence-start token first, how many leading ids are that context) per text."""
    start = prompts.encode_context("")
    return [(list(start.ids) + prompts.split(start, t), len(start.ids)) if t else (list(start.ids), len(start.ids))
            for t in texts]


def pack_rows(lengths: list[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Row indices per batch, longest first, at most ``batch_size`` rows and ``max_batch_tokens``
    padded tokens (a row longer than the budget gets a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            current = batches[-1]
            width = lengths[current[0]]  # the longest, first in its batch
            if len(current) < batch_size and (len(current) + 1) * width <= max_batch_tokens:
                current.append(i)
                continue
        batches.append([i])
    return batches


@torch.inference_mode()
def _score_rows(rows: list[tuple[list[int], int]], forward: ForwardPass, *, pad_id: int, device: Any,
                model_id: str) -> list[list[float]]:
    width = max(len(ids) for ids, _ in rows)
    ids, mask = padded([r for r, _ in rows], width, pad_id, device, left=False)
    pos = torch.arange(width, device=device)[None, :].expand(len(rows), -1)
    logits, _ = forward(ids, mask, pos, None)
    out: list[list[float]] = []
    for k, (row, skip) in enumerate(rows):
        if len(row) <= skip:
            out.append([])
            continue
        # Position p predicts token p + 1: the text's tokens are predicted from position skip - 1 on.
        lg = logits[k, skip - 1 : len(row) - 1].float()
        targets = torch.tensor(row[skip:], device=device)
        lp = (lg.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(lg, dim=-1)).cpu()
        if not torch.isfinite(lp).all():
            raise RuntimeFailure(f"non-finite token log-probability (model {model_id})")
        out.append([float(x) for x in lp])
    return out


def token_logprobs(texts: list[str], prompts: PromptEncoder, forward: ForwardPass, *, batch_size: int,
                   max_batch_tokens: int, pad_id: int, device: Any, model_id: str, progress: ProgressFn | None,
                   cache: BatchCache | None) -> list[list[float]]:
    """One list of token log-probabilities per text, in order; an empty text has none."""
    encoded = encode_texts(texts, prompts)
    results: list[list[float] | None] = [None] * len(texts)
    for batch in pack_rows([len(ids) for ids, _ in encoded], batch_size, max_batch_tokens):
        rows = [encoded[i] for i in batch]
        key = ("token_logprobs", [[ids, skip] for ids, skip in rows])
        hit = cache.get(*key) if cache is not None else None
        if hit is None:
            hit = _score_rows(rows, forward, pad_id=pad_id, device=device, model_id=model_id)
            if cache is not None:
                cache.put(hit, *key)
        for i, values in zip(batch, hit):
            results[i] = list(values)
        if progress:
            progress(len(batch))
    return [r if r is not None else [] for r in results]


__all__ = ["encode_texts", "pack_rows", "token_logprobs"]
