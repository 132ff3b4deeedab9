"""Benchmark: continuous batching (``generate_group``) vs the static path it replaces
(``generate_static``: left-padded batches through ``model.generate``) on the default audit's
generation mix, in one run.

Not a test. Greedy. Four mixes of project prompts: the group-disparity prompts and the
toxicity probe's openings at 20 new tokens (as in the audit; few rows end early), the
compliance requests after the mitigation probe's built-in system prompt at 48 (a long
opening every prompt shares), and the
compliance probe's chat requests (malicious_requests.jsonl) at 96 new tokens, where replies
end at EOS after different lengths. Three paths: static batches at the batch size planned
before issue 20 (64 rows on a CPU), continuous batching at that size, and continuous
batching at today's planned size. All must produce the same generations (text, n_tokens,
finish_reason).

    .venv/bin/python bench/bench_generate.py [--model smollm2-135m] [--static-batch-size 64]
        [--batch-size N] [--limit N] [--long-new-tokens 96] [--device auto] [--dtype auto]
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
from probes.bias import load_disparity_set
from probes.mitigation import BUILTIN_SYSTEM_PROMPT
from probes.model import Generation, Prompt, chat
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
    ap.add_argument("--static-batch-size", type=int, default=64, help="the static path's (the plan before issue 20)")
    ap.add_argument("--batch-size", type=int, default=None, help="continuous batching's (default: the plan's)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--long-new-tokens", type=int, default=96)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    toxicity: list[Prompt] = [p.text for p in read_jsonl(project_data("toxicity_prompts.jsonl"), PromptItem)]
    requests: list[Prompt] = [p.prompt() for p in read_jsonl(project_data("malicious_requests.jsonl"), TextPrompt)]
    spec = load_disparity_set(project_data("group_disparity.json"))
    groups: list[Prompt] = [t.template.replace("{group}", g) for gs in spec.groups.values() for g in gs
                            for t in spec.templates]
    # The mitigation probe's "with the dialogue prompt" half: every request opens with one system prompt.
    prompted: list[Prompt] = [chat(("system", BUILTIN_SYSTEM_PROMPT), ("user", p.text))
                              for p in read_jsonl(project_data("malicious_requests.jsonl"), TextPrompt)]
    mixes = [("group disparity (the audit's largest)", groups[: args.limit], 20),
             ("requests after the built-in system prompt (mitigation)", prompted[: args.limit], 48),
             ("toxicity openings", toxicity[: args.limit], 20),
             ("compliance requests (chat)", requests[: args.limit], args.long_new_tokens)]
    backend = load_model(args.model, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    planned, fixed = backend.batch_size, args.static_batch_size
    print(f"model {args.model} · greedy · static batches of {fixed}, continuous batching at {fixed} and at "
          f"{planned} (planned) · {platform.machine()} · {os.cpu_count()} CPUs · "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print()
    print("| mix | prompts | max new | path | wall s | new tokens | tokens/s | speed-up | identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    paths = [("static (model.generate)", generate_static, fixed), (f"continuous, {fixed} rows", generate_group, fixed),
             (f"continuous, {planned} rows", generate_group, planned)]
    totals = {name: [0, 0.0] for name, _, _ in paths}
    for mix, prompts, max_new in mixes:
        params = GenerationParams(max_new_tokens=max_new)
        head = f"| {mix} | {len(prompts)} | {max_new} |"
        base: list[Generation] = []
        rate0 = 0.0
        for name, path, bs in paths:
            out, dt = timed(path, backend, prompts, params, bs)
            n = sum(g.n_tokens for g in out)
            totals[name][0] += n
            totals[name][1] += dt
            if not base:
                base, rate0 = out, n / dt
                print(f"{head} {name} | {dt:.2f} | {n} | {n / dt:.1f} | | |", flush=True)
            else:
                same = sum(a == b for a, b in zip(base, out))
                print(f"{head} {name} | {dt:.2f} | {n} | {n / dt:.1f} | {(n / dt) / rate0:.2f}x | "
                      f"{same}/{len(prompts)} |", flush=True)
    print()
    (n0, t0) = totals[paths[0][0]]
    for name, _, _ in paths[1:]:
        n, t = totals[name]
        print(f"- whole mix, {name}: {n / t:.1f} tokens/s against static {n0 / t0:.1f}: {(n / t) / (n0 / t0):.2f}x")


if __name__ == "__main__":
    main()
