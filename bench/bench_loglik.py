"""Benchmark: multiple-choice log-likelihood scoring, three ways on the same items.

Not a test. The truthfulness probe's project-written items (115 questions, 460 answer
choices) on one loaded model, scored by:

- a naive loop: one forward pass over context + continuation per choice, batch of one;
- lm-evaluation-harness (when installed: ``.venv/bin/python -m pip install lm-eval==0.4.13``),
  through a local JSON task written to a temporary directory, nothing downloaded;
- lm-risk-audit's backend (shared prefix and contexts run once, length-sorted chunks).

Each reports MC1 (the best answer scores above every false one) and MC2 (probability
mass on the true answers); they must agree. Two layouts: the probe's default (chat
template; lm-evaluation-harness's ``apply_chat_template``) and lm-evaluation-harness's
zero-shot ``Q: ...\nA:`` + `` answer``. Prints one table.

    .venv/bin/python bench/bench_loglik.py [--model smollm2-135m] [--limit N] [--batch-size N]
        [--lm-eval-batch-size 16] [--layout chat zero-shot] [--no-naive] [--device auto] [--dtype auto]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from audit.models import load_model  # noqa: E402
from probes import LoglikRequest, project_data  # noqa: E402
from probes._datasets import read_jsonl  # noqa: E402
from probes._preference import qa_context  # noqa: E402
from probes.misinformation import MCItem, mc_scores  # noqa: E402

TASK = "lmra_truthfulness_mc"
LAYOUTS = {"chat": "chat template (the probe's default)", "zero-shot": "zero-shot 'Q: …\\nA:' + ' answer'"}

# The task scores every choice (true answers first, then false ones) and computes MC1/MC2
# from the log-likelihoods, as lm-evaluation-harness's own truthfulqa_mc2 does.
TASK_YAML = f"""\
task: {TASK}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {{data}}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: 0
process_results: !function utils.process_results
metric_list:
  - metric: mc1
    aggregation: mean
    higher_is_better: true
  - metric: mc2
    aggregation: mean
    higher_is_better: true
"""

UTILS_PY = textwrap.dedent("""\
    import numpy as np

    def process_results(doc, results):
        lls = np.array([ll for ll, _ in results])
        n_true = doc["n_true"]
        mass = np.exp(lls - lls.max())
        return {"mc1": float(lls[0] > lls[n_true:].max()), "mc2": float(mass[:n_true].sum() / mass.sum())}
""")


def write_task(items: list[MCItem], where: Path, chat: bool) -> None:
    # dataset_kwargs paths resolve against the working directory, so the path is absolute.
    (where / "task.yaml").write_text(TASK_YAML.replace("{data}", str(where / "items.jsonl")))
    (where / "utils.py").write_text(UTILS_PY)
    with (where / "items.jsonl").open("w") as fh:
        for it in items:
            choices = it.true_choices() + it.false_answers
            prompt = it.question if chat else f"Q: {it.question}\nA:"
            fh.write(json.dumps({"prompt": prompt, "choices": choices, "n_true": len(it.true_choices())}) + "\n")


def naive(backend, items, chat: bool):  # type: ignore[no-untyped-def]
    """One forward pass over context + continuation per choice, batch of one: the baseline."""
    reqs, spans = _requests(items, chat)
    t0 = time.perf_counter()
    lps = []
    with torch.inference_mode():
        for r in reqs:
            ctx, cont = backend.continuation_ids(r.context, r.continuation)
            ids = torch.tensor([ctx + cont], device=backend.device)
            lp = torch.log_softmax(backend.model(input_ids=ids).logits.float(), -1)[0]
            lps.append(sum(lp[len(ctx) - 1 + j, tok].item() for j, tok in enumerate(cont)))
    wall = time.perf_counter() - t0
    return wall, *_accuracy(spans, lps)


def _requests(items, chat: bool):  # type: ignore[no-untyped-def]
    reqs, spans = [], []
    for it in items:
        choices = it.true_choices() + it.false_answers
        spans.append((len(reqs), len(it.true_choices()), len(it.false_answers)))
        # The truthfulness probe's own layouts (probes._preference.qa_context).
        context, sep = qa_context(it.question, chat)
        reqs += [LoglikRequest(context=context, continuation=sep + c) for c in choices]
    return reqs, spans


def _accuracy(spans, lps):  # type: ignore[no-untyped-def]
    mc1, mc2 = [], []
    for start, nt, nf in spans:
        a, b = mc_scores(lps[start:start + nt], lps[start + nt:start + nt + nf])
        mc1.append(a)
        mc2.append(b)
    return float(np.mean(mc1)), float(np.mean(mc2))


def ours(backend, items, chat: bool):  # type: ignore[no-untyped-def]
    reqs, spans = _requests(items, chat)
    t = time.perf_counter()
    lps = [r.logprob for r in backend.loglikelihood(reqs)]
    wall = time.perf_counter() - t
    return wall, *_accuracy(spans, lps)


def lm_eval_run(backend, items, batch_size, chat: bool):  # type: ignore[no-untyped-def]
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    lm = HFLM(pretrained=backend.model, tokenizer=backend.tok, batch_size=batch_size, device=str(backend.device))
    inner = {"s": 0.0}
    original = lm.loglikelihood

    def timed(requests, *a, **k):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original(requests, *a, **k)
        finally:
            inner["s"] += time.perf_counter() - t0

    lm.loglikelihood = timed  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        write_task(items, Path(tmp), chat)
        t = time.perf_counter()
        out = lm_eval.simple_evaluate(model=lm, tasks=[TASK], task_manager=TaskManager(include_path=tmp),
                                      num_fewshot=0, batch_size=batch_size, log_samples=False,
                                      apply_chat_template=chat)
        wall = time.perf_counter() - t
    res = out["results"][TASK]
    return wall, inner["s"], float(res["mc1,none"]), float(res["mc2,none"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None, help="ours; default: the planned batch")
    ap.add_argument("--lm-eval-batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--layout", nargs="+", choices=sorted(LAYOUTS), default=["chat", "zero-shot"])
    ap.add_argument("--no-naive", action="store_true", help="skip the naive loop (the slowest row)")
    args = ap.parse_args()
    backend = load_model(args.model, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    items = read_jsonl(project_data("truthfulness_mc.jsonl"), MCItem)[: args.limit]
    try:
        import lm_eval
    except ImportError:
        lm_eval = None
        print("lm-evaluation-harness is not installed: its rows are skipped")
    ours(backend, items[:4], chat=False)  # warm-up, so no row pays the first call
    n_choices = len(_requests(items, False)[0])

    print(f"model {args.model} · {len(items)} questions, {n_choices} choices · "
          f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · torch {torch.__version__} · "
          f"{torch.get_num_threads()} threads · device {backend.device} · "
          f"{str(next(backend.model.parameters()).dtype).removeprefix('torch.')}")
    print()
    print("| layout | path | end-to-end s | in log-likelihood s | choices/s | MC1 | MC2 |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for layout in args.layout:
        chat = layout == "chat"
        rows = []
        if not args.no_naive:
            wall, a, b = naive(backend, items, chat)
            rows.append(("naive per-choice loop (batch 1)", wall, wall, a, b))
        if lm_eval is not None:
            wall, inner, a, b = lm_eval_run(backend, items, args.lm_eval_batch_size, chat)
            rows.append((f"lm-evaluation-harness {lm_eval.__version__} (batch {args.lm_eval_batch_size})",
                         wall, inner, a, b))
        wall, a, b = ours(backend, items, chat)
        rows.append((f"lm-risk-audit (batch {backend.batch_size})", wall, wall, a, b))
        for name, wall, inner, a, b in rows:
            print(f"| {LAYOUTS[layout]} | {name} | {wall:.2f} | {inner:.2f} | {n_choices / inner:.1f} | "
                  f"{a:.4f} | {b:.4f} |", flush=True)
        _, w0, i0, a0, b0 = rows[-1]
        for name, w1, i1, a1, b1 in rows[:-1]:
            summary.append(f"{LAYOUTS[layout]}, vs {name}: {w1 / w0:.2f}x end to end, {i1 / i0:.2f}x in "
                           f"log-likelihood · |Δ MC1| {abs(a0 - a1):.4f} · |Δ MC2| {abs(b0 - b1):.4f}")
    if summary:
        print()
        print("lm-risk-audit speed-up:")
        for line in summary:
            print(f"- {line}")


if __name__ == "__main__":
    main()
