"""Scoring one log-likelihood batch in one forward pass, each shared token run once.

The batch's requests are planted in token trees (``_tree``): a context shared by several
continuations, the system turn every chat context shares and the common opening of two
sentences are each one set of positions, which the requests branching from them attend to
through a 4-D attention mask; position ids are tree depths. No KV cache is built or copied,
and the vocabulary projection runs only where a continuation token is predicted.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from audit.errors import RuntimeFailure
from audit.models._loglik import Batch
from audit.models._tree import plant
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

    def additive_mask(self, see: torch.Tensor) -> torch.Tensor:
        """A boolean (rows, 1, q, k) visibility as the additive float mask every attention
        implementation takes (0 where visible, the dtype's minimum elsewhere)."""
        dtype = self.model.dtype
        return torch.zeros(see.shape, dtype=dtype, device=see.device).masked_fill_(~see, torch.finfo(dtype).min)

    def select(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, rows: torch.Tensor,
               cols: torch.Tensor) -> torch.Tensor:
        """Logits (n, vocab) at positions (``rows``, ``cols``) of one forward pass with a 4-D
        ``mask``, no KV cache kept. The output layer sees only those positions (a hook on it
        picks them from the hidden states), so its vocabulary projection — the costliest
        layer of a small model — and any logit post-processing run on them alone."""
        head = self.model.get_output_embeddings()
        picked: list[bool] = []

        def pick(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            picked.append(True)
            return (args[0][rows, cols][None], *args[1:])

        handle = head.register_forward_pre_hook(pick) if head is not None else None
        try:
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
        finally:
            if handle is not None:
                handle.remove()
        logits = out.logits
        if picked and logits.shape[:2] == (1, len(rows)):
            return logits[0]
        return logits[rows, cols]  # an output layer called otherwise: pick from the full logits


ROW_TOKENS = 128  # positions per tree row: attention grows with its width; measured best of 96/128/256/512 on CPU


@torch.inference_mode()
def score_batch(batch: Batch, forward: ForwardPass, *, pad_id: int, device: Any, model_id: str,
                row_tokens: int | None = None) -> list[tuple[int, LoglikResult]]:
    """(request index, result) for every continuation in ``batch``, in one forward pass: the
    batch's requests are planted in token trees (``_tree``) of about ``row_tokens`` positions
    (default ``ROW_TOKENS``), padded to the longest,
    every shared prefix computed once, and the vocabulary projection runs only on the
    positions that predict a continuation token."""
    requests = [(req, list(ctx), cont) for ctx, conts in batch for req, cont in conts]
    trees, scored = plant(requests, row_tokens or ROW_TOKENS)
    width = max(len(t) for t in trees)
    ids = torch.full((len(trees), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(trees), width), dtype=torch.long)
    see = np.zeros((len(trees), 1, width, width), dtype=bool)
    for r, tree in enumerate(trees):
        ids[r, : len(tree)] = torch.tensor(tree.tokens, dtype=torch.long)
        pos[r, : len(tree)] = torch.tensor(tree.depth, dtype=torch.long)
        see[r, 0] = tree.visibility(width)
    rows = torch.tensor([s.row for s in scored for _ in s.positions], dtype=torch.long)
    cols = torch.tensor([p for s in scored for p in s.positions], dtype=torch.long)
    targets = torch.tensor([t for s in scored for t in s.targets], dtype=torch.long, device=device)
    logits = forward.select(ids.to(device), forward.additive_mask(torch.from_numpy(see).to(device)),
                            pos.to(device), rows.to(device), cols.to(device))
    lp, hit = target_logprobs(logits, targets)
    lp, hit = lp.cpu(), hit.cpu()  # one device-to-host copy per batch, not one per request
    out: list[tuple[int, LoglikResult]] = []
    offset = 0
    for s in scored:
        k = len(s.targets)
        seg = lp[offset : offset + k]
        if not torch.isfinite(seg).all():
            raise RuntimeFailure(f"non-finite log-probability for request {s.req} (model {model_id})")
        out.append((s.req, LoglikResult(logprob=float(seg.sum()), n_tokens=k,
                                        is_greedy=bool(hit[offset : offset + k].all()))))
        offset += k
    return out


def target_logprobs(logits: torch.Tensor, targets: torch.Tensor, rows: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(target), whether the target is the argmax) per position: logit[target] minus the
    log-sum-exp, in float32, ``rows`` positions at a time — a vocabulary-wide temporary that
    stays in the CPU's cache runs about twice as fast as one the size of the whole batch."""
    lps, hits = [], []
    for s in range(0, len(targets), rows):
        chunk, tgt = logits[s : s + rows].float(), targets[s : s + rows]
        lps.append(chunk.gather(-1, tgt[:, None]).squeeze(-1) - torch.logsumexp(chunk, dim=-1))
        hits.append(chunk.argmax(-1) == tgt)
    return torch.cat(lps), torch.cat(hits)


__all__ = ["ForwardPass", "score_batch", "target_logprobs"]
