"""Batch sizes from the model's shape and the memory free on its device.

A forward pass holds, per token: the KV cache (two tensors per layer), one layer's
activations at a time, and, where log-probabilities are read, a row of vocabulary logits
(upcast to float32 for the log-sum-exp). The plan spends half of the free memory on these;
the rest is headroom for the allocator and whatever else runs on the machine. Estimates
are deliberately rough; out-of-memory back-off in the backend catches what they miss.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

MEMORY_SHARE = 0.5  # of the free memory, for activations, KV cache and logits
ROW_TOKENS = 1024  # tokens a generation row is assumed to hold (prompt + new tokens)
CUDA_MAX_ROWS = 256  # more rows than this no longer speed a GPU up (a power of two)
LOGLIK_MAX_TOKENS = 65536  # a larger log-likelihood pass gains nothing (a power of two)


@dataclass(frozen=True)
class BatchPlan:
    batch_size: int  # rows per forward pass
    max_batch_tokens: int  # padded tokens per log-likelihood pass
    reason: str  # for the report's model notes


def free_memory_bytes(device: str) -> int | None:
    """Bytes free for tensors on ``device``: the CUDA allocator's view, or the host's
    available memory (MemAvailable) for the CPU. None when it cannot be read."""
    if device.startswith("cuda"):
        try:
            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _shape(config: Any) -> tuple[int, int, int, int, int]:
    """(layers, KV width per layer, hidden size, MLP width, vocabulary) from a transformers config."""
    layers = int(getattr(config, "num_hidden_layers", 0) or 12)
    hidden = int(getattr(config, "hidden_size", 0) or 768)
    heads = int(getattr(config, "num_attention_heads", 0) or 12)
    kv_heads = int(getattr(config, "num_key_value_heads", 0) or heads)
    head_dim = int(getattr(config, "head_dim", 0) or hidden // max(heads, 1))
    mlp = int(getattr(config, "intermediate_size", 0) or getattr(config, "n_inner", 0) or 4 * hidden)
    vocab = int(getattr(config, "vocab_size", 0) or 32000)
    return layers, kv_heads * head_dim, hidden, mlp, vocab


def token_bytes(config: Any, dtype: torch.dtype) -> tuple[int, int]:
    """(bytes per token without logits, bytes per token with a float32 logits row)."""
    layers, kv_width, hidden, mlp, vocab = _shape(config)
    width = torch.empty((), dtype=dtype).element_size()
    kv = 2 * layers * kv_width * width
    activations = (6 * hidden + 3 * mlp) * width  # one layer's working set, residual stream included
    logits = vocab * (width + 2 * 4)  # the logits, their float32 copy, and the log-sum-exp temporaries
    return kv + activations, kv + activations + logits


def size_rule(n_parameters: int) -> int:
    """Rows per pass that keep a CPU busy without wasting work: larger batches amortise
    per-step overhead (on the 2-core development CPU, 135M parameters generate 118 tokens/s
    at 16 rows, 264 at 64, and with continuous batching 210 → 238 → 241 tokens/s at 64 →
    128 → 256 rows on short prompts), but a CPU is compute-bound well before memory runs out."""
    if n_parameters <= 500_000_000:
        return 128
    if n_parameters <= 3_000_000_000:
        return 16
    return 4


def plan_batches(config: Any, n_parameters: int, dtype: torch.dtype, device: str,
                 free_bytes: int | None = None) -> BatchPlan:
    """Rows and log-likelihood tokens per pass for this model on this device.

    The memory bound: half the free memory over the per-token cost (generation rows are
    assumed to hold ``ROW_TOKENS`` tokens). On a GPU the rows come from memory alone (up to
    ``CUDA_MAX_ROWS``); on a CPU the size rule caps them.
    """
    free = free_memory_bytes(device) if free_bytes is None else free_bytes
    plain, with_logits = token_bytes(config, dtype)
    cap = CUDA_MAX_ROWS if device.startswith("cuda") else size_rule(n_parameters)
    if free is None:
        return BatchPlan(cap if not device.startswith("cuda") else 16, 16384,
                         "free memory unknown: size rule and a 16384-token log-likelihood budget")
    budget = int(free * MEMORY_SHARE)
    # Powers of two, so that small changes in free memory do not change the plan (nor, with
    # it, the batches a resumed run looks up in its cache).
    rows = _floor_pow2(max(1, min(cap, budget // (plain * ROW_TOKENS))))
    tokens = _floor_pow2(max(256, min(LOGLIK_MAX_TOKENS, budget // with_logits)))
    log.info("%.1f GiB free on %s; ~%d KiB per cached token, ~%d KiB with logits", free / 2**30, device,
             plain // 1024, with_logits // 1024)
    reason = f"batch size {rows} and {tokens} tokens per log-likelihood pass, planned from the memory free on {device}"
    return BatchPlan(rows, tokens, reason)


def _floor_pow2(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


__all__ = ["BatchPlan", "free_memory_bytes", "plan_batches", "size_rule", "token_bytes"]
