"""Benchmark: every offline scorer of each role on the frozen held-out sets, side by side.

Not a test. For each role, each registered scorer that needs no user model is validated on the
role's held-out set (audit/scorers/data/heldout/, written by authors who saw neither the scorers nor
the training texts, frozen by SHA256SUMS) and, for contrast, on its development set and on the
retired first held-out set (train/ROLE_v1.jsonl, training material for the heads since). Precision,
recall, specificity and F1 carry 95% intervals. For refusal, the three-way judgement (refusal /
attempt / non-answer) of each refusal x non-answer scorer pair is scored on the held-out replies,
with the requests. For toxicity, the functional tests and the identity-term false-positive rate.

    .venv/bin/python bench/bench_scorers_heldout.py [--roles toxicity,refusal,...]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from audit.scorers import ROLES, ScorerSpec, build_scorer, scorer_data, validate  # noqa: E402
from audit.scorers._registry import all_scorers  # noqa: E402
from audit.scorers._validation import (  # noqa: E402
    functional_tests,
    heldout_set_path,
    load_role_set,
    validate_heldout,
    validate_on_project_set,
)
from probes import stats  # noqa: E402


def fig(f) -> str:  # type: ignore[no-untyped-def]
    if f.value is None:
        return "n/a"
    return f"{f.value:.3f} [{f.ci.low:.3f}, {f.ci.high:.3f}]"


def candidates(role: str) -> list[str]:
    return [n for n, c in all_scorers().items() if c.measures == role and not c.takes_model]


def three_way(refusal_name: str, nonanswer_name: str) -> tuple[float, tuple[float, float], int, dict[str, str]]:
    """Accuracy of the three-way judgement on the held-out refusal replies (with their requests)."""
    path = heldout_set_path("refusal")
    assert path is not None
    items = [i for i in load_role_set(path, "refusal") if i.judgement]
    ref = build_scorer("refusal", ScorerSpec(name=refusal_name))
    na = build_scorer("non_answer", ScorerSpec(name=nonanswer_name))
    texts, prompts = [i.text for i in items], [i.prompt or "" for i in items]
    refused = ref.flags(ref.score(texts))
    empty = na.flags(na.score(texts, prompts))
    said = ["refusal" if r else ("non_answer" if e else "attempt") for r, e in zip(refused, empty)]
    right = sum(s == i.judgement for s, i in zip(said, items))
    ci = stats.wilson_interval(right, len(items))
    per = {}
    for j in ("refusal", "attempt", "non_answer"):
        rows = [s == i.judgement for s, i in zip(said, items) if i.judgement == j]
        per[j] = f"{sum(rows)}/{len(rows)}"
    return right / len(items), (ci.low, ci.high), len(items), per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roles", default=",".join(ROLES))
    args = ap.parse_args()
    print(f"# held-out scorer benchmark ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)\n")
    for role in args.roles.split(","):
        held = heldout_set_path(role)
        print(f"## {role} (default: {ROLES[role]}; held-out {held.name if held else 'none'})\n")
        print("| scorer | held-out F1 | precision | recall | specificity | n | development F1 | retired v1 F1 | s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in candidates(role):
            t0 = time.perf_counter()
            s = build_scorer(role, ScorerSpec(name=name))
            h = validate_heldout(s)
            d = validate_on_project_set(s)
            v1 = scorer_data(f"train/{role}_v1.jsonl")
            if role == "non_answer":
                v1 = scorer_data("train/refusal_v1.jsonl")
            r1 = validate(s, load_role_set(v1, role), v1.stem, "") if v1.is_file() else None
            dt = time.perf_counter() - t0
            assert h is not None
            print(f"| {name} | {fig(h.f1)} | {fig(h.precision)} | {fig(h.recall)} | {fig(h.specificity)} | {h.n} | "
                  f"{fig(d.f1)} | {fig(r1.f1) if r1 else 'n/a'} | {dt:.1f} |")
            if role == "toxicity":
                groups, fp = functional_tests(s)
                acc = sum(g.value * g.n for g in groups if g.value is not None) / max(1, sum(g.n for g in groups))
                print(f"|   ↳ functional accuracy {acc:.3f} over {len(groups)} functionalities; identity-term "
                      f"false-positive rate {fig(fp) if fp else 'n/a'} (n {fp.n if fp else 0}) |||||||||")
        print()
        if role == "refusal" and "non_answer" in ROLES:
            print("Three-way judgement (refusal / attempt / non-answer) on the held-out replies, with requests:\n")
            print("| refusal scorer | non-answer scorer | accuracy | n | right by true judgement |")
            print("|---|---|---|---|---|")
            for r in candidates("refusal"):
                for n in candidates("non_answer"):
                    acc, (lo, hi), total, per = three_way(r, n)
                    print(f"| {r} | {n} | {acc:.3f} [{lo:.3f}, {hi:.3f}] | {total} | "
                          f"{', '.join(f'{k} {v}' for k, v in per.items())} |")
            print()


if __name__ == "__main__":
    main()
