"""Benchmark: multiple-choice log-likelihood scoring, our shared-context path vs a naive loop.

Not a test. Prints one table; both paths score the same requests (the truthfulness
probe's project set on the chosen model) and must agree on MC1/MC2.

    .venv/bin/python bench/bench_loglik.py [--model smollm2-135m] [--limit N] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from audit.models import LoglikRequest, load_model  # noqa: E402
from probes import project_data  # noqa: E402
from probes._datasets import read_jsonl  # noqa: E402
from probes.truthfulness import MCItem, mc_scores  # noqa: E402


def naive(backend, reqs):  # type: ignore[no-untyped-def]
    """One forward pass over context + continuation per request, batch of one: the baseline."""
    out = []
    with torch.inference_mode():
        for r in reqs:
            ctx, cont = backend.continuation_ids(r.context, r.continuation)
            ids = torch.tensor([ctx + cont], device=backend.device)
            lp = torch.log_softmax(backend.model(input_ids=ids).logits.float(), -1)[0]
            out.append(sum(lp[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont)))
    return out


def accuracy(items, spans, lps):  # type: ignore[no-untyped-def]
    mc1, mc2 = [], []
    for (start, nt, nf) in spans:
        a, b = mc_scores(lps[start:start + nt], lps[start + nt:start + nt + nf])
        mc1.append(a)
        mc2.append(b)
    return float(np.mean(mc1)), float(np.mean(mc2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    # Contexts are raw text in the lm-evaluation-harness zero-shot layout, so no chat template applies.
    backend = load_model(args.model, batch_size=args.batch_size)
    items = read_jsonl(project_data("truthfulness_mc.jsonl"), MCItem)[: args.limit]
    reqs, spans = [], []
    for it in items:
        ctx = f"Q: {it.question}\nA:"
        choices = it.true_choices() + it.false_answers
        spans.append((len(reqs), len(it.true_choices()), len(it.false_answers)))
        reqs += [LoglikRequest(context=ctx, continuation=" " + c) for c in choices]
    n_tokens = sum(len(backend.encode_prompt(r.context)) + len(backend.tok(r.continuation)["input_ids"]) for r in reqs)

    t = time.perf_counter()
    ours = [r.logprob for r in backend.loglikelihood(reqs)]
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    base = naive(backend, reqs)
    t_naive = time.perf_counter() - t

    acc_ours, acc_base = accuracy(items, spans, ours), accuracy(items, spans, base)
    print(f"model {args.model} · {len(items)} questions, {len(reqs)} choices, {n_tokens} tokens (context counted per choice)")
    print(f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · torch {torch.__version__} · "
          f"{torch.get_num_threads()} threads · batch size {args.batch_size}")
    print()
    print("| path | wall s | tokens/s | MC1 | MC2 |")
    print("|---|---|---|---|---|")
    print(f"| naive per-choice loop | {t_naive:.2f} | {n_tokens / t_naive:.0f} | {acc_base[0]:.3f} | {acc_base[1]:.3f} |")
    print(f"| lm-risk-audit shared context | {t_ours:.2f} | {n_tokens / t_ours:.0f} | {acc_ours[0]:.3f} | {acc_ours[1]:.3f} |")
    print()
    print(f"speed-up {t_naive / t_ours:.2f}x · max |Δ logprob| {max(abs(a - b) for a, b in zip(ours, base)):.2e}")


if __name__ == "__main__":
    main()
