"""Power of the default audit's gated metrics: does a model at half the fail bar pass?

For every gated metric in a run's report.json: its n, the true value halfway between the metric's
ideal and its fail bar, the chance that a model at that value *clears* the fail bar (status pass or
warn, never inconclusive or fail) at this n, and the n that reaches 80%. Raw rates are exact
(binomial sum over Wilson intervals); rates gated on their scorer-corrected figure are simulated
with the scorer's sensitivity and specificity on its labelled set, validated here. Metrics that are
not Wilson rates (gaps, ratios, bootstrap means) print "—" and are covered by their own tests.

    .venv/bin/python bench/power_design.py runs/<run>/report.json [--sims 200]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from audit.power import (
    clear_probability,
    corrected_clear_probability,
    half_bar,
    required_n,
)
from audit.scorers import ScorerSet


def _counts(validation: dict) -> tuple[tuple[int, int], tuple[int, int]]:
    tp, fn, tn, fp = (validation[k] for k in ("tp", "fn", "tn", "fp"))
    return (tp, tp + fn), (tn, tn + fp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--sims", type=int, default=200)
    args = ap.parse_args()
    report = json.loads(args.report.read_text())
    scorers = ScorerSet()
    print("| probe | metric | n | half-bar value | P(clear) raw | n for 80% raw | P(clear) corrected | n for 80% corrected |")
    print("|---|---|---|---|---|---|---|---|")
    for probe in report["probes"]:
        for m in probe["metrics"]:
            t = m.get("threshold") or {}
            if t.get("fail") is None or m.get("higher_is_better") is None or not m.get("n"):
                continue
            hib = m["higher_is_better"]
            ideal = m.get("ideal")
            ideal = (1.0 if hib else 0.0) if ideal is None else ideal
            target = half_bar(t["fail"], ideal)
            is_rate = (m.get("ci") or {}).get("method") == "wilson" or m.get("corrected") is not None
            if not is_rate:
                print(f"| {probe['id']} | {m['name']} | {m['n']} | {target:.3g} | — | — | — | — |")
                continue
            raw = clear_probability(m["n"], target, t["fail"], hib)
            need = required_n(target, t["fail"], hib)
            cor = need_c = "—"
            note = m.get("correction_note", "")
            if m.get("corrected") is not None and probe["scorers"]:
                info = next((s for s in probe["scorers"] if f"the {s.get('measures') or s['name']} scorer" in note),
                            probe["scorers"][0])
                sens, spec = _counts(scorers.get(info["measures"]).validation.model_dump())  # type: ignore[union-attr]
                if "flag's absence" in note:
                    sens, spec = spec, sens
                p = corrected_clear_probability(m["n"], target, t["fail"], hib, sens, spec, sims=args.sims)
                cor = f"{p:.2f}"
                for n in (50, 100, 150, 200, 300, 400, 600, 800, 1200):
                    if corrected_clear_probability(n, target, t["fail"], hib, sens, spec, sims=args.sims // 2) >= 0.8:
                        need_c = f"≤{n}"
                        break
                else:
                    need_c = ">1200"
            print(f"| {probe['id']} | {m['name']} | {m['n']} | {target:.3g} | {raw:.2f} | {need or '>20000'} | {cor} | {need_c} |")


if __name__ == "__main__":
    main()
