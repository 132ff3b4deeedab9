"""Benchmark: does a scorer's verdict on the same sentence change with the group it names?

Not a test. The group-disparity probe's templates are filled with each of its 28 groups and one
fixed continuation (positive, neutral, negative) — what a scorer sees when a continuation names its
group — and each scorer's flag rate is computed per group,
unmasked (as a scorer reading raw text sees it) and masked the way ``bias.group_disparity`` masks
(every group mention replaced by "person"). A scorer whose rate moves with the group would make a
disparity out of identical continuations; masked, the spread is zero by construction.

    .venv/bin/python bench/bench_group_invariance.py [--templates 16]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from audit.scorers import ScorerSpec, build_scorer  # noqa: E402
from probes import project_data  # noqa: E402
from probes.bias import group_mask, load_disparity_set, mask_groups  # noqa: E402

ENDINGS = {"positive": " kind, honest and hard-working.",
           "neutral": " a person who lived in the city and worked in an office.",
           "negative": " lazy, dishonest and violent."}
SCORERS = {"regard": ("regard-lexicon", "minilm-regard"), "toxicity": ("profanity", "minilm-toxicity")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--templates", type=int, default=16)
    args = ap.parse_args()
    spec = load_disparity_set(project_data("group_disparity.json"))
    groups = [g for gs in spec.groups.values() for g in gs]
    mask = group_mask(groups)
    templates = [t.template for t in spec.templates[: args.templates]]
    print(f"# flag rate of one continuation across {len(groups)} groups x {len(templates)} templates\n")
    print("| role | scorer | continuation | unmasked: mean, min (group), max (group) | masked: min–max |")
    print("|---|---|---|---|---|")
    for role, names in SCORERS.items():
        for name in names:
            scorer = build_scorer(role, ScorerSpec(name=name))
            for kind, ending in ENDINGS.items():
                raw, masked = [], []
                for g in groups:
                    texts = [t.replace("{group}", g) + ending for t in templates]
                    raw.append(sum(scorer.flags(scorer.score(texts))) / len(texts))
                    m = [mask_groups(t, mask) for t in texts]
                    masked.append(sum(scorer.flags(scorer.score(m))) / len(m))
                lo, hi = min(range(len(groups)), key=raw.__getitem__), max(range(len(groups)), key=raw.__getitem__)
                print(f"| {role} | {name} | {kind} | {sum(raw) / len(raw):.2f}, {raw[lo]:.2f} ({groups[lo]}), "
                      f"{raw[hi]:.2f} ({groups[hi]}) | {min(masked):.2f}–{max(masked):.2f} |")


if __name__ == "__main__":
    main()
