"""Padding token sequences into a batch, built on the host and moved to the device once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


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


__all__ = ["padded"]
