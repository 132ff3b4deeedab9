"""Benchmark: our generation path vs raw batched ``model.generate`` on the same prompts.

Not a test. Greedy, the toxicity probe's 165 openings, 20 new tokens (as in the audit).
The baseline is transformers' own batched ``generate`` with left padding at each batch
size; its best batch size is the practical limit on this hardware. Both paths must
produce the same text.

    .venv/bin/python bench/bench_generate.py [--model smollm2-135m] [--batch-sizes 8,16,32] [--limit N]
        [--device auto] [--dtype auto]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

from audit.models import load_model  # noqa: E402
from probes import GenerationParams, project_data  # noqa: E402
from probes._datasets import read_jsonl  # noqa: E402
from probes.toxicity import PromptItem  # noqa: E402


def raw_generate(backend, prompts: list[str], batch_size: int, max_new_tokens: int) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """transformers' batched generate, left-padded, in the given order: (texts, new tokens)."""
    tok, model = backend.tok, backend.model
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    texts, n_tokens = [], 0
    eos = backend._eos_ids()
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            enc = tok(prompts[start : start + batch_size], return_tensors="pt", padding=True).to(backend.device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                                 top_k=None, pad_token_id=tok.pad_token_id, eos_token_id=eos)
            for row in out[:, enc["input_ids"].shape[1]:].tolist():
                cut = next((k for k, t in enumerate(row) if t in eos), len(row))
                n_tokens += cut
                texts.append(tok.decode(row[:cut], skip_special_tokens=True))
    return texts, n_tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch-sizes", default="8,16,32")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    prompts = [p.text for p in read_jsonl(project_data("toxicity_prompts.jsonl"), PromptItem)][: args.limit]
    backend = load_model(args.model, batch_size=sizes[0], device=args.device, dtype=args.dtype)
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    print(f"model {args.model} · {len(prompts)} prompts · {args.max_new_tokens} new tokens, greedy · "
          f"{platform.machine()} · {os.cpu_count()} CPUs · torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print()
    print("| path | batch size | wall s | new tokens | tokens/s |")
    print("|---|---|---|---|---|")
    best_raw, best_ours, reference = 0.0, 0.0, None
    for bs in sizes:
        t = time.perf_counter()
        texts, n = raw_generate(backend, prompts, bs, args.max_new_tokens)
        dt = time.perf_counter() - t
        best_raw = max(best_raw, n / dt)
        print(f"| raw model.generate | {bs} | {dt:.2f} | {n} | {n / dt:.1f} |")
        backend.batch_size = bs
        t = time.perf_counter()
        outs = backend.generate(prompts, params)
        dt = time.perf_counter() - t
        n = sum(o.n_tokens for o in outs)
        best_ours = max(best_ours, n / dt)
        print(f"| lm-risk-audit generate | {bs} | {dt:.2f} | {n} | {n / dt:.1f} |")
        ours_texts = [o.text for o in outs]
        same = sum(a == b for a, b in zip(ours_texts, texts))
        reference = reference or (same, len(texts))
    print()
    print(f"best tokens/s: ours {best_ours:.1f} vs raw {best_raw:.1f} -> ratio {best_ours / best_raw:.2f}")
    if reference:
        print(f"identical outputs at batch {sizes[0]}: {reference[0]}/{reference[1]}")


if __name__ == "__main__":
    main()
