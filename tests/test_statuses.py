"""Statuses that say what the evidence says: fail / inconclusive / warn / pass against the bars,
incomplete areas and audits, smoke runs blocked by every policy, and the power of each gated
rate stated (and checked by simulation)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from audit import AuditConfig, run_audit
from audit.errors import BadInput
from audit.policy import Policy, evaluate, load_policy
from audit.power import detectable_rate, detectable_value
from audit.rollup import combine, metric_status, roll_up, severity
from probes.stats import rate
from reports import (
    AreaReport,
    AuditReport,
    Interval,
    Metric,
    ModelInfo,
    ProbeReport,
    RiskReport,
    RunInfo,
    Status,
    Threshold,
    render_junit,
    render_markdown,
)
from taxonomy import Automation, load_taxonomy
from tests.test_backend_contract import FixedBackend

S = Status


def _metric(value: float | None, ci: tuple[float, float] | None, hib: bool | None, warn: float | None = None,
            fail: float | None = None, n: int = 50, method: str = "wilson") -> Metric:
    return Metric(name="m", value=value, n=n, higher_is_better=hib,
                  ci=None if ci is None else Interval(low=ci[0], high=ci[1], method=method),  # type: ignore[arg-type]
                  threshold=None if warn is None and fail is None else Threshold(warn=warn, fail=fail))


@pytest.mark.parametrize("value, ci, hib, warn, fail, expected", [
    # lower is better, warn 0.2, fail 0.5
    (0.10, (0.05, 0.30), False, 0.2, 0.5, S.passed),
    (0.30, (0.20, 0.45), False, 0.2, 0.5, S.warn),  # interval clear of the fail bar, point past warn
    (0.30, (0.10, 0.60), False, 0.2, 0.5, S.inconclusive),  # straddles: cannot rule out a failing model
    (0.10, (0.01, 0.60), False, 0.2, 0.5, S.inconclusive),  # a good point does not rescue a wide interval
    (0.60, (0.40, 0.80), False, 0.2, 0.5, S.inconclusive),  # point past fail, interval straddles: the cautious read
    (0.70, (0.55, 0.85), False, 0.2, 0.5, S.fail),
    (0.20, (0.10, 0.50), False, 0.2, 0.5, S.passed),  # on a bar is on its acceptable side
    (0.60, (0.50, 0.70), False, 0.2, 0.5, S.inconclusive),  # lower end on the bar: not wholly past it
    (0.10, None, False, 0.2, 0.5, S.inconclusive),  # no interval: nothing rules a failure out
    (0.70, None, False, 0.2, 0.5, S.inconclusive),  # ... nor shows one clearly
    (None, None, False, 0.2, 0.5, S.not_evaluated),
    # higher is better, warn 0.7, fail 0.5 (the mirror image)
    (0.90, (0.80, 0.95), True, 0.7, 0.5, S.passed),
    (0.65, (0.55, 0.75), True, 0.7, 0.5, S.warn),
    (0.60, (0.40, 0.80), True, 0.7, 0.5, S.inconclusive),
    (0.45, (0.30, 0.55), True, 0.7, 0.5, S.inconclusive),
    (0.30, (0.20, 0.45), True, 0.7, 0.5, S.fail),
    # only a warn bar: the point decides, no interval rule
    (0.40, (0.10, 0.70), True, 0.5, None, S.warn),
    (0.60, (0.20, 0.90), True, 0.5, None, S.passed),
    (0.60, None, True, 0.5, None, S.passed),
    # the example: a gap of 0.167 [-0.323, 0.622] against 0.25 used to pass
    (0.167, (-0.323, 0.622), False, 0.25, 0.25, S.inconclusive),
    # informational
    (0.5, (0.4, 0.6), None, 0.2, 0.5, None),
    (0.5, (0.4, 0.6), False, None, None, None),
])
def test_metric_status_reads_the_interval_against_the_fail_bar(
        value: float | None, ci: tuple[float, float] | None, hib: bool | None, warn: float | None,
        fail: float | None, expected: Status | None) -> None:
    assert metric_status(_metric(value, ci, hib, warn, fail)) is expected


def test_inconclusive_ranks_with_warn_and_wins_the_tie_incomplete_loses_to_fail() -> None:
    assert severity(S.inconclusive) == severity(S.warn) < severity(S.incomplete) == severity(S.not_evaluated)
    assert severity(S.incomplete) < severity(S.fail)
    assert combine([S.warn, S.inconclusive]) is S.inconclusive and combine([S.inconclusive, S.warn]) is S.inconclusive
    assert combine([S.passed, S.inconclusive, S.manual]) is S.inconclusive
    assert combine([S.inconclusive, S.fail]) is S.fail
    assert combine([S.passed, S.incomplete]) is S.incomplete and combine([S.incomplete, S.inconclusive]) is S.incomplete
    assert combine([S.incomplete, S.fail]) is S.fail and combine([S.error, S.incomplete]) is S.error


# --- roll-up: incomplete areas and audits -------------------------------------------------------

def _probe(pid: str, status: Status) -> ProbeReport:
    return ProbeReport(id=pid, version="1", description="", kind="static", risks=[], status=status)


def _every_probe() -> list[str]:
    tax = load_taxonomy()
    return list(dict.fromkeys(p for r in tax.risks() if r.automation is not Automation.manual for p in r.probes))


def _statuses(reports: list[ProbeReport]) -> tuple[dict[str, Status], Status]:
    areas, summary = roll_up(load_taxonomy(), reports)
    return {a.id: a.status for a in areas}, summary.status


def test_a_full_audit_is_not_incomplete() -> None:
    areas, overall = _statuses([_probe(p, S.passed) for p in _every_probe()])
    assert set(areas.values()) == {S.passed} and overall is S.passed


def test_an_area_with_a_selected_risk_not_evaluated_is_incomplete_never_pass() -> None:
    every = _every_probe()
    tax = load_taxonomy()
    first_of_i = tax.areas[0].risks[0].probes[0]
    areas, overall = _statuses([_probe(p, S.passed) for p in every if p != first_of_i])
    assert areas["I"] is S.incomplete and overall is S.incomplete
    assert all(s is S.passed for a, s in areas.items() if a != "I")
    # a probe that ran but could not be evaluated on this model leaves the same gap
    areas, overall = _statuses([_probe(p, S.not_evaluated if p == first_of_i else S.passed) for p in every])
    assert areas["I"] is S.incomplete and overall is S.incomplete
    # inconclusive and warn are replaced too; a fail stays a fail
    areas, overall = _statuses([_probe(p, S.inconclusive) for p in every if p != first_of_i])
    assert areas["I"] is S.incomplete and areas["II"] is S.inconclusive and overall is S.incomplete
    second = next(p for r in tax.areas[0].risks for p in r.probes if p != first_of_i)
    areas, overall = _statuses([_probe(p, S.fail if p == second else S.passed) for p in every if p != first_of_i])
    assert areas["I"] is S.fail and overall is S.fail


def test_three_items_of_one_probe_are_not_an_overall_pass() -> None:
    areas, overall = _statuses([_probe("misinformation.truthfulness_mc", S.passed)])
    assert overall is S.incomplete
    assert areas["III"] is S.incomplete  # its other probes did not run
    assert areas["I"] is S.not_evaluated  # nothing in it ran: not incomplete, not pass


# --- power, stated ------------------------------------------------------------------------------

def test_detectable_value_is_past_the_bar_and_shrinks_towards_it_with_n() -> None:
    d100 = detectable_rate(100, 0.5, False)
    assert d100 is not None and 0.5 < d100 < 0.75
    ds = [detectable_rate(n, 0.5, False) for n in (30, 100, 400, 1000)]
    assert all(a is not None and b is not None and a > b > 0.5 for a, b in zip(ds, ds[1:]))
    up = detectable_rate(100, 0.5, True)
    assert up is not None and up == pytest.approx(1 - d100, abs=2e-4) and up < 0.5  # the mirror image
    assert detectable_rate(1, 0.9, False) is None  # one item can never clear a 0.9 bar
    assert detectable_rate(0, 0.5, False) is None
    zero = detectable_rate(30, 0.0, False)  # a zero-tolerance bar: one hit fails it
    assert zero == pytest.approx(1 - 0.2 ** (1 / 30), abs=2e-4)


def test_detectable_value_is_exactly_where_the_binomial_power_reaches_80_percent() -> None:
    binom = pytest.importorskip("scipy.stats").binom
    from probes.stats import wilson_interval

    for n, bar in ((40, 0.3), (100, 0.5), (250, 0.1)):
        d = detectable_rate(n, bar, False)
        assert d is not None
        k = next(k for k in range(n + 1) if wilson_interval(k, n).low > bar)  # type: ignore[union-attr]
        assert binom.sf(k - 1, n, d) >= 0.8 > binom.sf(k - 1, n, d - 1e-3)


def test_detectable_for_every_kind_of_gated_metric() -> None:
    gated = _metric(0.3, (0.2, 0.4), False, 0.2, 0.5, n=100)
    assert detectable_value(gated) == detectable_rate(100, 0.5, False)
    assert detectable_value(_metric(0.3, (0.2, 0.4), False, 0.2, None, n=100)) is None  # no fail bar
    assert detectable_value(_metric(0.3, None, False, 0.2, 0.5, n=100)) is None
    assert detectable_value(_metric(0.3, (0.2, 0.4), None, 0.2, 0.5, n=100)) is None
    # a bootstrap mean: the bar plus (1.96 + 0.84) standard errors, the se read off the interval
    mean = detectable_value(_metric(0.3, (0.2, 0.4), False, 0.2, 0.5, n=100, method="bootstrap"))
    assert mean == pytest.approx(0.5 + 2.8016 * 0.1 / 1.96, abs=1e-3)
    low_is_bad = detectable_value(_metric(0.8, (0.7, 0.9), True, 0.6, 0.5, n=100, method="bootstrap"))
    assert low_is_bad == pytest.approx(0.5 - 2.8016 * 0.1 / 1.96, abs=1e-3)


def test_detectable_gap_is_where_a_planted_gap_fails_four_times_in_five() -> None:
    """A between-group gap: one group planted at the detectable gap against a clean rest fails its
    family-wise interval in about 80% of draws (and clearly less just below it)."""
    from audit.power import detectable_gap
    from probes.stats import abs_interval, group_vs_rest

    level = 1 - 0.05 / 6
    d = detectable_gap(32, 64, 0.25, level)
    assert d is not None and 0.25 < d < 1.0

    def fail_share(gap: float) -> float:
        rng = np.random.default_rng(3)
        fails = 0
        for s in range(150):
            table = np.zeros((32, 3), dtype=bool)
            table[:, 0] = rng.random(32) < gap
            _, ci = group_vs_rest(table.tolist(), level=level, seed=s, resamples=2000)[0]
            fails += abs_interval(ci)[0] > 0.25
        return fails / 150

    assert fail_share(d) >= 0.72 and fail_share(d - 0.12) < 0.6


def _fail_share(p: float, n: int, bar: float, draws: int = 400, seed: int = 7) -> float:
    rng = np.random.default_rng(seed)
    fails = 0
    for row in rng.random((draws, n)) < p:
        value, ci, k = rate([bool(x) for x in row])
        m = Metric(name="m", value=value, ci=ci, n=k, higher_is_better=False, threshold=Threshold(warn=bar, fail=bar))
        fails += metric_status(m) is S.fail
    return fails / draws


def test_a_model_at_its_detectable_value_fails_four_times_in_five() -> None:
    n, bar = 100, 0.5
    d = detectable_rate(n, bar, False)
    assert d is not None
    assert _fail_share(d, n, bar) >= 0.75  # 0.8 expected; 400 draws have a standard error of 0.02
    assert _fail_share(bar, n, bar) <= 0.05  # at the bar itself a fail is rare: fail means clear evidence


# --- policy: inconclusive checks and smoke runs -------------------------------------------------

def _report(metric: Metric, smoke: bool = False) -> AuditReport:
    probe = ProbeReport.model_construct(id="x.y", risks=["I.1"], metrics=[metric], status=metric.status)
    risk = RiskReport.model_construct(id="I.1", name="a risk", status=metric.status, probes=["x.y"])
    return AuditReport.model_construct(
        areas=[AreaReport.model_construct(id="I", name="area one", risks=[risk])], probes=[probe],
        run=RunInfo.model_construct(smoke=smoke), config={"limit": 3} if smoke else {},
        model=ModelInfo.model_construct(id="m"))


@pytest.mark.parametrize("setting, severity_, count", [("warn", "warn", 1), ("block", "block", 1), ("ignore", None, 0)])
def test_each_inconclusive_metric_is_a_check_at_the_policys_severity(setting: str, severity_: str | None,
                                                                     count: int) -> None:
    m = _metric(0.3, (0.1, 0.6), False, 0.2, 0.5, n=20)
    m.status, m.detectable = metric_status(m), 0.81
    report = _report(m)
    report.policy = evaluate(Policy(inconclusive=setting), report)  # type: ignore[arg-type]
    checks = [c for c in report.policy.checks if c.metric == "m"]
    assert len(checks) == count
    if checks:
        (c,) = checks
        assert c.severity == severity_ and not c.passed and c.area == "I" and c.n == 20
        assert "inconclusive" in c.message and "0.5" in c.message and ">= 0.81 with 80% power" in c.message
        assert report.policy.exit_code == (1 if setting == "block" else 0)
        # JUnit follows the severity: a failure when blocking, a passing case with system-out when warning
        root = ET.fromstring(render_junit(report))
        case = next(tc for tc in root.iter("testcase") if tc.get("name") == c.name)
        assert (case.find("failure") is not None) is (setting == "block")
        assert (case.find("system-out") is not None) is (setting == "warn")


def test_inconclusive_setting_is_validated_and_defaults_to_warn(tmp_path: Path) -> None:
    assert Policy().inconclusive == "warn" and load_policy(None).inconclusive == "warn"
    bad = tmp_path / "p.yaml"
    bad.write_text("inconclusive: maybe\n")
    with pytest.raises(BadInput, match="inconclusive"):
        load_policy(bad)


def test_a_smoke_report_is_blocked_by_any_policy() -> None:
    m = _metric(0.0, (0.0, 0.1), False, 0.2, 0.5, n=40)
    m.status = metric_status(m)
    assert m.status is S.passed
    report = _report(m, smoke=True)
    for policy in (Policy(), Policy(severity="warn", inconclusive="ignore", errored_probes="ignore")):
        gate = evaluate(policy, report)
        (smoke,) = [c for c in gate.checks if c.name == "not a smoke run"]
        assert smoke.severity == "block" and not smoke.passed and gate.exit_code == 1
        assert smoke.message == "smoke run (--limit 3): not evidence for a release"
    assert not [c for c in evaluate(Policy(), _report(m)).checks if c.name == "not a smoke run"]


def test_a_limit_run_is_a_smoke_run_and_the_default_policy_blocks_it(tmp_path: Path) -> None:
    probes = ["interaction.identity"]
    report = run_audit(AuditConfig(model="fixed", probes=probes, limit=3, out=tmp_path / "run",
                                   pii={"nlp_model": "none"}, policy="default"), model=FixedBackend())
    assert report.run.smoke and report.policy is not None and report.policy.exit_code == 1
    assert any(c.name == "not a smoke run" and c.severity == "block" for c in report.policy.blocking_failures)
    assert report.summary.status is S.incomplete  # one probe of a 21-risk taxonomy: never an overall pass
    assert {a.id: a.status for a in report.areas}["V"] is S.incomplete  # V.1 and V.2 did not run
    # three items cannot rule out a 30% rate of the model ascribing itself an identity
    identity = {m.name: m for m in report.probe("interaction.identity").metrics}
    gated = [m for m in identity.values() if m.threshold is not None and m.threshold.fail is not None]
    assert gated and all(m.status in (S.inconclusive, S.fail) for m in gated)
    for m in gated:
        assert m.threshold is not None and m.threshold.fail is not None
        if m.ci is not None and m.ci.method == "wilson" and m.detectable is not None:
            assert (m.detectable < m.threshold.fail) if m.higher_is_better else (m.detectable > m.threshold.fail)
    shown = next(m for m in gated if m.detectable is not None)
    md = (tmp_path / "run" / "report.md").read_text()
    assert md == render_markdown(report)
    assert "SMOKE RUN (`--limit 3`)" in md.split("## Executive summary")[0]
    assert "### What pass, warn, inconclusive and fail mean" in md and "**incomplete**" in md
    assert "flags as fail (80% power)" in md
    assert f"≥ {shown.detectable:.3f}" in md
    # the full run of the same probes is no smoke run and carries no smoke check
    full = run_audit(AuditConfig(model="fixed", probes=probes, out=tmp_path / "full", pii={"nlp_model": "none"},
                                 policy="default"), model=FixedBackend())
    assert not full.run.smoke and full.policy is not None
    assert not [c for c in full.policy.checks if c.name == "not a smoke run"]
    assert "SMOKE RUN" not in (tmp_path / "full" / "report.md").read_text()


def test_a_zero_tolerance_bar_fails_on_one_occurrence_and_passes_on_none() -> None:
    """A fail bar equal to the ideal (no planted canary may be extracted) can never be cleared by an
    interval, so it is read on the count: one extraction in 8 fails, none passes."""
    none = _metric(0.0, (0.0, 0.324), False, 0.0, 0.0, n=8).model_copy(update={"ideal": 0.0})
    one = _metric(0.125, (0.022, 0.471), False, 0.0, 0.0, n=8).model_copy(update={"ideal": 0.0})
    assert metric_status(none) is Status.passed and metric_status(one) is Status.fail
    # without an ideal on the bar the interval rule stands
    assert metric_status(_metric(0.0, (0.0, 0.324), False, 0.0, 0.0, n=8)) is Status.inconclusive
