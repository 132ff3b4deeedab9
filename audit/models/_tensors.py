"""Tensor helpers for batching token sequences: shared prefixes, length chunks, padding and
KV-cache row selection. Pure functions of their inputs; the backend composes them."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every sequence shares (all of it for a single sequence)."""
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for k in range(n):
        if any(s[k] != first[k] for s in seqs):
            return k
    return n


def length_chunks(lengths: Sequence[int], ratio: float = 0.75, min_rows: int = 4) -> list[int]:
    """Split lengths sorted longest first into runs whose shortest is at least ``ratio`` of
    their longest (runs of fewer than ``min_rows`` grow instead: a pass has a fixed cost)."""
    sizes: list[int] = []
    width = 0
    for n in lengths:
        if sizes and (n >= ratio * width or sizes[-1] < min_rows):
            sizes[-1] += 1
        else:
            sizes.append(1)
            width = n
    return sizes


def padded(seqs: Sequence[Sequence[int]], width: int, pad_id: int, device: Any, *,
           left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of ``seqs`` padded to ``width``, built on the host and moved once."""
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for k, seq in enumerate(seqs):
        if seq:
            cols = slice(width - len(seq), width) if left else slice(0, len(seq))
            ids[k, cols] = torch.tensor(seq, dtype=torch.long)
            mask[k, cols] = 1
    return ids.to(device), mask.to(device)


def select_rows(cache: Any, rows: torch.Tensor, *, in_place: bool) -> Any:
    """The KV cache with its batch rows picked by ``rows`` (repeats allowed). Unless
    ``in_place``, the original is left intact for the next selection."""
    if not in_place:
        if hasattr(cache, "layers"):  # transformers 5: layers re-bind their tensors when selecting
            clone = copy.copy(cache)
            clone.layers = [copy.copy(layer) for layer in cache.layers]
            cache = clone
        else:
            cache = copy.deepcopy(cache)
    cache.batch_select_indices(rows)
    return cache


__all__ = ["common_prefix_len", "length_chunks", "padded", "select_rows"]
