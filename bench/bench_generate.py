"""Benchmark: continuous batching (``generate_group``) vs the static path it replaces
(``generate_static``: left-padded batches through ``model.generate``) on the default audit's
generation mix, in one run.

Not a test. Greedy. Two mixes of project prompts: the toxicity probe's openings at 20 new
tokens (as in the audit; few rows end early), and the compliance probe's chat requests
(malicious_requests.jsonl) at 96 new tokens, where replies end at EOS after very different
lengths. Both paths must produce the same generations (text, n_tokens, finish_reason).

    .venv/bin/python bench/bench_generate.py [--model smollm2-135m] [--batch-size 16] [--limit N]
        [--long-new-tokens 96] [--device auto] [--dtype auto]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch

from audit.models import load_model
from audit.models._generate import generate_group, generate_static
from probes import GenerationParams, project_data
from probes._datasets import read_jsonl
from probes._scored import TextPrompt
from probes.model import Generation, Prompt
from probes.toxicity import PromptItem


def timed(path: Callable[..., list[Generation]], backend: Any, prompts: list[Prompt], params: GenerationParams,
          batch_size: int) -> tuple[list[Generation], float]:
    """(generations, wall seconds) of one path over all prompts, without a result cache."""
    t = time.perf_counter()
    out = path(backend.model, backend.prompts, prompts, params, batch_size=batch_size, pad_id=backend.pad_id,
               device=backend.device, progress=None, cache=None)
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--long-new-tokens", type=int, default=96)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    toxicity: list[Prompt] = [p.text for p in read_jsonl(project_data("toxicity_prompts.jsonl"), PromptItem)]
    requests: list[Prompt] = [p.prompt() for p in read_jsonl(project_data("malicious_requests.jsonl"), TextPrompt)]
    mixes = [("toxicity openings", toxicity[: args.limit], 20),
             ("compliance requests (chat)", requests[: args.limit], args.long_new_tokens)]
    backend = load_model(args.model, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    bs = args.batch_size
    print(f"model {args.model} · greedy · batch size {bs} · {platform.machine()} · {os.cpu_count()} CPUs · "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print()
    print("| mix | prompts | max new | path | wall s | new tokens | tokens/s | speed-up | identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals = {"static": [0, 0.0], "continuous": [0, 0.0]}
    for name, prompts, max_new in mixes:
        params = GenerationParams(max_new_tokens=max_new)
        static, t_static = timed(generate_static, backend, prompts, params, bs)
        cont, t_cont = timed(generate_group, backend, prompts, params, bs)
        n = sum(g.n_tokens for g in static)
        n_cont = sum(g.n_tokens for g in cont)
        same = sum(a == b for a, b in zip(static, cont))
        head = f"| {name} | {len(prompts)} | {max_new} |"
        print(f"{head} static (model.generate) | {t_static:.2f} | {n} | {n / t_static:.1f} | | |")
        print(f"{head} continuous | {t_cont:.2f} | {n_cont} | {n_cont / t_cont:.1f} | "
              f"{(n_cont / t_cont) / (n / t_static):.2f}x | {same}/{len(prompts)} |")
        totals["static"][0] += n
        totals["static"][1] += t_static
        totals["continuous"][0] += n_cont
        totals["continuous"][1] += t_cont
    (n_s, t_s), (n_c, t_c) = totals["static"], totals["continuous"]
    print()
    print(f"whole mix: static {n_s / t_s:.1f} tokens/s, continuous {n_c / t_c:.1f} tokens/s "
          f"-> speed-up {(n_c / t_c) / (n_s / t_s):.2f}x")


if __name__ == "__main__":
    main()
