"""Power of every gated metric at each depth: does a model at half the fail bar clear it, does one at
twice the bar fail?

The item counts come from the real runner at each depth (``--depth quick|standard|thorough``), run on
an instant fixed-output backend (no model: only n matters here). For each gated metric:

- Wilson rates: the exact binomial chance that a model at half the bar (halfway from the ideal to the
  fail bar) *clears* the bar (status pass or warn), and that one at twice the bar fails; where the gate
  reads the scorer-corrected figure, the same chances simulated with the scorer erring at its labelled
  set's sensitivity and specificity (``audit.power.corrected_chances``).
- Group gaps: simulated through ``probes.stats.group_vs_rest`` with one group of one axis planted at the
  gap and every other output clean (the probe's own interval, family-wise over all groups).
- Means and ratios (mc2, expected maximum toxicity, exposure, worst ratio): "—" (no generic model of the
  per-item spread; their probes' tests plant faults directly).

    .venv/bin/python bench/power_design.py [--sims 200] [--depths quick,standard,thorough]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audit import AuditConfig, run_audit
from audit.cache import BatchCache
from audit.power import clear_probability, corrected_chances, fail_probability, half_bar
from probes import (
    Capabilities,
    Generation,
    GenerationParams,
    LoglikRequest,
    LoglikResult,
    ProgressFn,
    Prompt,
    all_probes,
)
from probes.stats import abs_interval, group_vs_rest
from reports import AuditReport, Metric, ModelInfo


class Instant:
    """A contract-only backend that answers at once: the same short reply, likelihood by length."""

    def capabilities(self) -> Capabilities:
        return Capabilities(chat_template=False, loglikelihood=True, max_context=2048)

    def info(self) -> ModelInfo:
        return ModelInfo(id="instant", backend="fixed-output", source="bench", parameters=0, dtype="none",
                         device="cpu", fingerprint_sha256=hashlib.sha256(b"instant").hexdigest(),
                         supports_loglikelihood=True)

    def generate(self, prompts: list[Prompt], params: GenerationParams | Sequence[GenerationParams],
                 progress: ProgressFn | None = None, *, cache: BatchCache | None = None) -> list[Generation]:
        if progress:
            progress(len(prompts))
        return [Generation(text="I am an AI model.", n_tokens=5, finish_reason="eos") for _ in prompts]

    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None, *,
                      cache: BatchCache | None = None) -> list[LoglikResult]:
        if progress:
            progress(len(requests))
        return [LoglikResult(logprob=-float(len(r.continuation)), n_tokens=max(1, len(r.continuation) // 4),
                             is_greedy=False) for r in requests]


def _gap_chances(n_templates: int, axis_sizes: list[int], gap: float, fail: float, sims: int) -> tuple[float, float]:
    """(chance to clear, chance to fail) the gap bar when one group of the first axis has outputs
    flagged at rate ``gap`` and every other output is clean."""
    m = sum(axis_sizes)
    level = 1 - 0.05 / m
    rng = np.random.default_rng(0)
    clear = fail_n = 0
    for s in range(sims):
        low = high = 0.0
        for a, size in enumerate(axis_sizes):
            table = np.zeros((n_templates, size), dtype=bool)
            if a == 0:
                table[:, 0] = rng.random(n_templates) < gap
            for _, ci in group_vs_rest(table.tolist(), level=level, seed=s, resamples=4000):
                lo, hi = abs_interval(ci)
                low, high = max(low, lo), max(high, hi)
        clear += high <= fail
        fail_n += low > fail
    return clear / sims, fail_n / sims


def _counts(report: AuditReport, probe_id: str, measures: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    for s in report.probe(probe_id).scorers:
        v = s.validation
        if (s.measures or s.name) == measures and v is not None and None not in (v.tp, v.fn, v.tn, v.fp):
            assert v.tp is not None and v.fn is not None and v.tn is not None and v.fp is not None
            return (v.tp, v.tp + v.fn), (v.tn, v.tn + v.fp)
    return None


def _row(report: AuditReport, probe_id: str, m: Metric, sims: int) -> tuple[str, str] | None:
    t = m.threshold
    if t is None or t.fail is None or m.higher_is_better is None or not m.n:
        return None
    hib = m.higher_is_better
    ideal = m.ideal if m.ideal is not None else (1.0 if hib else 0.0)
    half, twice = half_bar(t.fail, ideal), min(1.0, max(0.0, ideal + 2 * (t.fail - ideal)))
    if m.name.endswith("_gap"):
        groups = [g.group.split(":", 1)[0] for g in m.breakdowns[0].groups]
        sizes = [groups.count(a) for a in dict.fromkeys(groups)]
        n_templates = m.n // len(groups)
        c, _ = _gap_chances(n_templates, sizes, half, t.fail, sims)
        _, f = _gap_chances(n_templates, sizes, twice, t.fail, sims)
        return f"{c:.2f}", f"{f:.2f}"
    if m.ci is None or m.ci.method != "wilson" and m.corrected is None:
        return None
    if t.fail == ideal:
        return "n/a (zero tolerance)", f"{1 - (1 - twice) ** m.n:.2f}" if twice > 0 else "—"
    if m.corrected is not None and m.corrected.value is not None:
        note = m.correction_note
        measures = note.split("the ", 1)[1].split(" scorer", 1)[0] if "the " in note else ""
        counts = _counts(report, probe_id, measures)
        if counts is not None:
            sens, spec = counts
            if "flag's absence" in note:
                sens, spec = spec, sens
            c, _ = corrected_chances(m.n, half, t.fail, hib, sens, spec, sims=sims)
            _, f = corrected_chances(m.n, twice, t.fail, hib, sens, spec, sims=sims)
            raw_c, raw_f = clear_probability(m.n, half, t.fail, hib), fail_probability(m.n, twice, t.fail, hib)
            return f"{c:.2f} (raw {raw_c:.2f})", f"{f:.2f} (raw {raw_f:.2f})"
    return f"{clear_probability(m.n, half, t.fail, hib):.2f}", f"{fail_probability(m.n, twice, t.fail, hib):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--depths", default="quick,standard,thorough")
    args = ap.parse_args()
    depths = args.depths.split(",")
    rows: dict[tuple[str, str], dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for depth in depths:
            config = AuditConfig(model="instant", probes=list(all_probes()), depth=depth,  # type: ignore[arg-type]
                                 out=Path(tmp) / depth, pii={"nlp_model": "none"},
                                 probe_params={"footprint.compute": {"repeats": 2, "batch": 2, "max_new_tokens": 4}})
            report = run_audit(config, model=Instant())
            for p in report.probes:
                for m in p.metrics:
                    r = _row(report, p.id, m, args.sims)
                    if r is not None:
                        rows.setdefault((p.id, m.name), {})[depth] = f"{m.n} | {r[0]} | {r[1]}"
    head = " | ".join(f"{d}: n | P(clear at half) | P(fail at twice)" for d in depths)
    print(f"| probe | metric | {head} |")
    print("|---|---|" + "---|" * (3 * len(depths)))
    for (pid, name), by in rows.items():
        print(f"| {pid} | {name} | " + " | ".join(by.get(d, "— | — | —") for d in depths) + " |")


if __name__ == "__main__":
    main()
