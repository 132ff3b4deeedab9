"""Results that do not depend on the machine: sampled generations are seeded per request (the
same for any batch size, and after an out-of-memory back-off), the result cache is scoped to
the dtype, device type and library versions as well as the weights, and the converted GGUF
copy in the model cache is trusted by the hashes of its files, not by its marker."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path

import pytest
import torch

from audit import AuditConfig, run_audit
from audit.models._backend import cache_scope
from audit.models._sampling import sample_rows
from probes import GenerationParams
from reports import ModelInfo

pytestmark = pytest.mark.slow

PROMPTS = ["The cat", "Q: Is the sky green?\nA:", "A farmer built", "Our teacher visited the blue", "The river",
           "The cat", "An engineer measured the north road and", "The cat", "A student", "My neighbour painted"]
SAMPLED = GenerationParams(max_new_tokens=8, temperature=1.0, seed=7)
PARAMS = [SAMPLED,
          GenerationParams(max_new_tokens=8, temperature=0.8, top_p=0.9, seed=3, stop=("e",)),
          GenerationParams(max_new_tokens=8, stop=("e",))]  # greedy: n_tokens must not depend on the batch either


def dumped(generations) -> list[dict]:  # type: ignore[no-untyped-def]
    return [g.model_dump() for g in generations]


# --- sampling seeded per request ---------------------------------------------------------------

@pytest.mark.parametrize("params", PARAMS, ids=["sampled", "top-p-stop", "greedy-stop"])
def test_generations_are_the_same_at_any_batch_size(tiny_model, backend_factory, params: GenerationParams) -> None:
    want = dumped(backend_factory(tiny_model, batch_size=1).generate(PROMPTS, params))
    for batch_size in (3, 8):
        assert dumped(backend_factory(tiny_model, batch_size=batch_size).generate(PROMPTS, params)) == want
    if params.greedy:
        return
    # "The cat" three times in one call: three different samples, not one repeated
    assert len({want[i]["text"] for i in (0, 5, 7)}) == 3
    # a request's sample is its own: other prompts, another order, another call do not change it
    alone = backend_factory(tiny_model, batch_size=4).generate([PROMPTS[2], PROMPTS[0]], params)
    assert dumped(alone) == [want[2], want[0]]
    other_seed = backend_factory(tiny_model, batch_size=8).generate(PROMPTS, params.model_copy(update={"seed": 8}))
    assert [g.text for g in other_seed] != [g["text"] for g in want]


@pytest.mark.parametrize("fault", [torch.cuda.OutOfMemoryError("simulated"),
                                   RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")],
                         ids=["OutOfMemoryError", "RuntimeError"])
def test_sampled_generations_survive_the_out_of_memory_back_off(tiny_model, backend_factory, monkeypatch,
                                                                fault: Exception) -> None:  # type: ignore[no-untyped-def]
    want = dumped(backend_factory(tiny_model, batch_size=1).generate(PROMPTS, SAMPLED))
    real_forward = tiny_model.forward
    calls: list[int] = []

    @functools.wraps(real_forward)  # keeps the signature the backend inspects
    def out_of_memory_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["input_ids"].shape[0])
        if len(calls) == 3:  # mid-way: after the prefill and a decoding step
            raise fault
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(tiny_model, "forward", out_of_memory_once)
    backend = backend_factory(tiny_model, batch_size=8)
    done: list[int] = []
    assert dumped(backend.generate(PROMPTS, SAMPLED, done.append)) == want
    assert calls[0] == 8 and backend.batch_size == 4  # the call again, at half the rows
    assert max(calls[3:]) <= 4
    assert any("batch size reduced to 4" in n for n in backend.info().notes)
    assert sum(done) == len(PROMPTS)  # requests finished before the fault are not counted twice


def test_other_runtime_errors_are_not_taken_for_out_of_memory(tiny_model, backend_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    @functools.wraps(tiny_model.forward)
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(tiny_model, "forward", broken)
    backend = backend_factory(tiny_model, batch_size=8)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        backend.generate(PROMPTS, SAMPLED)
    assert backend.batch_size == 8


def test_sampling_follows_temperature_and_top_p() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, float("-inf"), -1.0]])
    grid = torch.arange(20_000, dtype=torch.float64) / 20_000  # evenly spread draws in [0, 1)

    def frequencies(temperature: float, top_p: float) -> torch.Tensor:
        picks = torch.cat([sample_rows(logits, u, temperature, top_p) for u in grid.split(1)])
        return torch.bincount(picks, minlength=5).double() / len(grid)

    assert torch.allclose(frequencies(1.0, 1.0), torch.softmax(logits[0].double(), -1), atol=1e-3)
    assert torch.allclose(frequencies(0.5, 1.0), torch.softmax(logits[0].double() / 0.5, -1), atol=1e-3)
    # top-p 0.8: the two likeliest tokens hold 0.84 of the mass, so only they remain, renormalised
    kept = torch.softmax(torch.tensor([2.0, 1.0], dtype=torch.float64), -1)
    assert torch.allclose(frequencies(1.0, 0.8), torch.cat([kept, torch.zeros(3, dtype=torch.float64)]), atol=1e-3)
    # a draw next to 1 (rounding the target up to the total) never takes a token with no mass
    assert sample_rows(torch.tensor([[2.0, 1.0, float("-inf")]]), torch.tensor([1 - 1e-12]), 1.0, 1.0).item() == 1


# --- the result cache is scoped to dtype, device type and library versions ---------------------

def test_cache_scope_covers_dtype_device_type_and_libraries() -> None:
    base = ModelInfo(id="m", backend="transformers", source="m", dtype="float32", device="cuda:0",
                     fingerprint_sha256="ab" * 32, libraries={"torch": "2.13.0", "transformers": "5.24.0"})
    assert cache_scope(base) == cache_scope(base.model_copy(update={"device": "cuda:1", "batch_size": 3}))
    for change in ({"dtype": "bfloat16"}, {"device": "cpu"}, {"fingerprint_sha256": "cd" * 32},
                   {"libraries": {"torch": "2.12.0", "transformers": "5.24.0"}}):
        assert cache_scope(base.model_copy(update=change)) != cache_scope(base), change


def test_a_run_resumed_in_another_dtype_recomputes_instead_of_mixing(tiny_model, tiny_tokenizer,
                                                                      tmp_path: Path) -> None:
    from audit.models._hf import HFBackend

    # One weights file (one fingerprint) loaded in two dtypes, as on a CPU and on a GPU.
    def backend(model) -> HFBackend:  # type: ignore[no-untyped-def]
        return HFBackend(model, tiny_tokenizer, model_id="tiny", batch_size=4, fingerprint="ef" * 32)

    bf16 = copy.deepcopy(tiny_model).to(torch.bfloat16)
    run_dir = tmp_path / "run"
    first = run_audit(AuditConfig(model="tiny", probes=["bias.stereotype_pairs", "toxicity.dialogue"], limit=4,
                                  out=run_dir, pii={"nlp_model": "none"},
                                  probe_params={"toxicity.dialogue": {"max_new_tokens": 4, "samples": 2}}),
                      model=backend(tiny_model))
    assert first.run.cache_misses > 0 and first.model.dtype == "float32"
    assert set(first.model.libraries) == {"torch", "transformers"}
    other = run_audit(AuditConfig(resume=run_dir), model=backend(bf16))
    assert other.model.dtype == "bfloat16"
    assert other.run.cache_hits == 0 and other.run.cache_misses == first.run.cache_misses
    same = run_audit(AuditConfig(resume=run_dir), model=backend(tiny_model))
    assert same.run.cache_misses == 0 and same.run.cache_hits == first.run.cache_misses


# --- the converted GGUF copy is verified by the hashes of its files -----------------------------

def _tamper(where: Path, how: str) -> str:
    """Change the converted copy in ``where``; the words its verification should report."""
    if how == "changed":
        weights = where / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0x01  # one bit of one weight
        weights.write_bytes(bytes(data))
        return "model.safetensors does not match its sha256"
    if how == "removed":
        (where / "tokenizer.json").unlink()
        return "tokenizer.json is missing"
    if how == "added":
        (where / "custom_code.py").write_text("print('hello')\n")
        return "custom_code.py is not in the manifest"
    if how == "sums-edited":
        sums = where / "SHA256SUMS"
        sums.write_text(sums.read_text().replace("model.safetensors", "other.safetensors"))
        return "SHA256SUMS does not match the manifest"
    marker = where / "lm-risk-audit-converted.json"  # a copy written before manifests
    meta = json.loads(marker.read_text())
    del meta["files"]
    marker.write_text(json.dumps(meta))
    return "no manifest of file hashes"


@pytest.mark.parametrize("how", ["changed", "removed", "added", "sums-edited", "old-marker"])
def test_a_tampered_converted_copy_is_detected_and_removed(tiny_model, tiny_tokenizer, tmp_path, monkeypatch,
                                                          how: str) -> None:  # type: ignore[no-untyped-def]
    from audit.models._converted import (
        check_converted,
        converted_sha256,
        find_converted,
        save_converted,
    )

    monkeypatch.setenv("LM_AUDIT_CACHE_DIR", str(tmp_path / "cache"))
    sha = "ab" * 32
    where = save_converted(tiny_model, tiny_tokenizer, sha, "tiny.gguf")
    assert where is not None and find_converted(sha) == where
    # SHA256SUMS is the manifest in sha256sum's format; the report's hash is that file's
    lines = (where / "SHA256SUMS").read_text().splitlines()
    assert lines and all(hashlib.sha256((where / ln.split("  ", 1)[1]).read_bytes()).hexdigest() == ln[:64]
                         for ln in lines)
    assert converted_sha256(where) == hashlib.sha256((where / "SHA256SUMS").read_bytes()).hexdigest()
    reason = _tamper(where, how)
    found, problem = check_converted(sha)
    assert found is None and problem is not None and reason in problem
    assert not where.exists()  # removed, so that the next load converts again
    assert check_converted(sha) == (None, None)


def test_loading_reconverts_a_tampered_copy_and_reports_both_hashes(tiny_model, tiny_tokenizer, tmp_path,
                                                                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Through ``load_model``: transformers' GGUF reader is stood in for by the tiny model (a
    real GGUF conversion takes half a minute; tests/test_models.py runs one)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from audit.models import load_model, resolve_model, weights_fingerprint
    from audit.models._converted import converted_dir

    monkeypatch.setenv("LM_AUDIT_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    gguf_sha = weights_fingerprint(resolve_model(str(gguf)))
    read_gguf = []

    def stand_in(real, standin):  # type: ignore[no-untyped-def]
        def from_pretrained(*args, **kwargs):  # type: ignore[no-untyped-def]
            if kwargs.get("gguf_file"):
                read_gguf.append(kwargs["gguf_file"])
                return copy.deepcopy(standin)
            return real(*args, **kwargs)
        return staticmethod(from_pretrained)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        stand_in(AutoModelForCausalLM.from_pretrained, tiny_model))
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", stand_in(AutoTokenizer.from_pretrained, tiny_tokenizer))

    converted = load_model(str(gguf)).info()  # converts, and writes the copy
    assert read_gguf and converted.fingerprint_sha256 == gguf_sha and converted.gguf_file == "tiny.gguf"
    where = converted_dir(gguf_sha)
    assert converted.converted_sha256 == hashlib.sha256((where / "SHA256SUMS").read_bytes()).hexdigest()
    first_sums = (where / "SHA256SUMS").read_text()
    read_gguf.clear()
    cached = load_model(str(gguf)).info()  # reads the verified copy, not the GGUF file
    assert not read_gguf and cached.converted_sha256 == converted.converted_sha256
    assert not any("failed verification" in n for n in cached.notes)

    _tamper(where, "changed")
    again = load_model(str(gguf)).info()
    assert read_gguf  # the tampered copy was not read: the GGUF file was converted again
    assert any("failed verification (model.safetensors does not match its sha256)" in n for n in again.notes)
    assert (where / "SHA256SUMS").read_text() == first_sums
    assert again.converted_sha256 == converted.converted_sha256  # the rewritten copy equals the first
    assert again.fingerprint_sha256 == gguf_sha
    without_cache = load_model(str(gguf), model_cache=False).info()
    assert without_cache.converted_sha256 is None
