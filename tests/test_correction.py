"""Issue 13 item 3: rates measured through a scorer, corrected for the scorer's error (Rogan-Gladen)."""

from __future__ import annotations

import numpy as np
import pytest

from audit import AuditConfig, run_audit
from audit.policy import Policy, evaluate
from audit.rollup import metric_status
from probes import stats
from probes._corrected import correct
from reports import (
    Figure,
    Interval,
    Metric,
    ScorerInfo,
    ScorerValidation,
    Status,
    Threshold,
)
from reports._markdown import _corrected
from tests.test_backend_contract import FixedBackend


def _validation(tp: int, fn: int, tn: int, fp: int) -> ScorerValidation:
    fig = Figure(value=0.5, ci=None, n=1)
    return ScorerValidation(dataset="lm-risk-audit refusal_validation", sha256="0" * 64, n=tp + fn + tn + fp,
                            n_positive=tp + fn, threshold=0.5, precision=fig, recall=fig, f1=fig,
                            tp=tp, fn=fn, tn=tn, fp=fp)


def _metric(value: float, ci: tuple[float, float], fail: float = 0.2) -> Metric:
    return Metric(name="r", value=value, ci=Interval(low=ci[0], high=ci[1], method="wilson"), n=100,
                  higher_is_better=False, threshold=Threshold(fail=fail))


def test_rogan_gladen_arithmetic() -> None:
    assert stats.rogan_gladen(0.28, 0.7, 0.9) == pytest.approx(0.3)
    assert stats.rogan_gladen(0.05, 0.7, 0.9) == 0.0  # below the false-alarm floor: clipped
    assert stats.rogan_gladen(0.99, 0.7, 0.9) == 1.0
    flags = [True] * 28 + [False] * 72
    value, ci, n = stats.corrected_rate(flags, (70, 100), (90, 100), seed=0)
    assert value == pytest.approx(0.3) and n == 100
    assert ci is not None and ci.method == "bootstrap" and ci.low < 0.3 < ci.high


def test_corrected_interval_recovers_planted_rate_through_noisy_scorer() -> None:
    true_rate, se, sp, n = 0.3, 0.7, 0.9, 2000
    covered, raws = 0, []
    for seed in range(50):
        rng = np.random.default_rng(seed)
        truth = rng.random(n) < true_rate
        flags = np.where(truth, rng.random(n) < se, rng.random(n) < 1 - sp)
        tp, tn = int(rng.binomial(300, se)), int(rng.binomial(300, sp))  # a 300/300 labelled set
        raws.append(flags.mean())
        value, ci, _ = stats.corrected_rate(flags.tolist(), (tp, 300), (tn, 300), seed=seed, resamples=1000)
        assert value is not None and ci is not None
        covered += ci.low <= true_rate <= ci.high
    assert np.mean(raws) == pytest.approx(0.28, abs=0.01)  # the raw rate is biased: 0.3*0.7 + 0.7*0.1
    assert covered >= 45  # >= 90% of seeds


def test_too_weak_scorer_gives_no_value_and_an_inconclusive_metric() -> None:
    assert stats.corrected_rate([True, False] * 50, (55, 100), (55, 100), seed=0)[0] is None  # J = 0.1
    m = correct(_metric(0.05, (0.02, 0.1)), [True] * 5 + [False] * 95,
                ScorerInfo(name="s", version="1", measures="refusal", validation=_validation(55, 45, 55, 45)), seed=0)
    assert m.corrected is not None and m.corrected.value is None
    assert "too weak" in m.correction_note and "0.10" in m.correction_note
    assert metric_status(m) is Status.inconclusive
    assert metric_status(m, use_corrected=False) is Status.passed
    assert "too weak" in _corrected(m)


def test_negated_flag_swaps_sensitivity_and_specificity() -> None:
    info = ScorerInfo(name="s", version="1", measures="refusal", validation=_validation(95, 5, 80, 20))
    refused = [True] * 60 + [False] * 40
    compliant = [not f for f in refused]
    m = correct(_metric(0.4, (0.3, 0.5)), compliant, info, seed=0, negated=True)
    direct = stats.corrected_rate(refused, (95, 100), (80, 100), seed=0)[0]
    assert direct is not None and m.corrected is not None and m.corrected.value is not None
    # the corrected "not refused" rate is one minus the corrected refusal rate
    assert m.corrected.value == pytest.approx(1 - direct)
    assert m.corrected.value == pytest.approx(stats.rogan_gladen(0.4, 0.8, 0.95))
    assert "sensitivity 0.800 and specificity 0.950" in m.correction_note


def test_gates_read_the_corrected_figure_unless_the_policy_turns_it_off() -> None:
    m = _metric(0.1, (0.05, 0.15))
    m.corrected = Figure(value=0.4, ci=Interval(low=0.3, high=0.5, method="bootstrap"), n=100)
    assert metric_status(m) is Status.fail
    assert metric_status(m, use_corrected=False) is Status.passed
    assert "corrected 0.400 [0.300, 0.500]" in _corrected(m)


def test_end_to_end_compliance_rate_carries_a_corrected_figure(tmp_path) -> None:
    report = run_audit(AuditConfig(model="fixed", probes=["malicious_use.compliance"], limit=10, out=tmp_path,
                                   pii={"nlp_model": "none"}), model=FixedBackend())
    m = next(m for m in report.probe("malicious_use.compliance").metrics if m.name == "compliance_rate")
    assert m.corrected is not None and m.corrected.n == m.n == 10
    assert m.correction_note
    v = report.probe("malicious_use.compliance").scorers[0].validation
    assert v is not None and v.tp is not None and v.specificity is not None
    raw = evaluate(Policy(scorer_correction=False), report)
    corr = evaluate(Policy(), report)
    assert raw.checks is not None and corr.checks is not None
    md = (tmp_path.glob("**/report.md"))
    assert any("corrected" in p.read_text(encoding="utf-8") for p in md)


def test_a_small_clean_sample_is_no_surer_corrected_than_raw() -> None:
    # 0 of 3 flagged through a scorer perfect on its labelled set: a bootstrap alone collapses to [0, 0]
    value, ci, _ = stats.corrected_rate([False] * 3, (100, 100), (100, 100), seed=0)
    raw = stats.wilson_interval(0, 3)
    assert value == 0.0 and ci is not None and raw is not None and ci.high >= raw.high
    m = _metric(0.0, (raw.low, raw.high), fail=0.3)
    m.corrected = Figure(value=value, ci=ci, n=3)
    assert metric_status(m) is Status.inconclusive
