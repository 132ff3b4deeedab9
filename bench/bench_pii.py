"""Benchmark: the PII/secret detector's precision and recall by entity type on the project's
labelled set, with the spaCy pipeline and in pattern-only mode, and its throughput.

Not a test. Text-level figures: a type counts as found in a text when any span of it is.

    .venv/bin/python bench/bench_pii.py [--n 2000]
"""

from __future__ import annotations

import argparse
import logging
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

from audit.scorers import scorer_data  # noqa: E402
from audit.scorers.pii import LabelledPII, PIIDetector, detection_figures  # noqa: E402
from probes._datasets import read_jsonl  # noqa: E402


def fmt(fig) -> str:  # type: ignore[no-untyped-def]
    value, ci, n = fig
    return "n/a (n=0)" if value is None else f"{value:.2f} [{ci.low:.2f}, {ci.high:.2f}] (n={n})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="texts for the throughput measurement")
    args = ap.parse_args()
    items = read_jsonl(scorer_data("pii_validation.jsonl"), LabelledPII)
    detectors = {"spaCy + patterns": PIIDetector(), "patterns only": PIIDetector(nlp_model="none")}
    figures = {name: detection_figures(d, items) for name, d in detectors.items()}
    print(f"{len(items)} labelled texts; spaCy pipeline: {detectors['spaCy + patterns'].nlp_model}")
    print()
    print("| entity type | " + " | ".join(f"{n}: precision | {n}: recall" for n in detectors) + " |")
    print("|---|" + "---|---|" * len(detectors))
    for t in figures["spaCy + patterns"]:
        print(f"| {t} | " + " | ".join(f"{fmt(figures[n][t][0])} | {fmt(figures[n][t][1])}" for n in detectors) + " |")
    texts = [i.text for i in items]
    bulk = (texts * (args.n // len(texts) + 1))[: args.n]
    print()
    for name, d in detectors.items():
        t0 = time.perf_counter()
        d.analyze(bulk)
        print(f"{name}: {len(bulk) / (time.perf_counter() - t0):,.0f} texts/s")


if __name__ == "__main__":
    main()
