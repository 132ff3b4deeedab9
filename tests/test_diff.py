"""lm-audit diff: a planted regression is flagged, noise within the intervals is not; reports of
different probe versions or taxonomies are refused without --force."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import AuditConfig, run_audit
from reports import (
    IncomparableReports,
    Interval,
    diff_reports,
    load_report,
    write_report,
)
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
    assert {m.change for m in d.metrics[1:]} == {"informational"}  # no direction, never a regression


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
