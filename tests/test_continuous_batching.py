"""Continuous batching (audit/models/_continuous.py) against the static path it replaces: the
same generations, greedy and sampled, at every batch size; rows that end leave the batch;
each request is cached as it ends."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from audit.cache import BatchCache, ResultCache
from audit.models import _continuous
from audit.models._generate import generate_group, generate_static
from audit.models._hf import HFBackend
from probes.model import Generation, GenerationParams
from tests.conftest import make_model, train

# Prompts of many lengths: some end early (the model learnt to end sentences), some run to the limit.
PROMPTS = ["The cat", "A doctor watched", "Q: Is ice cold?\nA:", "My neighbour repaired the", "The",
           "An engineer measured a wooden table.", "The small boat crossed the north road and",
           "Q: Do fish swim?\nA: Yes,", "Our teacher", "The city council visited the market square", "A",
           "The old bridge", "A student painted", "The museum described the morning train", "Numbers 0123",
           "The river crossed the blue house. The river", "A farmer built an empty field", "Yes, I am"] * 4


@pytest.fixture(scope="module")
def trained(tiny_tokenizer):  # type: ignore[no-untyped-def]
    """A tiny Llama trained on short sentences that end with EOS: some generations end early."""
    texts = [f"{s} {v} {o}." for s in ["The cat", "A doctor", "My neighbour", "The river", "A student"]
             for v in ["watched", "built", "crossed"] for o in ["the garden", "a wooden table", "the north road"]]
    return train(make_model(tiny_tokenizer, seed=1), tiny_tokenizer, texts, steps=10)


@pytest.fixture(scope="module")
def gpt2(tiny_tokenizer):  # type: ignore[no-untyped-def]
    """A tiny random GPT-2 (absolute positions) that also ends at "." (several EOS ids)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    config = GPT2Config(vocab_size=len(tiny_tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=256,
                        bos_token_id=tiny_tokenizer.bos_token_id, eos_token_id=tiny_tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config).eval()
    model.generation_config.eos_token_id = [tiny_tokenizer.eos_token_id, *tiny_tokenizer(".")["input_ids"]]
    return model


def _run(path: Any, backend: HFBackend, prompts: list[str], params: GenerationParams, batch_size: int,
         cache: BatchCache | None = None, progress: Any = None) -> list[Generation]:
    """``path`` (generate_static or generate_group) on ``prompts``; the continuous path must not
    fall back to ``model.generate``."""
    if path is generate_group:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(backend.model, "generate", _no_generate)
            return generate_group(backend.model, backend.prompts, prompts, params, batch_size=batch_size,
                                  pad_id=backend.pad_id, device=backend.device, progress=progress, cache=cache)
    return path(backend.model, backend.prompts, prompts, params, batch_size=batch_size, pad_id=backend.pad_id,
                device=backend.device, progress=progress, cache=cache)


def _no_generate(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the continuous path called model.generate")


def _dumped(gens: list[Generation]) -> list[dict[str, Any]]:
    return [g.model_dump() for g in gens]


@pytest.mark.parametrize("which", ["llama", "gpt2"])
def test_greedy_equals_static_at_every_batch_size(which: str, trained, gpt2, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    backend = HFBackend(trained if which == "llama" else gpt2, tiny_tokenizer, model_id="tiny",
                        use_chat_template=False)
    assert _continuous.unsupported_reason(backend.model) is None  # both go through the continuous loop
    params = GenerationParams(max_new_tokens=8)
    want = _dumped(_run(generate_static, backend, PROMPTS, params, batch_size=8))
    reasons = {g["finish_reason"] for g in want}
    assert {"eos", "length"} <= reasons, reasons  # not vacuous: rows end early and at the limit
    for bs in (1, 3, 16, 64):
        assert _dumped(_run(generate_group, backend, PROMPTS, params, batch_size=bs)) == want, bs
    # A one-token limit too: every row ends in its prefill.
    short = GenerationParams(max_new_tokens=1)
    assert (_dumped(_run(generate_group, backend, PROMPTS, short, batch_size=5))
            == _dumped(_run(generate_static, backend, PROMPTS, short, batch_size=5)))


@pytest.mark.parametrize("which", ["llama", "gpt2"])
def test_a_shared_system_prompt_runs_once_per_prefill(which: str, trained, gpt2, tiny_tokenizer,  # type: ignore[no-untyped-def]
                                                      monkeypatch) -> None:
    """Prompts that open with one long system prompt (as the mitigation probe and --system-prompt
    send them): the opening runs once per prefill, at one row; the generations, greedy and
    sampled, equal the static path's at every batch size."""
    backend = HFBackend(trained if which == "llama" else gpt2, tiny_tokenizer, model_id="tiny",
                        use_chat_template=False)
    system = "You are a careful assistant. The river crossed the blue house and the garden. "
    prompts = [system + p for p in PROMPTS[:18]] + PROMPTS[18:24]  # most share it, a few do not
    opening = len(backend.encode_prompt(system)) - 2
    assert opening >= _continuous.SHARED_MIN
    for params in (GenerationParams(max_new_tokens=8), GenerationParams(max_new_tokens=6, temperature=0.9, seed=4)):
        want = _dumped(_run(generate_static, backend, prompts, params, batch_size=8))
        for bs in (1, 3, 16, 64):
            shapes: list[tuple[int, int]] = []
            forward = backend.model.forward

            @functools.wraps(forward)
            def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
                shapes.append(tuple(kwargs["input_ids"].shape))
                return forward(*args, **kwargs)

            monkeypatch.setattr(backend.model, "forward", spy)
            assert _dumped(_run(generate_group, backend, prompts, params, batch_size=bs)) == want, (bs, params)
            monkeypatch.undo()
            if bs > 1:  # the opening alone, at one row, at least once
                assert any(rows == 1 and width >= opening for rows, width in shapes), shapes
    # what is fed: far fewer prompt positions than running every prompt whole
    ids = [backend.encode_prompt(p) for p in prompts[:18]]
    logits, cache, mask = _continuous.prefill(_continuous.DecodeForward(backend.model), ids, backend.pad_id,
                                              backend.device)
    assert logits.shape[0] == 18 and mask.shape == (18, max(map(len, ids)))
    assert int(mask.sum()) == sum(map(len, ids))


def test_stop_strings_end_rows_as_generate_does(trained, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    backend = HFBackend(trained, tiny_tokenizer, model_id="tiny", use_chat_template=False)
    params = GenerationParams(max_new_tokens=14, stop=("the", "d "))
    want = _dumped(_run(generate_static, backend, PROMPTS, params, batch_size=4))
    assert any(g["finish_reason"] == "stop" for g in want)
    for bs in (1, 3, 16, 64):
        assert _dumped(_run(generate_group, backend, PROMPTS, params, batch_size=bs)) == want, bs


@pytest.mark.parametrize("which", ["llama", "gpt2"])
def test_sampled_is_independent_of_the_batch_and_equals_static(which: str, trained, gpt2,  # type: ignore[no-untyped-def]
                                                               tiny_tokenizer) -> None:
    backend = HFBackend(trained if which == "llama" else gpt2, tiny_tokenizer, model_id="tiny",
                        use_chat_template=False)
    params = GenerationParams(max_new_tokens=12, temperature=0.9, top_p=0.9, seed=5)
    want = _dumped(_run(generate_static, backend, PROMPTS, params, batch_size=8))
    assert len({g["text"] for g in want[:18]}) > 1
    for bs in (1, 3, 16, 64):
        assert _dumped(_run(generate_group, backend, PROMPTS, params, batch_size=bs)) == want, bs
    # The repeated prompts are separate requests with their own seeds: not all alike.
    assert any(want[i] != want[i + 18] for i in range(18))


class _CountingForward:
    """Wraps a model's forward (keeping its signature) to count the rows fed through it."""

    def __init__(self, model: Any) -> None:
        self.rows = 0
        real = model.forward

        @functools.wraps(real)
        def forward(*args: Any, **kwargs: Any) -> Any:
            self.rows += kwargs["input_ids"].shape[0]
            return real(*args, **kwargs)

        self.forward = forward


def test_finished_rows_leave_the_batch(trained, tiny_tokenizer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    backend = HFBackend(trained, tiny_tokenizer, model_id="tiny", use_chat_template=False)
    params = GenerationParams(max_new_tokens=24)
    counts = {}
    for name, path in (("static", generate_static), ("continuous", generate_group)):
        counter = _CountingForward(trained)
        monkeypatch.setattr(trained, "forward", counter.forward)
        _run(path, backend, PROMPTS, params, batch_size=8)
        monkeypatch.undo()
        counts[name] = counter.rows
    assert counts["continuous"] < counts["static"], counts


def test_each_request_is_cached_as_it_ends(trained, tiny_tokenizer, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    backend = HFBackend(trained, tiny_tokenizer, model_id="tiny", use_chat_template=False)
    params = GenerationParams(max_new_tokens=10, temperature=0.8, seed=2)
    with ResultCache(tmp_path / "c.sqlite") as store:
        cache = BatchCache(store, "scope")
        done: list[int] = []
        first = _run(generate_group, backend, PROMPTS, params, batch_size=5, cache=cache, progress=done.append)
        assert sum(done) == len(PROMPTS) and set(done) == {1}  # each request reported once, as it ends
        assert len(store) == len(PROMPTS)
        counter = _CountingForward(trained)
        monkeypatch.setattr(trained, "forward", counter.forward)
        done.clear()
        again = _run(generate_group, backend, PROMPTS, params, batch_size=3, cache=cache, progress=done.append)
        assert counter.rows == 0 and _dumped(again) == _dumped(first) and sum(done) == len(PROMPTS)
        # The static path reads the same entries (the keys do not depend on the batch).
        assert _dumped(_run(generate_static, backend, PROMPTS, params, batch_size=4, cache=cache)) == _dumped(first)
        assert counter.rows == 0


def test_an_interrupted_call_keeps_the_requests_that_ended(trained, tiny_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend = HFBackend(trained, tiny_tokenizer, model_id="tiny", use_chat_template=False)
    params = GenerationParams(max_new_tokens=10)
    ended: list[int] = []

    def interrupt(n: int) -> None:
        ended.append(n)
        if len(ended) == 5:
            raise KeyboardInterrupt

    with ResultCache(tmp_path / "c.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            _run(generate_group, backend, PROMPTS[:18], params, batch_size=8, cache=BatchCache(store, "s"),
                 progress=interrupt)
        assert len(store) == 5


def _fallback(backend: HFBackend, prompts: list[str], params: GenerationParams) -> list[Generation]:
    return generate_group(backend.model, backend.prompts, prompts, params, batch_size=4, pad_id=backend.pad_id,
                          device=backend.device, progress=None, cache=None)


def test_models_the_loop_cannot_run_go_the_static_way(trained, tiny_tokenizer, monkeypatch, caplog,
                                                     tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend = HFBackend(trained, tiny_tokenizer, model_id="tiny", use_chat_template=False)
    params = GenerationParams(max_new_tokens=6)
    want = _dumped(_run(generate_static, backend, PROMPTS[:6], params, batch_size=4))
    monkeypatch.setattr(trained.generation_config, "repetition_penalty", 1.3)
    with caplog.at_level(logging.DEBUG, logger="audit.models._generate"):
        _fallback(backend, PROMPTS[:6], params)
    assert "repetition_penalty" in caplog.text
    monkeypatch.undo()

    def unsupported(cache: Any) -> None:
        raise _continuous.Unsupported("KV cache of type Other")

    monkeypatch.setattr(_continuous, "_check_cache", unsupported)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="audit.models._generate"):
        assert _dumped(_fallback(backend, PROMPTS[:6], params)) == want
    assert "KV cache of type Other" in caplog.text
    # Cache hits reported before the loop gave up are not reported again by the static path.
    with ResultCache(tmp_path / "c.sqlite") as store:
        cache = BatchCache(store, "s")
        generate_static(backend.model, backend.prompts, PROMPTS[:3], params, batch_size=4, pad_id=backend.pad_id,
                        device=backend.device, progress=None, cache=cache)
        done: list[int] = []
        out = generate_group(backend.model, backend.prompts, PROMPTS[:6], params, batch_size=4,
                             pad_id=backend.pad_id, device=backend.device, progress=done.append, cache=cache)
        assert _dumped(out) == want and sum(done) == 6


def test_backend_generate_goes_through_the_loop(trained, tiny_tokenizer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    backend = HFBackend(trained, tiny_tokenizer, model_id="tiny", use_chat_template=False, batch_size=4)
    params = GenerationParams(max_new_tokens=8)
    want = _dumped(_run(generate_static, backend, PROMPTS[:10], params, batch_size=4))

    monkeypatch.setattr(trained, "generate", _no_generate)
    assert _dumped(backend.generate(PROMPTS[:10], params)) == want


@pytest.mark.parametrize("fault", [torch.cuda.OutOfMemoryError("simulated"),
                                   RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")],
                         ids=["OutOfMemoryError", "RuntimeError"])
def test_out_of_memory_in_the_loop_halves_the_batch(trained, tiny_tokenizer, monkeypatch,  # type: ignore[no-untyped-def]
                                                     fault: Exception) -> None:
    params = GenerationParams(max_new_tokens=8, temperature=1.0, seed=7)
    want = _dumped(_run(generate_static, HFBackend(trained, tiny_tokenizer, model_id="tiny",
                                                   use_chat_template=False), PROMPTS, params, batch_size=1))
    real = trained.forward
    rows: list[int] = []

    @functools.wraps(real)
    def out_of_memory_once(*args: Any, **kwargs: Any) -> Any:
        rows.append(kwargs["input_ids"].shape[0])
        if len(rows) == 6:  # some requests have ended by now
            raise fault
        return real(*args, **kwargs)

    monkeypatch.setattr(trained, "forward", out_of_memory_once)
    monkeypatch.setattr(trained, "generate", _no_generate)
    backend = HFBackend(trained, tiny_tokenizer, model_id="tiny", use_chat_template=False, batch_size=8)
    done: list[int] = []
    assert _dumped(backend.generate(PROMPTS, params, done.append)) == want
    assert max(rows[:6]) > 4 and max(rows[6:]) == 4 and backend.batch_size == 4
    assert any("batch size reduced to 4" in n for n in backend.info().notes)
    assert sum(done) == len(PROMPTS)  # the retry's requests are not counted twice


def test_other_errors_in_the_loop_are_not_taken_for_out_of_memory(trained, tiny_tokenizer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = trained.forward

    @functools.wraps(real)
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(trained, "forward", broken)
    backend = HFBackend(trained, tiny_tokenizer, model_id="tiny", use_chat_template=False, batch_size=8)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        backend.generate(PROMPTS, GenerationParams(max_new_tokens=4))
    assert backend.batch_size == 8
