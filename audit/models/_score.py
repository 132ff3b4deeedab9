"""Scoring one log-likelihood batch in up to three forward passes, each token run once.

The prefix every context in the batch shares (a chat template's system turn) runs once at
batch size one; each context's remainder runs once, left-padded, with the shared prefix's
KV cache copied to its row; every continuation runs once with its context's cache copied to
its row, in chunks of similar length so that right-padding wastes little compute.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from audit.errors import RuntimeFailure
from audit.models._loglik import Batch
from audit.models._tensors import common_prefix_len, length_chunks, padded, select_rows
from probes.model import LoglikResult


class ForwardPass:
    """One forward pass of a causal LM with a KV cache, across transformers versions."""

    def __init__(self, model: Any) -> None:
        self.model = model
        # transformers 5.x renamed the KV-cache argument and output field to `cache`.
        forward_args = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        self._keep_arg = next((a for a in ("logits_to_keep", "num_logits_to_keep") if a in forward_args), None)

    def __call__(
        self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any, *, logits: bool = True
    ) -> tuple[torch.Tensor, Any]:
        """(logits, the KV cache extended by ``ids``). Without ``logits`` only the cache is
        wanted, so the output layer runs on the last position alone where the model allows
        it (the vocabulary projection is a fifth of a small model's compute)."""
        kw: dict[str, Any] = {self._cache_arg: cache} if cache is not None else {}
        if not logits and self._keep_arg:
            kw[self._keep_arg] = 1
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **kw)
        return out.logits, getattr(out, self._cache_arg)


@torch.inference_mode()
def score_batch(batch: Batch, forward: ForwardPass, *, pad_id: int, device: Any,
                model_id: str) -> list[tuple[int, LoglikResult]]:
    """(request index, result) for every continuation in ``batch``. The last context token is
    fed with the continuation so that its logits predict the continuation's first token."""
    dev = device
    prefixes = [list(ctx[:-1]) for ctx, _ in batch]
    shared = common_prefix_len(prefixes)  # all of it when the batch has one context
    rests = [p[shared:] for p in prefixes]
    row_group: list[int] = []
    row_inputs: list[list[int]] = []
    row_targets: list[list[int]] = []
    row_req: list[int] = []
    for g, (ctx, conts) in enumerate(batch):
        for req_idx, cont in conts:
            row_group.append(g)
            row_inputs.append([ctx[-1]] + cont[:-1])
            row_targets.append(cont)
            row_req.append(req_idx)

    cache = None
    mask = torch.zeros((1, 0), dtype=torch.long, device=dev)  # attention mask of what is cached
    if shared:
        ids = torch.tensor([prefixes[0][:shared]], dtype=torch.long, device=dev)
        mask = torch.ones_like(ids)
        _, cache = forward(ids, mask, torch.arange(shared, device=dev)[None, :], None, logits=False)
    rlen = max(len(r) for r in rests)
    if rlen:
        # Context remainders, left-padded so each context's tokens end where its continuations begin.
        ids, rmask = padded(rests, rlen, pad_id, dev, left=True)
        if cache is not None and len(batch) > 1:
            cache.batch_select_indices(torch.zeros(len(batch), dtype=torch.long, device=dev))
        mask = torch.cat([mask.expand(len(batch), -1), rmask], dim=1)
        pos = shared + (rmask.cumsum(-1) - 1).clamp(min=0)
        _, cache = forward(ids, mask, pos, cache, logits=False)
    # Continuations longest first, in chunks of similar length: rows are right-padded
    # to their chunk's longest, so chunking keeps the padding (wasted compute) small.
    owner = [g if rlen else 0 for g in row_group]  # the cache row each continuation extends
    order = sorted(range(len(row_inputs)), key=lambda r: -len(row_inputs[r]))
    chunks = length_chunks([len(row_inputs[r]) for r in order])
    results: list[LoglikResult | None] = [None] * len(row_inputs)
    start = 0
    for n, size in enumerate(chunks):
        rows = order[start : start + size]
        start += size
        sel = torch.tensor([owner[r] for r in rows], device=dev)
        if cache is None:
            chunk_cache, chunk_mask = None, mask.expand(size, -1)
        else:
            last = n == len(chunks) - 1  # the last chunk may consume the cache itself
            chunk_cache = select_rows(cache, sel, in_place=last)
            chunk_mask = mask[sel]
        width = len(row_inputs[rows[0]])
        ids, row_mask = padded([row_inputs[r] for r in rows], width, pad_id, dev, left=False)
        pos = chunk_mask.sum(-1)[:, None] + torch.arange(width, device=dev)[None, :]
        logits, _ = forward(ids, torch.cat([chunk_mask, row_mask], dim=1), pos, chunk_cache)
        del chunk_cache
        # Only real positions: log p(target) = logit[target] - logsumexp(logits).
        flat = logits[row_mask.bool()].float()
        targets = torch.tensor([t for r in rows for t in row_targets[r]], device=dev)
        lp = flat.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(flat, dim=-1)
        hit = flat.argmax(-1) == targets
        lp, hit = lp.cpu(), hit.cpu()  # one device-to-host copy per chunk, not one per row
        offset = 0
        for r in rows:
            k = len(row_targets[r])
            seg = lp[offset : offset + k]
            if not torch.isfinite(seg).all():
                raise RuntimeFailure(f"non-finite log-probability for request {row_req[r]} (model {model_id})")
            greedy = bool(hit[offset : offset + k].all())
            results[r] = LoglikResult(logprob=float(seg.sum()), n_tokens=k, is_greedy=greedy)
            offset += k
    return [(row_req[r], res) for r, res in enumerate(results) if res is not None]


__all__ = ["ForwardPass", "score_batch"]
