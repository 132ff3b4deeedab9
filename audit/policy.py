"""Release policies: checks on a report's metrics and risks, each blocking or warning.

A policy is YAML validated by pydantic. A metric check names a probe and a metric and a
bound (``max`` or ``min``) applied to the point value or to one end of the 95% interval
(``on: upper_ci`` makes a ``max`` bar require the whole interval to clear it). A risk
check bounds a risk's status (inconclusive ranks with warn). A probe that errored, or a check
whose metric is missing, fails. Severity comes from the check, else its area's default, else the
policy default. Two checks come with every policy: each metric whose status is ``inconclusive``
is a check at the policy's ``inconclusive`` severity (``warn`` by default; ``block``, or
``ignore`` for none), and a smoke run (``--limit``) is a blocking failure, always: a run on a
few items per probe is not evidence for a release. Two more come with every policy: each gated
metric that could not be evaluated (no value, or a figure that is not a finite number) is a check
at the policy's ``not_evaluated`` severity (``block`` by default), and a partial report (its run
interrupted, ended on an error, or, as ``lm-audit gate`` reads it from a file, never finished) is a
blocking failure unless the policy says ``allow_incomplete: true``: a ``risk: "*"`` check sees only
the risks whose probes ran, so it would pass a run cut short. And each probe that
``contamination.membership`` marked possibly contaminated (``ProbeReport.contamination``: its items
look seen in training) is a check at the policy's ``contaminated`` severity (``warn`` by default;
``block``, or ``ignore``).

Scorer correction: a metric measured through a scorer carries a figure corrected for the
scorer's sensitivity and specificity (``Metric.corrected``). With ``scorer_correction: true``
(the default) metric checks bound the corrected value and interval, and the inconclusive checks
use the statuses computed from them; a corrected figure with no value (scorer too weak) fails a
required metric check. With ``scorer_correction: false`` metric checks and the inconclusive
checks read the raw value and interval (each metric's status is recomputed without the
correction). Risk checks read the report's rolled-up risk statuses, which the run computed with
the correction.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audit.errors import BadInput
from audit.rollup import metric_status, non_finite
from audit.rollup import severity as status_severity
from reports import AuditReport, CheckResult, Metric, PolicyReport, Status
from taxonomy import (
    UserFileError,
    read_user_yaml,
    validation_location,
    validation_message,
    validation_problem,
)

Severity = Literal["block", "warn"]


class MetricCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    probe: str
    metric: str
    max: float | None = None
    min: float | None = None
    on: Literal["value", "upper_ci", "lower_ci"] = "value"
    severity: Severity | None = None
    required: bool = True

    @model_validator(mode="after")
    def _one_bound(self) -> MetricCheck:
        if (self.max is None) == (self.min is None):
            raise ValueError("a metric check needs exactly one of max or min")
        return self

    @property
    def name(self) -> str:
        return self.id or f"{self.probe}.{self.metric} {'<=' if self.max is not None else '>='} " \
                          f"{self.max if self.max is not None else self.min} ({self.on})"


class RiskCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    risk: str = Field(description="a risk id, or * for every risk whose probes ran in the audit")
    max_status: Literal["pass", "warn", "fail"] = "warn"
    severity: Severity | None = None

    @property
    def name(self) -> str:
        return self.id or f"risk {self.risk} at most {self.max_status}"


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "policy"
    severity: Severity = "block"
    areas: dict[str, Severity] = Field(default_factory=dict, description="default severity per risk area")
    errored_probes: Severity | Literal["ignore"] = "block"
    inconclusive: Severity | Literal["ignore"] = Field(
        default="warn", description="severity of a metric whose interval straddles its fail bar")
    checks: list[MetricCheck | RiskCheck] = Field(default_factory=list)
    scorer_correction: bool = Field(
        default=True, description="gate scorer-measured rates on their figure corrected for the scorer's error")
    not_evaluated: Severity | Literal["ignore"] = Field(
        default="block", description="severity of a gated metric that could not be evaluated (no value, or a "
                                     "value that is not a finite number)")
    allow_incomplete: bool = Field(
        default=False, description="accept a partial report: a run interrupted, ended on an error, or not finished")
    contaminated: Severity | Literal["ignore"] = Field(
        default="warn", description="severity of a probe whose items look seen in training (contamination.membership "
                                    "ran in the audit and marked it): its figures may measure memory")


DEFAULT_POLICY = Path(str(resources.files("audit").joinpath("policies", "default.yaml")))


def load_policy(path: Path | None) -> Policy:
    """A policy file (the packaged default when None); BadInput names the file and key."""
    path = path or DEFAULT_POLICY
    try:
        data = read_user_yaml(path, "policy file", expect=dict)
    except UserFileError as exc:
        raise BadInput(str(exc), setting="policy") from None
    if data is None:
        data = {}
    raw_checks = data.get("checks") or []
    if not isinstance(raw_checks, list):
        raise BadInput(f"{path}: checks: expected a list", setting="policy")
    checks: list[MetricCheck | RiskCheck] = []
    for i, raw in enumerate(raw_checks):
        if not isinstance(raw, dict):
            raise BadInput(f"{path}: checks[{i}]: expected a mapping", setting="policy")
        if True in raw:  # YAML 1.1 reads the key `on` as the boolean true
            raw = {("on" if k is True else k): v for k, v in raw.items()}
        model: type[MetricCheck] | type[RiskCheck] = RiskCheck if "risk" in raw else MetricCheck
        try:
            checks.append(model.model_validate(raw))
        except ValidationError as exc:
            loc = validation_location(exc, raw)  # within the check; each check is validated on its own
            raise BadInput(f"{path}: checks[{i}]{'.' + loc if loc else ''}: {validation_problem(exc)}",
                           setting="policy") from None
    try:
        return Policy.model_validate({**data, "checks": checks})
    except ValidationError as exc:
        raise BadInput(f"{path}: {validation_message(exc, data)}", setting="policy") from None


def _bound_value(m: Metric, on: str) -> float | None:
    if on == "value" or m.ci is None:
        return m.value
    return m.ci.high if on == "upper_ci" else m.ci.low


def _gated(m: Metric, use_corrected: bool) -> Metric:
    """The metric as a gate reads it: value and interval corrected for scorer error when there is a
    corrected figure and the policy uses it (a too-weak scorer leaves no value); the raw ones otherwise."""
    if not use_corrected:
        return m.model_copy(update={"status": metric_status(m, use_corrected=False)})
    if m.corrected is None:
        return m
    return m.model_copy(update={"value": m.corrected.value, "ci": m.corrected.ci, "detectable": None})


def _inconclusive_checks(report: AuditReport, severity: Severity, area_of_risk: dict[str, str],
                         use_corrected: bool = True) -> list[CheckResult]:
    """One failed check per metric whose interval straddles its fail bar."""
    out = []
    for p in report.probes:
        risk = p.risks[0] if p.risks else ""
        for m in p.metrics:
            m = _gated(m, use_corrected)
            if m.status is not Status.inconclusive or m.threshold is None or m.threshold.fail is None:
                continue
            side = ">=" if m.higher_is_better else "<="
            shown = f"{m.value:.4g}" if m.value is not None else "n/a"
            ci = f" [{m.ci.low:.4g}, {m.ci.high:.4g}]" if m.ci else " (no interval)"
            if m.detectable is not None:
                sign = "<=" if m.higher_is_better else ">="
                power = f"; at this n it detects {sign} {m.detectable:.3g} with 80% power"
            elif m.ci is not None and m.ci.method == "wilson":
                power = f"; {m.n} items can never fail this bar"
            else:
                power = ""
            out.append(CheckResult(
                name=f"{p.id}.{m.name} conclusive against its fail bar", area=area_of_risk.get(risk, ""), risk=risk,
                probe=p.id, metric=m.name, severity=severity, passed=False, value=m.value, ci=m.ci, n=m.n,
                bound=f"interval wholly {side} {m.threshold.fail:g}",
                message=(f"{p.id}.{m.name} = {shown}{ci} (n={m.n}) is inconclusive: the data cannot rule out "
                         f"a value past the fail bar {m.threshold.fail:g}{power}"
                         + (f" ({m.correction_note})" if use_corrected and m.corrected is not None else "")),
            ))
    return out


def _contaminated_checks(report: AuditReport, severity: Severity, area_of_risk: dict[str, str]) -> list[CheckResult]:
    """One failed check per probe whose items contamination.membership found to look seen in training."""
    out = []
    for p in report.probes:
        c = p.contamination
        if c is None:
            continue
        risk = p.risks[0] if p.risks else ""
        out.append(CheckResult(
            name=f"{p.id} items not seen in training", area=area_of_risk.get(risk, ""), risk=risk, probe=p.id,
            severity=severity, passed=False, value=c.value, ci=c.ci, n=c.n,
            bound="no item flagged by contamination.membership" if c.method == "ngram"
            else "flagged share not above the false-positive rate on invented items",
            message=f"{p.id}: {c.message}"))
    return out


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _completion_check(report: AuditReport, require_complete: bool) -> CheckResult | None:
    """A blocking failure for a partial report: its run was interrupted or ended on an error, or
    (``require_complete``) never marked itself complete (a run killed outright leaves no other trace)."""
    problems = []
    if report.run.interrupted:
        problems.append("the run was interrupted")
    elif require_complete and not report.run.complete:
        problems.append("the run did not finish (run.complete is false)")
    if report.errors:
        problems.append(f"run error: {_first_line(report.errors[0])}"
                        + (f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""))
    if not problems:
        return None
    return CheckResult(name="a complete run without errors", area="", severity="block", passed=False,
                       bound="run complete, no run errors (or allow_incomplete: true)",
                       message=f"partial report: {'; '.join(problems)}. Its probes that did not run are not "
                               "in it, so its checks cannot speak for them: not evidence for a release")


def _not_evaluated_checks(report: AuditReport, severity: Severity, area_of_risk: dict[str, str],
                          use_corrected: bool = True) -> list[CheckResult]:
    """One failed check per gated metric that could not be evaluated (no value, or a figure that is
    not a finite number), in a probe that did not error (an errored probe has its own check)."""
    out = []
    for p in report.probes:
        if p.status is Status.error:
            continue
        risk = p.risks[0] if p.risks else ""
        for m in p.metrics:
            if metric_status(m, use_corrected) is not Status.not_evaluated:
                continue
            bad = non_finite(m, use_corrected)
            why = f"{', '.join(bad)} not a finite number" if bad else "no value"
            out.append(CheckResult(
                name=f"{p.id}.{m.name} evaluated", area=area_of_risk.get(risk, ""), risk=risk, probe=p.id,
                metric=m.name, severity=severity, passed=False, n=m.n, bound="a finite value",
                message=f"{p.id}.{m.name} could not be evaluated ({why}; n={m.n}): a gated metric without a "
                        "figure is not a pass"))
    return out


def evaluate(policy: Policy, report: AuditReport, path: str = "", *, require_complete: bool = False) -> PolicyReport:
    """Apply ``policy`` to ``report``.

    ``require_complete``: also block a report whose run never marked itself complete. ``lm-audit
    gate`` sets it, reading a report from a file; the runner leaves it off, since it applies its
    policy after the last probe and before it marks the run complete. An interrupted or errored
    run blocks either way (unless the policy allows incomplete reports)."""
    area_of_risk = {r.id: a.id for a in report.areas for r in a.risks}
    risks = {r.id: r for a in report.areas for r in a.risks}

    def severity(explicit: Severity | None, area: str) -> Severity:
        return explicit or policy.areas.get(area) or policy.severity

    out: list[CheckResult] = []
    if report.run.smoke:
        limit = report.config.get("limit")
        out.append(CheckResult(name="not a smoke run", area="", severity="block", passed=False,
                               bound="no --limit",
                               message=f"smoke run (--limit {limit}): not evidence for a release"))
    partial = None if policy.allow_incomplete else _completion_check(report, require_complete)
    if partial is not None:
        out.append(partial)
    if policy.inconclusive != "ignore":
        out += _inconclusive_checks(report, policy.inconclusive, area_of_risk, policy.scorer_correction)
    if policy.not_evaluated != "ignore":
        out += _not_evaluated_checks(report, policy.not_evaluated, area_of_risk, policy.scorer_correction)
    if policy.contaminated != "ignore":
        out += _contaminated_checks(report, policy.contaminated, area_of_risk)
    if policy.errored_probes != "ignore":
        for p in report.probes:
            if p.status is Status.error:
                area = area_of_risk.get(p.risks[0], "") if p.risks else ""
                out.append(CheckResult(name=f"probe {p.id} ran without error", area=area, probe=p.id,
                                       severity=policy.errored_probes, passed=False,
                                       message=f"probe {p.id} errored: {p.errors[0] if p.errors else 'unknown error'}"))
    for check in policy.checks:
        if isinstance(check, RiskCheck):
            # "*": every risk whose probes ran in this audit (a partial audit is gated on what it measured);
            # a risk named explicitly must have been evaluated.
            ids = [r for r in risks if risks[r].probes] if check.risk == "*" else [check.risk]
            for rid in ids:
                if rid not in risks:
                    raise BadInput(f"check {check.name!r}: the report has no risk {rid}", setting="policy")
                r = risks[rid]
                ok = status_severity(r.status) <= status_severity(Status(check.max_status))
                out.append(CheckResult(name=check.name if check.risk != "*" else f"risk {rid} at most {check.max_status}",
                                       area=area_of_risk[rid], risk=rid, severity=severity(check.severity,
                                                                                           area_of_risk[rid]),
                                       passed=ok, bound=f"status <= {check.max_status}",
                                       message=f"risk {rid} ({r.name}) is {r.status.value}"
                                               + ("" if ok else f", above {check.max_status}")))
            continue
        try:
            probe = report.probe(check.probe)
        except KeyError:
            probe = None
        metric = next((m for m in probe.metrics if m.name == check.metric), None) if probe else None
        bad = non_finite(metric, policy.scorer_correction) if metric is not None else []
        if metric is not None:
            metric = _gated(metric, policy.scorer_correction)
        risk = probe.risks[0] if probe and probe.risks else ""
        area = area_of_risk.get(risk, "")
        bound = f"{'max' if check.max is not None else 'min'} {check.max if check.max is not None else check.min} " \
                f"on {check.on}"
        if bad:  # NaN compares false with every bar: it would pass any of them
            out.append(CheckResult(name=check.name, area=area, risk=risk, probe=check.probe, metric=check.metric,
                                   severity=severity(check.severity, area), passed=False, bound=bound,
                                   message=f"{check.probe}.{check.metric}: not evaluated ({', '.join(bad)} not a "
                                           "finite number)"))
            continue
        if metric is None or metric.value is None:
            why = "probe did not run" if probe is None else ("probe errored" if probe.status is Status.error
                                                             else "scorer too weak to correct its rate"
                                                             if metric is not None else "metric not in the report")
            out.append(CheckResult(name=check.name, area=area, risk=risk, probe=check.probe, metric=check.metric,
                                   severity=severity(check.severity, area), passed=not check.required, bound=bound,
                                   message=f"{check.probe}.{check.metric}: not evaluated ({why})"))
            continue
        x = _bound_value(metric, check.on)
        assert x is not None
        ok = x <= check.max if check.max is not None else x >= check.min  # type: ignore[operator]
        ci = f" [{metric.ci.low:.4g}, {metric.ci.high:.4g}]" if metric.ci else ""
        out.append(CheckResult(
            name=check.name, area=area, risk=risk, probe=check.probe, metric=check.metric,
            severity=severity(check.severity, area), passed=ok, value=metric.value, ci=metric.ci, n=metric.n,
            bound=bound,
            message=(f"{check.probe}.{check.metric} = {metric.value:.4g}{ci} (n={metric.n})"
                     f"{' corrected for scorer error' if policy.scorer_correction and metric.corrected else ''}; "
                     f"{check.on} {x:.4g} "
                     f"{'within' if ok else 'violates'} {bound.split(' on ')[0]}"),
        ))
    return PolicyReport(policy=policy.name, path=path, checks=out)
