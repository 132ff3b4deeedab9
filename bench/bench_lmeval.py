"""Benchmark: multiple-choice scoring, lm-risk-audit vs lm-evaluation-harness on the same items.

Not a test. Both tools score the truthfulness probe's project-written items on the same
loaded model: lm-evaluation-harness through a local JSON task written to a temporary
directory (no download), lm-risk-audit through its backend. Each reports MC1 (the best
answer scores above every false one) and MC2 (probability mass on the true answers), and
the two must agree. Prints one table.

Needs lm-evaluation-harness (``.venv/bin/python -m pip install lm-eval==0.4.13``); without it
only our side is measured.

    .venv/bin/python bench/bench_lmeval.py [--model smollm2-135m] [--limit N] [--batch-size 16]
        [--lm-eval-batch-size 16] [--device auto] [--dtype auto]
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

from audit.models import LoglikRequest, load_model  # noqa: E402
from probes import project_data  # noqa: E402
from probes._datasets import read_jsonl  # noqa: E402
from probes._preference import qa_context  # noqa: E402
from probes.truthfulness import MCItem, mc_scores  # noqa: E402

TASK = "lmra_truthfulness_mc"
LAYOUTS = {"chat": "chat template (the probe's default)", "zero-shot": "zero-shot 'Q: …\\nA:' + ' answer'"}

# The task scores every choice (true answers first, then false ones) and computes MC1/MC2
# from the log-likelihoods, as lm-evaluation-harness's own truthfulqa_mc2 does.
TASK_YAML = f"""\
task: {TASK}
dataset_path: json
dataset_kwargs:
  data_files:
    test: items.jsonl
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
    (where / "task.yaml").write_text(TASK_YAML)
    (where / "utils.py").write_text(UTILS_PY)
    with (where / "items.jsonl").open("w") as fh:
        for it in items:
            choices = it.true_choices() + it.false_answers
            prompt = it.question if chat else f"Q: {it.question}\nA:"
            fh.write(json.dumps({"prompt": prompt, "choices": choices, "n_true": len(it.true_choices())}) + "\n")
    # dataset_kwargs paths resolve against the working directory; make them absolute.
    text = (where / "task.yaml").read_text().replace("test: items.jsonl", f"test: {where / 'items.jsonl'}")
    (where / "task.yaml").write_text(text)


def ours(backend, items, chat: bool):  # type: ignore[no-untyped-def]
    reqs, spans = [], []
    for it in items:
        choices = it.true_choices() + it.false_answers
        spans.append((len(reqs), len(it.true_choices()), len(it.false_answers)))
        # The truthfulness probe's own layouts (probes._preference.qa_context).
        context, sep = qa_context(it.question, chat)
        reqs += [LoglikRequest(context=context, continuation=sep + c) for c in choices]
    t = time.perf_counter()
    lps = [r.logprob for r in backend.loglikelihood(reqs)]
    wall = time.perf_counter() - t
    mc1, mc2 = [], []
    for start, nt, nf in spans:
        a, b = mc_scores(lps[start:start + nt], lps[start + nt:start + nt + nf])
        mc1.append(a)
        mc2.append(b)
    return wall, float(np.mean(mc1)), float(np.mean(mc2)), len(reqs)


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
    ap.add_argument("--batch-size", type=int, default=None, help="ours; default: the size-chosen batch")
    ap.add_argument("--lm-eval-batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--layout", nargs="+", choices=sorted(LAYOUTS), default=["chat", "zero-shot"])
    args = ap.parse_args()
    backend = load_model(args.model, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    items = read_jsonl(project_data("truthfulness_mc.jsonl"), MCItem)[: args.limit]
    try:
        import lm_eval
    except ImportError:
        lm_eval = None
        print("lm-evaluation-harness is not installed: only our side is measured")
    with backend.uncached():  # one warm-up pass, so neither side pays the first call
        ours(backend, items[:4], chat=False)

    print(f"model {args.model} · {len(items)} questions · "
          f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · torch {torch.__version__} · "
          f"{torch.get_num_threads()} threads · device {backend.device} · "
          f"{str(next(backend.model.parameters()).dtype).removeprefix('torch.')}")
    print()
    print("| layout | path | choices | end-to-end s | in loglikelihood s | choices/s | MC1 | MC2 |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for layout in args.layout:
        chat = layout == "chat"
        t_ours, mc1, mc2, n_req = ours(backend, items, chat)
        rows = [(f"lm-risk-audit (batch {backend.batch_size})", t_ours, t_ours, mc1, mc2)]
        if lm_eval is not None:
            wall, inner, e1, e2 = lm_eval_run(backend, items, args.lm_eval_batch_size, chat)
            rows.append((f"lm-evaluation-harness {lm_eval.__version__} (batch {args.lm_eval_batch_size})",
                         wall, inner, e1, e2))
        for name, wall, inner, a, b in rows:
            print(f"| {LAYOUTS[layout]} | {name} | {n_req} | {wall:.2f} | {inner:.2f} | {n_req / inner:.1f} | "
                  f"{a:.4f} | {b:.4f} |", flush=True)
        if len(rows) == 2:
            (_, w0, i0, a0, b0), (_, w1, i1, a1, b1) = rows
            summary.append(f"{LAYOUTS[layout]}: {w1 / w0:.2f}x end to end, {i1 / i0:.2f}x inside loglikelihood · "
                           f"|Δ MC1| {abs(a0 - a1):.4f} · |Δ MC2| {abs(b0 - b1):.4f}")
    if summary:
        print()
        print("speed-up over lm-evaluation-harness:")
        for line in summary:
            print(f"- {line}")


if __name__ == "__main__":
    main()
