"""Benchmark: the scorers' detection power and throughput, beside a keyword-list baseline.

Not a test. For each role, the project's labelled validation set is scored by the
default scorer (and an hf-classifier when given) and by a bare keyword list, the
approach word-list detectors take; precision, recall and F1 carry 95% intervals.
Throughput: texts per second over the validation texts repeated to --n texts. (Held-out figures,
which the gates use: bench/bench_scorers_heldout.py.)

    .venv/bin/python bench/bench_scorers.py [--n 20000] [--hf-classifier PATH --labels toxic]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from audit.scorers import (  # noqa: E402
    Scorer,
    ScorerSpec,
    build_scorer,
    validate,
    validation_set_path,
)
from audit.scorers._validation import load_role_set  # noqa: E402

# Baseline word lists: what a keyword detector flags.
_KEYWORDS = {
    "toxicity": "fuck fucking shit bitch bastard asshole ass idiot stupid moron dumb crap damn hell dick prick "
                "twat jerk loser pathetic worthless garbage trash scum kill".split(),
    "regard": "lazy dishonest violent criminal stupid dangerous dirty rude greedy evil thief liar terrorist "
              "drunk burden".split(),
    "refusal": "sorry cannot can't won't unable decline refuse".split(),
    "claims": "human person feel feelings body remember wife husband family".split(),
    "identity": "man woman male female american british born old".split(),
}


class KeywordBaseline(Scorer):
    name = "keyword-list baseline"
    measures = "toxicity"

    def __init__(self, role: str) -> None:
        super().__init__(0.5)
        self.measures = role  # type: ignore[misc]
        self._re = re.compile(r"\b(" + "|".join(map(re.escape, _KEYWORDS[role])) + r")\b", re.IGNORECASE)

    @property
    def version(self) -> str:
        return f"{len(_KEYWORDS[self.measures])} words"

    def _score(self, texts: list[str]) -> list[float]:
        return [1.0 if self._re.search(t) else 0.0 for t in texts]


def fig(f) -> str:  # type: ignore[no-untyped-def]
    return "n/a" if f.value is None else f"{f.value:.3f} [{f.ci.low:.3f}, {f.ci.high:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="texts for the throughput measurement")
    ap.add_argument("--hf-classifier", help="a local text-classifier directory to compare (toxicity role)")
    ap.add_argument("--labels", default=None, help="its positive labels, comma-separated")
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · Python {platform.python_version()}")
    print()
    print("| role | scorer | precision | recall | F1 | texts/s |")
    print("|---|---|---|---|---|---|")
    from audit.scorers import ROLES

    for role, default in ROLES.items():
        path = validation_set_path(role)
        items = load_role_set(path, role)  # a derived role (non_answer) relabels another role's set
        scorers: list[Scorer] = [build_scorer(role, ScorerSpec(name=default))]
        if role in _KEYWORDS:
            scorers.append(KeywordBaseline(role))  # type: ignore[arg-type]
        if args.hf_classifier and role == "toxicity":
            labels = args.labels.split(",") if args.labels else None
            scorers.append(build_scorer(role, ScorerSpec(name="hf-classifier", model=args.hf_classifier, labels=labels)))
        texts = [i.text for i in items]
        bulk = (texts * (args.n // len(texts) + 1))[: args.n]
        for s in scorers:
            v = validate(s, items, path.stem, "")
            t = time.perf_counter()
            s.score(bulk)
            rate = len(bulk) / (time.perf_counter() - t)
            print(f"| {role} | {s.name} ({s.version}) | {fig(v.precision)} | {fig(v.recall)} | {fig(v.f1)} | {rate:,.0f} |")
    print()
    print("validation sets: audit/scorers/data/<role>_validation.jsonl")


if __name__ == "__main__":
    main()
