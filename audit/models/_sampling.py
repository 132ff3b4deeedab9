"""Sampled generation that does not depend on the batch: every request draws from its own
random stream, seeded by the run's seed and the request itself.

A seed per batch (or one global generator) makes a sample depend on which rows share its
batch, and the batch size comes from free memory and halves on out-of-memory: the same
``--seed`` would give other samples on another machine. Here a request's stream is seeded
by ``request_seed`` (the seed, the prompt, the parameters, and the request's place among
identical prompts in one call, so that k samples of one prompt differ), and each decoding
step draws exactly one uniform number from it, on the CPU (the same stream on any device).
``RowSampler`` turns that number into a token by inverse-CDF sampling; ``model.generate``
then runs greedy over its one-token output, so transformers' own decoding loop, KV cache,
end-of-sequence and stop-string handling are used unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from probes.model import GenerationParams, Prompt


def prompt_identity(prompt: Prompt) -> Any:
    """The prompt as JSON: its text, or its messages as [role, content] pairs."""
    return prompt if isinstance(prompt, str) else [[m.role, m.content] for m in prompt]


def request_seed(prompt: Prompt, params: GenerationParams, occurrence: int) -> int:
    """A 63-bit seed from the run seed (in ``params``), the prompt, the other parameters and
    ``occurrence`` (how many identical prompts with these parameters came before it in the call)."""
    blob = json.dumps([params.model_dump(mode="json"), prompt_identity(prompt), occurrence],
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big") >> 1


def request_seeds(prompts: Sequence[Prompt], params: GenerationParams) -> list[int]:
    """``request_seed`` for each prompt of one call, all with ``params``, in order."""
    seen: Counter[str] = Counter()
    seeds = []
    for p in prompts:
        ident = json.dumps(prompt_identity(p), ensure_ascii=False)
        seeds.append(request_seed(p, params, seen[ident]))
        seen[ident] += 1
    return seeds


class RowSampler(LogitsProcessor):
    """Samples each row's next token with that row's own generator (temperature, then top-p,
    as transformers' sampling does) and returns scores that put the chosen token alone at the
    top, so that greedy decoding takes it. One draw per row per step, whatever the batch."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature {temperature}: sampling needs a temperature above 0")
        self._generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        self._temperature = temperature
        self._top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self._generators):
            raise RuntimeError(f"RowSampler: {scores.shape[0]} rows but {len(self._generators)} seeds")
        u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in self._generators])
        choice = sample_rows(scores, u.to(scores.device), self._temperature, self._top_p)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, choice[:, None], 0.0)  # type: ignore[return-value]


def sample_rows(scores: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The token each row samples given its uniform draw ``u`` in [0, 1): inverse CDF over the
    vocabulary in token order (a tiny change in the logits moves a sample only when ``u`` lies
    at a boundary), after temperature and the top-p cut."""
    probs = torch.softmax(scores.float() / temperature, dim=-1)
    if top_p < 1.0:
        # Keep the most probable tokens until their mass reaches top_p (at least one).
        sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
        drop_sorted = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        drop_sorted[..., 0] = False
        probs = probs.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), 0.0)
    cdf = probs.cumsum(-1)
    target = (u.to(cdf.dtype) * cdf[:, -1])[:, None]
    # The first token whose cumulative mass exceeds the target: never one with no mass.
    picked = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    # u close to 1 may round the target up to the total: take the last token with mass.
    last = probs.shape[-1] - 1 - (probs.flip(-1) > 0).int().argmax(-1)
    return torch.where(picked > last, last, picked)


__all__ = ["RowSampler", "prompt_identity", "request_seed", "request_seeds", "sample_rows"]
