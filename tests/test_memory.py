"""Batch planning from the model's shape and free memory."""

import torch
from transformers import GPT2Config, LlamaConfig

from audit.models._memory import free_memory_bytes, plan_batches, token_bytes

GiB = 2**30


def llama(**kw) -> LlamaConfig:
    base = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                num_key_value_heads=3, vocab_size=49152)
    return LlamaConfig(**{**base, **kw})


def test_token_bytes_follow_the_shape() -> None:
    plain, with_logits = token_bytes(llama(), torch.float32)
    assert plain >= 2 * 30 * 3 * 64 * 4  # at least the KV cache: 2 x layers x kv heads x head dim x 4 bytes
    assert with_logits - plain >= 49152 * 4  # a float32 logits row
    half, _ = token_bytes(llama(), torch.bfloat16)
    assert half * 2 == plain
    # grouped-query attention caches fewer heads
    assert token_bytes(llama(num_key_value_heads=9), torch.float32)[0] > plain
    # GPT-2 names its sizes differently; the config maps them
    assert token_bytes(GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=500), torch.float32)[0] > 0


def test_plenty_of_memory_keeps_the_cpu_size_rule() -> None:
    plan = plan_batches(llama(), 135_000_000, torch.float32, "cpu", free_bytes=40 * GiB)
    assert plan.batch_size == 128
    assert plan.max_batch_tokens >= 8192
    assert "memory free on cpu" in plan.reason
    # powers of two: a little more or less free memory gives the same plan
    assert plan == plan_batches(llama(), 135_000_000, torch.float32, "cpu", free_bytes=38 * GiB)
    assert plan.max_batch_tokens & (plan.max_batch_tokens - 1) == 0
    assert plan_batches(llama(), 7_000_000_000, torch.float32, "cpu", free_bytes=64 * GiB).batch_size == 4


def test_little_memory_shrinks_the_batch_and_token_budget() -> None:
    roomy = plan_batches(llama(), 135_000_000, torch.float32, "cpu", free_bytes=20 * GiB)
    tight = plan_batches(llama(), 135_000_000, torch.float32, "cpu", free_bytes=GiB // 2)
    assert tight.batch_size < roomy.batch_size
    assert tight.max_batch_tokens < roomy.max_batch_tokens
    plain, with_logits = token_bytes(llama(), torch.float32)
    assert tight.batch_size * plain * 1024 <= GiB // 4 or tight.batch_size == 1
    assert tight.max_batch_tokens * with_logits <= GiB // 4 or tight.max_batch_tokens == 256
    starved = plan_batches(llama(), 135_000_000, torch.float32, "cpu", free_bytes=1024)
    assert starved.batch_size == 1 and starved.max_batch_tokens == 256  # never below one row


def test_gpu_rows_come_from_memory_not_the_size_rule() -> None:
    big = llama(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=128256)
    plan = plan_batches(big, 8_000_000_000, torch.bfloat16, "cuda", free_bytes=60 * GiB)
    assert 16 < plan.batch_size <= 256  # the CPU rule would give 4
    assert plan_batches(big, 8_000_000_000, torch.bfloat16, "cuda", free_bytes=2 * GiB).batch_size < plan.batch_size


def test_unknown_free_memory_falls_back_to_the_size_rule(monkeypatch) -> None:
    import audit.models._memory as memory

    monkeypatch.setattr(memory, "free_memory_bytes", lambda device: None)
    plan = plan_batches(llama(), 135_000_000, torch.float32, "cpu")
    assert (plan.batch_size, plan.max_batch_tokens) == (128, 16384)
    assert "unknown" in plan.reason


def test_free_memory_is_read_on_this_machine() -> None:
    free = free_memory_bytes("cpu")
    assert free is not None and free > 0
    if not torch.cuda.is_available():
        assert free_memory_bytes("cuda") is None
    else:  # pragma: no cover - GPU machines
        assert free_memory_bytes("cuda") > 0
