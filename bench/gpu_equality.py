"""Equality check on a GPU (not a test: CI has none): issue 20's token-tree log-likelihoods and
continuous batching on CUDA (CPU when there is none), against a forward pass per request and the
static ``model.generate`` path, in float32 and bfloat16, on a tiny Llama trained here as the tests
train theirs (tests/conftest.py). Prints every gap and a FAILURES count.

    python bench/gpu_equality.py        # from the repository root; needs torch, transformers, pydantic
"""

from __future__ import annotations

import sys
import time

sys.path.insert(0, ".")
import torch  # noqa: E402

from tests.conftest import build_tiny_tokenizer, make_model, train  # noqa: E402


def sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    from audit.models._continuous import unsupported_reason
    from audit.models._generate import generate_group, generate_static
    from audit.models._hf import HFBackend
    from probes.model import GenerationParams, LoglikRequest

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    print("torch", torch.__version__, dev, torch.cuda.get_device_name(0) if dev == "cuda" else "")
    import transformers
    print("transformers", transformers.__version__)
    tok = build_tiny_tokenizer()
    texts = [f"{s} {v} {o}." for s in ["The cat", "A doctor", "My neighbour", "The river", "A student"]
             for v in ["watched", "built", "crossed"] for o in ["the garden", "a wooden table", "the north road"]]
    cpu_model = train(make_model(tok, seed=1), tok, texts, steps=30)
    prompts = ["The cat", "A doctor watched", "Q: Is ice cold?\nA:", "My neighbour repaired the", "The",
               "An engineer measured a wooden table.", "The small boat crossed the north road and",
               "Our teacher", "The old bridge", "A student painted", "Yes, I am"] * 6
    reqs = [LoglikRequest(context=c, continuation=x) for c in ["", "The cat", "Q: Is ice cold?\nA:"]
            for x in [" watched the garden.", " built a wooden table.", " Yes", " No, it is warm.", " crossed"]] * 3
    failures = 0
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = make_model(tok, seed=1)
        model.load_state_dict(cpu_model.state_dict())
        model = model.to(dev, dtype=dtype).eval()
        be = HFBackend(model, tok, model_id="tiny", use_chat_template=False, batch_size=64)
        print(f"--- {dtype}: unsupported_reason={unsupported_reason(be.model)}")
        t = time.perf_counter()
        got = [r.logprob for r in be.loglikelihood(reqs)]
        sync(dev)
        print(f"loglikelihood {len(reqs)} requests in {time.perf_counter() - t:.2f}s")
        # reference: one forward pass per request, no batching, no tree
        ref = []
        for r in reqs:
            ctx_ids, cont = be.continuation_ids(r.context, r.continuation)
            ids = torch.tensor([ctx_ids + cont], device=dev)
            with torch.no_grad():
                lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            ref.append(sum(lp[len(ctx_ids) - 1 + i, t].item() for i, t in enumerate(cont)))
        gap = max(abs(a - b) for a, b in zip(got, ref))
        tol = 1e-3 if dtype == torch.float32 else 0.15
        print(f"loglik max |tree - per-request| = {gap:.2e} (tolerance {tol})")
        failures += gap > tol
        results[dtype] = got
        for params in (GenerationParams(max_new_tokens=12),
                       GenerationParams(max_new_tokens=12, temperature=0.9, top_p=1.0, seed=5)):
            want = [g.model_dump() for g in generate_static(be.model, be.prompts, prompts, params, batch_size=8,
                                                            pad_id=be.pad_id, device=be.device, progress=None,
                                                            cache=None)]
            for bs in (1, 7, 64):
                t = time.perf_counter()
                out = [g.model_dump() for g in generate_group(be.model, be.prompts, prompts, params, batch_size=bs,
                                                              pad_id=be.pad_id, device=be.device, progress=None,
                                                              cache=None)]
                sync(dev)
                diff = sum(a != b for a, b in zip(out, want))
                print(f"generate {'greedy' if params.greedy else 'sampled'} bs={bs}: {diff} of {len(want)} differ "
                      f"from static ({time.perf_counter() - t:.2f}s)")
                failures += diff > 0 and dtype == torch.float32
    cpu = HFBackend(cpu_model, tok, model_id="tiny", use_chat_template=False)
    cpu_lp = [r.logprob for r in cpu.loglikelihood(reqs)]
    print(f"loglik max |cuda fp32 - cpu| = {max(abs(a - b) for a, b in zip(results[torch.float32], cpu_lp)):.2e}")
    print("FAILURES", failures)


if __name__ == "__main__":
    main()
