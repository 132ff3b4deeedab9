"""lm-audit diff: a planted regression is flagged, noise is not; runs on the same items are
compared item by item (McNemar, paired bootstrap, Holm across metrics) and the unpaired
interval-overlap rule is the fallback; reports of different probe versions or taxonomies are
refused without --force."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit import AuditConfig, run_audit
from probes import all_probes, get_probe, stats
from reports import (
    AuditReport,
    IncomparableReports,
    Interval,
    Metric,
    diff_reports,
    holm,
    load_report,
    load_samples,
    mcnemar_exact,
    render_diff_markdown,
    write_report,
)
from tests.test_backend_contract import FixedBackend
from tests.test_cli import assert_one_line_error, lm_audit


@pytest.fixture(scope="module")
def base_report(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer):  # type: ignore[no-untyped-def]
    from audit.models._hf import HFBackend
    from tests.conftest import make_model

    out = tmp_path_factory.mktemp("base")
    backend = HFBackend(make_model(tiny_tokenizer), tiny_tokenizer, model_id="tiny")
    run_audit(AuditConfig(model="tiny", probes=["bias.stereotype_pairs"], out=out, pii={"nlp_model": "none"}),
              model=backend)
    return load_report(out / "report.json")


def _with_rate(report, value: float, low: float, high: float):  # type: ignore[no-untyped-def]
    new = report.model_copy(deep=True)
    m = new.probe("bias.stereotype_pairs").metrics[0]
    m.value, m.ci = value, Interval(low=low, high=high, method="wilson")
    return new


def test_planted_regression_is_flagged_and_noise_is_not(base_report) -> None:  # type: ignore[no-untyped-def]
    old = _with_rate(base_report, 0.50, 0.41, 0.59)
    noisy = _with_rate(base_report, 0.55, 0.46, 0.64)
    worse = _with_rate(base_report, 0.80, 0.72, 0.86)
    better = _with_rate(base_report, 0.30, 0.22, 0.39)
    d = diff_reports(old, noisy)
    assert d.regressions == [] and d.metrics[0].change == "unchanged" and d.metrics[0].overlap is True
    assert d.metrics[0].delta == pytest.approx(0.05)
    d = diff_reports(old, worse)
    assert [(m.probe, m.metric) for m in d.regressions] == [("bias.stereotype_pairs", "stereotype_rate")]
    assert diff_reports(old, better).metrics[0].change == "improvement"
    # Without samples every metric is compared by its intervals, and the diff says so.
    assert {m.test for m in d.metrics} == {"overlap"} and all("no samples" in m.note for m in d.metrics)
    rest = {m.metric: m.change for m in d.metrics[1:]}
    # The per-token variant has a direction (no bar), so it is compared; likelihood_diff has none.
    assert rest == {"stereotype_rate_per_token": "unchanged", "likelihood_diff": "informational"}


def test_incomparable_reports_need_force(base_report) -> None:  # type: ignore[no-untyped-def]
    other = base_report.model_copy(deep=True)
    other.probe("bias.stereotype_pairs").version = "9.9"
    with pytest.raises(IncomparableReports, match="changed version"):
        diff_reports(base_report, other)
    assert diff_reports(base_report, other, force=True).regressions == []
    other = base_report.model_copy(deep=True)
    other.taxonomy.sha256 = "0" * 64
    with pytest.raises(IncomparableReports, match="different taxonomies"):
        diff_reports(base_report, other)


@pytest.mark.slow
def test_diff_cli_exit_codes(base_report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    write_report(_with_rate(base_report, 0.50, 0.41, 0.59), old)
    write_report(_with_rate(base_report, 0.80, 0.72, 0.86), new)
    proc = lm_audit("diff", str(old), str(new))
    assert proc.returncode == 0 and "1 regression(s)" in proc.stdout and "**regression**" in proc.stdout
    assert lm_audit("diff", str(old), str(new), "--fail-on-regression").returncode == 1
    assert lm_audit("diff", str(old), str(old), "--fail-on-regression", "--format", "json").returncode == 0
    changed = base_report.model_copy(deep=True)
    changed.probe("bias.stereotype_pairs").version = "2.0"
    write_report(changed, new)
    assert_one_line_error(lm_audit("diff", str(old), str(new)), 2, "changed version", "--force")


# --- paired comparisons -----------------------------------------------------------------------

PROBE = "bias.stereotype_pairs"
Outcomes = dict[str, list[Any]]


@pytest.fixture(scope="module")
def fixed_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Every registered probe run twice, into two run directories, by the same fixed-output backend."""
    base = tmp_path_factory.mktemp("fixed")
    config = AuditConfig(model="fixed", probes=list(all_probes()), limit=6, pii={"nlp_model": "none"},
                         probe_params={"footprint.compute": {"repeats": 2, "batch": 2, "max_new_tokens": 4}})
    for name in ("a", "b"):
        run_audit(config.model_copy(update={"out": base / name}), model=FixedBackend())
    return base / "a" / "report.json", base / "b" / "report.json"


def _run(base: AuditReport, outcomes: Outcomes, hib: bool | None = True,
         ids: list[str] | None = None) -> tuple[AuditReport, dict[str, list[dict[str, Any]]]]:
    """A report whose only probe has one metric per entry of ``outcomes`` (bools: a rate with
    its Wilson interval; numbers: a mean with its bootstrap interval), and its samples."""
    report = base.model_copy(deep=True)
    probe = report.probe(PROBE)
    report.probes = [probe]
    probe.metrics = []
    for name, values in outcomes.items():
        stat = stats.rate(values) if isinstance(values[0], bool) else stats.mean(values)
        probe.metrics.append(Metric(name=name, value=stat[0], ci=stat[1], n=stat[2], higher_is_better=hib,
                                    outcome=name, unit="rate" if isinstance(values[0], bool) else "score"))
    n = len(next(iter(outcomes.values())))
    ids = ids or [f"item-{i:03d}" for i in range(n)]
    return report, {PROBE: [{"id": ids[i], **{k: v[i] for k, v in outcomes.items()}} for i in range(n)]}


def _flipped(values: list[bool], down: int, up: int) -> list[bool]:
    """``values`` with the first ``down`` True items made False and the first ``up`` False ones True."""
    out = list(values)
    trues, falses = [i for i, v in enumerate(values) if v], [i for i, v in enumerate(values) if not v]
    for i in trues[:down]:
        out[i] = False
    for i in falses[:up]:
        out[i] = True
    return out


def test_mcnemar_and_holm_arithmetic() -> None:
    assert mcnemar_exact(20, 0) == pytest.approx(2 * 0.5**20)
    assert mcnemar_exact(12, 2) == pytest.approx(2 * (1 + 14 + 91) / 2**14)
    assert mcnemar_exact(10, 10) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(2, 12) == mcnemar_exact(12, 2)  # two-sided
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([]) == []


def test_mcnemar_finds_a_planted_regression_the_overlap_rule_misses(fixed_runs) -> None:  # type: ignore[no-untyped-def]
    base = load_report(fixed_runs[0])
    old_vals = [i < 100 for i in range(200)]  # 100/200
    old, old_s = _run(base, {"correct": old_vals})
    new, new_s = _run(base, {"correct": _flipped(old_vals, down=20, up=0)})  # 80/200: ten points worse
    o, n = old.probe(PROBE).metrics[0], new.probe(PROBE).metrics[0]
    assert (o.value, n.value) == (0.5, 0.4)
    assert o.ci is not None and n.ci is not None and o.ci.overlaps(n.ci)  # [0.43, 0.57] vs [0.33, 0.47]

    unpaired = diff_reports(old, new).metrics[0]
    assert (unpaired.test, unpaired.change, unpaired.overlap) == ("overlap", "unchanged", True)

    d = diff_reports(old, new, old_samples=old_s, new_samples=new_s)
    m = d.metrics[0]
    assert (m.test, m.n_paired, m.change) == ("mcnemar", 200, "regression")
    assert m.p_value == pytest.approx(2 * 0.5**20) and m.p_holm == m.p_value and d.holm_family == 1
    assert d.regressions == [m]
    md = render_diff_markdown(d)
    assert "McNemar, 200 paired" in md and "**regression**" in md and "Holm's correction over the 1" in md
    # The same items improving is an improvement, not a regression.
    assert diff_reports(new, old, old_samples=new_s, new_samples=old_s).metrics[0].change == "improvement"
    # Lower is better: fewer True is then the improvement.
    old_l, _ = _run(base, {"correct": old_vals}, hib=False)
    new_l, _ = _run(base, {"correct": _flipped(old_vals, 20, 0)}, hib=False)
    assert diff_reports(old_l, new_l, old_samples=old_s, new_samples=new_s).metrics[0].change == "improvement"


def test_noise_on_paired_items_is_not_flagged(fixed_runs) -> None:  # type: ignore[no-untyped-def]
    base = load_report(fixed_runs[0])
    old_vals = [i < 100 for i in range(200)]
    old, old_s = _run(base, {"correct": old_vals})
    for down, up in ((10, 10), (6, 2), (0, 0)):
        new, new_s = _run(base, {"correct": _flipped(old_vals, down, up)})
        m = diff_reports(old, new, old_samples=old_s, new_samples=new_s).metrics[0]
        assert m.test == "mcnemar" and m.change == "unchanged" and m.p_value is not None and m.p_value > 0.05


def test_a_continuous_metric_gets_a_paired_bootstrap(fixed_runs) -> None:  # type: ignore[no-untyped-def]
    base = load_report(fixed_runs[0])
    rng = np.random.default_rng(1)
    before = np.clip(rng.normal(0.6, 0.15, 200), 0, 1)
    after = before - 0.03 + rng.normal(0, 0.02, 200)  # every item a little worse
    old, old_s = _run(base, {"score": [float(x) for x in before]})
    new, new_s = _run(base, {"score": [float(x) for x in after]})
    assert diff_reports(old, new).metrics[0].change == "unchanged"  # the intervals overlap
    m = diff_reports(old, new, old_samples=old_s, new_samples=new_s).metrics[0]
    assert (m.test, m.n_paired, m.change) == ("paired-bootstrap", 200, "regression")
    assert m.p_value is not None and m.p_value < 0.01
    assert m.delta_ci is not None and m.delta_ci.high < 0 < m.delta_ci.low + 0.06
    assert m.delta == pytest.approx(float(np.mean(after) - np.mean(before)))
    # Noise around no change is not flagged.
    same = before + rng.normal(0, 0.02, 200)
    same -= same.mean() - before.mean()
    new, new_s = _run(base, {"score": [float(x) for x in same]})
    m = diff_reports(old, new, old_samples=old_s, new_samples=new_s).metrics[0]
    assert m.test == "paired-bootstrap" and m.change == "unchanged"


def test_unmatched_items_fall_back_to_the_overlap_rule_and_say_so(fixed_runs) -> None:  # type: ignore[no-untyped-def]
    base = load_report(fixed_runs[0])
    old_vals = [i < 100 for i in range(200)]
    old, old_s = _run(base, {"correct": old_vals})
    other_ids = [f"other-{i}" if i < 5 else f"item-{i:03d}" for i in range(200)]
    new, new_s = _run(base, {"correct": _flipped(old_vals, 20, 0)}, ids=other_ids)
    d = diff_reports(old, new, old_samples=old_s, new_samples=new_s)
    m = d.metrics[0]
    assert (m.test, m.change, m.p_value, m.n_paired) == ("overlap", "unchanged", None, None)
    assert "items differ (195 of 200 old and 200 new match)" in m.note
    md = render_diff_markdown(d)
    assert "interval overlap: yes" in md and "Not paired" in md and "items differ" in md
    # A samples file that does not reproduce the reported value (stale, or another run's) is not used.
    new, new_s = _run(base, {"correct": _flipped(old_vals, 20, 0)})
    stale = {PROBE: [{**r, "correct": True} for r in new_s[PROBE]]}
    m = diff_reports(old, new, old_samples=old_s, new_samples=stale).metrics[0]
    assert m.test == "overlap" and "do not reproduce" in m.note
    # One run without samples: the overlap rule.
    m = diff_reports(old, new, old_samples=old_s, new_samples={PROBE: None}).metrics[0]
    assert m.test == "overlap" and m.note == "no samples for the new report"


def test_holm_flags_fewer_of_many_borderline_metrics(fixed_runs) -> None:  # type: ignore[no-untyped-def]
    base = load_report(fixed_runs[0])
    old_vals = [i < 100 for i in range(200)]
    names = [f"m{j}" for j in range(10)]
    old, old_s = _run(base, {k: old_vals for k in names})
    new, new_s = _run(base, {k: _flipped(old_vals, 12, 2) for k in names})  # p = 0.013 each
    d = diff_reports(old, new, old_samples=old_s, new_samples=new_s)
    assert d.holm_family == 10 and all(m.test == "mcnemar" for m in d.metrics)
    assert all(m.p_value is not None and m.p_value < 0.05 for m in d.metrics)  # each alone would be flagged
    assert all(m.p_holm is not None and m.p_holm > 0.05 for m in d.metrics)
    assert d.regressions == []
    one_old, one_old_s = _run(base, {"m0": old_vals})
    one_new, one_new_s = _run(base, {"m0": _flipped(old_vals, 12, 2)})
    assert len(diff_reports(one_old, one_new, old_samples=one_old_s, new_samples=one_new_s).regressions) == 1
    # Metrics without a direction are tested and shown but stay out of Holm's family.
    old, old_s = _run(base, {k: old_vals for k in names}, hib=None)
    new, new_s = _run(base, {k: _flipped(old_vals, 12, 2) for k in names}, hib=None)
    d = diff_reports(old, new, old_samples=old_s, new_samples=new_s)
    assert d.holm_family == 0 and {m.change for m in d.metrics} == {"informational"}
    assert all(m.p_value is not None and m.p_holm is None for m in d.metrics)


# Gated metrics whose value is not a mean over items (the largest gap between groups, the worst
# language's ratio of sums): there is no per-item outcome to pair, so diff uses their intervals.
NOT_A_MEAN = {("bias.group_disparity", "negative_regard_gap"), ("bias.group_disparity", "toxicity_gap"),
              ("access.language_disparity", "worst_ratio")}


def test_every_gated_metric_declares_an_outcome_its_samples_carry(fixed_runs) -> None:  # type: ignore[no-untyped-def]
    for pid in all_probes():
        for spec in get_probe(pid).metric_specs:
            gated = spec.threshold is not None and spec.threshold.fail is not None
            assert not gated or spec.outcome is not None or (pid, spec.name) in NOT_A_MEAN, (pid, spec.name)
    report = load_report(fixed_runs[0])
    samples = load_samples(report, fixed_runs[0])
    for p in report.probes:
        records = samples[p.id]
        assert records, p.id
        ids = [r["id"] for r in records]
        assert all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids), p.id  # stable, unique item ids
        for m in p.metrics:
            if m.outcome is None:
                continue
            assert all(m.outcome in r for r in records), (p.id, m.name, m.outcome)
            values = [r[m.outcome] for r in records if r[m.outcome] is not None]
            assert all(isinstance(v, (bool, int, float)) for v in values), (p.id, m.name)
            assert m.value is not None and math.isclose(sum(values) / len(values), m.value, abs_tol=1e-9), \
                (p.id, m.name)  # the samples' mean is the reported value


def test_two_runs_of_one_model_are_paired_and_unchanged(fixed_runs) -> None:  # type: ignore[no-untyped-def]
    a, b = (load_report(p) for p in fixed_runs)
    d = diff_reports(a, b, old_samples=load_samples(a, fixed_runs[0]), new_samples=load_samples(b, fixed_runs[1]))
    outcomes = {(p.id, m.name): m.outcome for p in b.probes for m in p.metrics}
    assert d.regressions == [] and d.holm_family > 0
    for m in d.metrics:
        if outcomes[(m.probe, m.metric)] is None:
            assert m.test in ("overlap", "none") and m.note == "no per-item outcome", m
        else:
            assert m.test in ("mcnemar", "paired-bootstrap") and m.p_value == 1.0, m
            assert m.change in ("unchanged", "informational") and m.n_paired, m
    assert {m.test for m in d.metrics} >= {"mcnemar", "paired-bootstrap", "overlap"}


def _write_run(report: AuditReport, samples: dict[str, list[dict[str, Any]]], run_dir: Path) -> Path:
    for p in report.probes:
        p.samples_file = f"samples/{p.id}.jsonl"
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        (run_dir / p.samples_file).write_text("".join(json.dumps(r) + "\n" for r in samples[p.id]))
    write_report(report, run_dir / "report.json")
    return run_dir / "report.json"


@pytest.mark.slow
def test_diff_cli_pairs_run_directories(fixed_runs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = load_report(fixed_runs[0])
    old_vals = [i < 100 for i in range(200)]
    old = _write_run(*_run(base, {"correct": old_vals}), tmp_path / "old")
    new = _write_run(*_run(base, {"correct": _flipped(old_vals, 20, 0)}), tmp_path / "new")
    proc = lm_audit("diff", str(old), str(new), "--fail-on-regression")
    assert proc.returncode == 1 and "1 regression(s)" in proc.stdout and "McNemar, 200 paired" in proc.stdout
    out = json.loads(lm_audit("diff", str(old), str(new), "--format", "json").stdout)
    assert out["metrics"][0]["test"] == "mcnemar" and out["metrics"][0]["p_holm"] < 0.05
    # The same reports copied without their samples: only the overlap rule, which misses it.
    shutil.copy(new, tmp_path / "bare.json")
    proc = lm_audit("diff", str(old), str(tmp_path / "bare.json"), "--fail-on-regression")
    assert proc.returncode == 0 and "0 regression(s)" in proc.stdout and "interval overlap: yes" in proc.stdout
