"""Continuous batching for generation: a decode loop in which a finished row leaves the batch
at once and queued prompts take the free slots.

Rows wait in a queue, longest prompt first. When at least a quarter of the ``batch_size``
slots are free (or the queue fits in what is free), the newcomers are prefilled together —
the opening they all share (a system prompt) once, then their own tokens as a left-padded
mini-batch — and their KV cache is merged into the running batch's: the shorter of
the two caches is left-padded along the sequence axis with masked positions, so every row's
last token stays in the last column. Leading columns that no remaining row attends to are
trimmed when rows leave. Position ids come from the attention mask (cumsum - 1), as
``model.generate`` computes them, so a row's logits do not depend on its neighbours.

Each row is decided as ``model.generate`` decides it: argmax of the last position's logits,
or for sampled requests one uniform draw per step from the row's own generator turned into a
token by ``sample_rows`` (what ``RowSampler`` does); a row ends at an end-of-sequence token,
at ``max_new_tokens``, or when transformers' ``StopStringCriteria`` fires on its tokens.
``finish`` turns its new tokens into the ``Generation``.

Only transformers' ``DynamicCache`` made of plain ``DynamicLayer``s can be merged and trimmed
this way; for any other model ``Unsupported`` is raised before a row is decided, and the
caller runs the static path instead.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.generation.stopping_criteria import StopStringCriteria

from audit.models._sampling import sample_rows
from audit.models._tensors import padded

log = logging.getLogger(__name__)

# Generation-config settings under which ``model.generate`` would change the logits or the
# search (each with its inactive values): the loop below applies none of them.
_INACTIVE: dict[str, tuple[Any, ...]] = {
    "repetition_penalty": (None, 1.0), "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0), "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,), "min_length": (None, 0), "min_new_tokens": (None, 0),
    "forced_bos_token_id": (None,), "forced_eos_token_id": (None,), "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,), "sequence_bias": (None,), "exponential_decay_length_penalty": (None,),
    "guidance_scale": (None, 1.0), "watermarking_config": (None,), "num_beams": (None, 1),
    "cache_implementation": (None, "dynamic"), "prompt_lookup_num_tokens": (None,),
    "remove_invalid_values": (None, False), "renormalize_logits": (None, False),
}


class Unsupported(Exception):
    """The model cannot run through the continuous loop; the message says why."""


def unsupported_reason(model: Any) -> str | None:
    """Why ``model`` cannot use the continuous loop (known before running it), or None."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder model"
    if "position_ids" not in inspect.signature(model.forward).parameters:
        return "forward() takes no position_ids"
    gen = getattr(model, "generation_config", None)
    for name, inactive in _INACTIVE.items():
        value = getattr(gen, name, None)
        if value not in inactive:
            return f"generation config sets {name}={value!r}"
    return None


class DecodeForward:
    """One forward pass with a KV cache returning only the last position's logits, across
    transformers versions (the cache argument's name; ``logits_to_keep`` where supported)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        args = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in args else "past_key_values"
        self._keep_arg = next((a for a in ("logits_to_keep", "num_logits_to_keep") if a in args), None)

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor,
                 cache: Any) -> tuple[torch.Tensor, Any]:
        """(float32 logits of the last position, [rows, vocab]; the KV cache extended by ``ids``).
        A mask without padding is left out, as ``model.generate`` leaves it out."""
        kw: dict[str, Any] = {self._cache_arg: cache} if cache is not None else {}
        if self._keep_arg:
            kw[self._keep_arg] = 1
        out = self.model(input_ids=ids, attention_mask=None if bool(mask.all()) else mask, position_ids=pos,
                         use_cache=True, **kw)
        return out.logits[:, -1, :].float(), getattr(out, self._cache_arg)


@dataclass
class Row:
    """One request in the loop: its prompt ids, its seed (sampling) and the tokens it chose."""

    index: int
    prompt: list[int]
    seed: int | None = None
    new: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None


@dataclass
class DecodeSettings:
    """What decides every row: the end-of-sequence ids, the token limit, the sampler's
    settings (None when greedy) and the stop strings with the tokenizer that reads them."""

    eos: list[int]
    max_new_tokens: int
    pad_id: int
    sampling: tuple[float, float] | None = None  # (temperature, top_p)
    stop: Sequence[str] = ()
    tokenizer: Any = None


class _Batch:
    """The running rows with their KV cache and its attention mask ([rows, columns])."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None

    def merge(self, rows: list[Row], cache: Any, mask: torch.Tensor) -> None:
        """Add prefilled rows: both caches left-padded to the wider one, rows concatenated."""
        if not self.rows:
            self.rows, self.cache, self.mask = list(rows), cache, mask
            return
        assert self.mask is not None
        width = max(self.mask.shape[1], mask.shape[1])
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_left_pad(old.keys, width), _left_pad(new.keys, width)])
            old.values = torch.cat([_left_pad(old.values, width), _left_pad(new.values, width)])
        self.mask = torch.cat([_left_pad(self.mask, width), _left_pad(mask, width)])
        self.rows += rows

    def keep(self, keep: list[int]) -> None:
        """Keep only the rows at ``keep``, then drop leading columns no row attends to."""
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.cache, self.mask = [], None, None
            return
        assert self.mask is not None
        self.rows = [self.rows[k] for k in keep]
        sel = torch.tensor(keep, device=self.mask.device)
        mask = self.mask[sel]
        start = int(mask.any(0).int().argmax())  # the first column some row attends to
        self.mask = mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[sel, :, start:]
            layer.values = layer.values[sel, :, start:]


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """``t`` (a mask [rows, n] or keys/values [rows, heads, n, dim]) zero-padded on the left
    of its sequence axis to ``width``."""
    axis = 1 if t.dim() == 2 else -2
    n = t.shape[axis]
    if n >= width:
        return t
    shape = list(t.shape)
    shape[axis] = width - n
    return torch.cat([t.new_zeros(shape), t], dim=axis)


def _check_cache(cache: Any) -> None:
    """Refuse any KV cache but a ``DynamicCache`` of plain, filled ``DynamicLayer``s."""
    if type(cache) is not DynamicCache:
        raise Unsupported(f"KV cache of type {type(cache).__name__}")
    for layer in cache.layers:
        if type(layer) is not DynamicLayer or not layer.is_initialized or layer.keys.dim() != 4:
            raise Unsupported(f"KV cache layer of type {type(layer).__name__}")
    if getattr(cache, "offloading", False):
        raise Unsupported("offloaded KV cache")


SHARED_MIN = 8  # a shared opening shorter than this is not worth a pass of its own


def shared_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every sequence shares, leaving each at least one of its own
    (whose logits predict the first new token)."""
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    for k in range(max(n, 0)):
        if any(s[k] != first[k] for s in seqs):
            return k
    return max(n, 0)


def by_opening(prompts: list[list[int]]) -> list[list[int]]:
    """Indices of ``prompts`` in groups that share an opening of at least ``SHARED_MIN`` tokens
    (prompts with and without a system prompt, or with two different ones, arrive together);
    the prompts that share none with another form one group of their own."""
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    groups: list[list[int]] = []
    loners: list[int] = []
    run = order[:1]
    for i in order[1:] + [-1]:
        if i >= 0 and shared_prefix_len([prompts[run[0]], prompts[i]]) >= SHARED_MIN:
            run.append(i)
            continue
        if len(run) > 1:
            groups.append(run)
        else:
            loners += run
        run = [i]
    return groups + ([sorted(loners)] if loners else [])


def prefill(forward: DecodeForward, prompts: list[list[int]], pad_id: int,
            device: Any) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """(last-position logits, KV cache, attention mask) of ``prompts`` run together. The
    opening they all share (a system prompt, a chat template's system turn) runs once, at one
    row, and its cache is repeated for every row; each prompt's remainder then runs
    left-padded after it, so a padded column may sit between the shared opening and a row's
    own tokens (masked; positions count real tokens only, as ``model.generate`` counts them).
    Raises ``Unsupported`` for a KV cache the loop cannot merge, before any row is decided."""
    shared = shared_prefix_len(prompts) if len(prompts) > 1 else 0
    if shared < SHARED_MIN:
        width = max(len(p) for p in prompts)
        ids, mask = padded(prompts, width, pad_id, device, left=True)
        pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        logits, cache = forward(ids, mask, pos, None)
        _check_cache(cache)
        return logits, cache, mask
    head = torch.tensor([prompts[0][:shared]], dtype=torch.long, device=device)
    _, cache = forward(head, torch.ones_like(head), torch.arange(shared, device=device)[None, :], None)
    _check_cache(cache)
    for layer in cache.layers:  # one copy of the opening per row
        layer.keys = layer.keys.expand(len(prompts), -1, -1, -1).contiguous()
        layer.values = layer.values.expand(len(prompts), -1, -1, -1).contiguous()
    rests = [p[shared:] for p in prompts]
    ids, rmask = padded(rests, max(len(r) for r in rests), pad_id, device, left=True)
    mask = torch.cat([rmask.new_ones((len(prompts), shared)), rmask], dim=1)
    pos = (shared + rmask.cumsum(-1) - 1).masked_fill(rmask == 0, 0)
    logits, cache = forward(ids, mask, pos, cache)
    return logits, cache, mask


def decode(forward: DecodeForward, queue: list[Row], settings: DecodeSettings, *, batch_size: int, device: Any,
           done: Callable[[Row], None]) -> int:
    """Run every row of ``queue`` (in that order) to its end, at most ``batch_size`` at once;
    ``done`` gets each row as soon as it ends. Returns the number of row-steps run (rows fed
    through the model, prefill rows included), which the tests compare with static batching."""
    s = settings
    stops = StopStringCriteria(s.tokenizer, list(s.stop)) if s.stop else None
    batch = _Batch()
    pending = list(queue)
    refill = max(1, batch_size // 4)
    row_steps = 0

    def decide(logits: torch.Tensor, rows: list[Row]) -> list[int]:
        """Each row's next token appended; the positions of the rows still running."""
        if s.sampling is None:
            choice = logits.argmax(-1)
        else:
            u = torch.cat([torch.rand(1, generator=r.generator, dtype=torch.float64) for r in rows])
            choice = sample_rows(logits, u.to(logits.device), *s.sampling)
        for r, t in zip(rows, choice.tolist()):
            r.new.append(int(t))
        ended = [r.new[-1] in s.eos or len(r.new) >= s.max_new_tokens for r in rows]
        if stops is not None:
            width = stops.maximum_token_len
            tails = [(r.prompt + r.new)[-width:] for r in rows]
            ids, _ = padded(tails, max(len(t) for t in tails), s.pad_id, device, left=True)
            ended = [e or bool(hit) for e, hit in zip(ended, stops(ids, None).tolist())]
        keep = []
        for k, (r, end) in enumerate(zip(rows, ended)):
            if end:
                done(r)
            else:
                keep.append(k)
        return keep

    while pending or batch.rows:
        free = batch_size - len(batch.rows)
        if pending and (not batch.rows or free >= min(refill, len(pending))):
            arrivals, pending = pending[:free], pending[free:]
            for r in arrivals:
                if s.sampling is not None and r.seed is not None:
                    r.generator = torch.Generator(device="cpu").manual_seed(r.seed)
            for group in by_opening([r.prompt for r in arrivals]):
                newcomers = [arrivals[k] for k in group]
                logits, cache, mask = prefill(forward, [r.prompt for r in newcomers], s.pad_id, device)
                row_steps += len(newcomers)
                keep = decide(logits, newcomers)
                if keep:
                    if len(keep) < len(newcomers):
                        sel = torch.tensor(keep, device=mask.device)
                        for layer in cache.layers:
                            layer.keys, layer.values = layer.keys[sel], layer.values[sel]
                        mask = mask[sel]
                    batch.merge([newcomers[k] for k in keep], cache, mask)
            continue  # refill again (a newcomer may have ended at once) before decoding
        assert batch.mask is not None
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.rows), 1))], dim=1)
        ids = torch.tensor([[r.new[-1]] for r in batch.rows], dtype=torch.long, device=device)
        # generate's positions: the last one + 1 (an empty prompt's first token sat at 0, not -1).
        pos = torch.tensor([[len(r.prompt) + len(r.new) - 1 + (not r.prompt)] for r in batch.rows], device=device)
        logits, batch.cache = forward(ids, batch.mask, pos, batch.cache)
        row_steps += len(batch.rows)
        batch.keep(decide(logits, batch.rows))
    return row_steps


__all__ = ["DecodeForward", "DecodeSettings", "Row", "Unsupported", "by_opening", "decode", "prefill", "shared_prefix_len",
           "unsupported_reason"]
