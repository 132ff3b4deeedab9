"""Compare two reports metric by metric: delta, interval overlap, regressions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from reports._escape import escape_markdown as esc
from reports._schema import AuditReport, Interval, Metric


class MetricDiff(BaseModel):
    probe: str
    metric: str
    old: float | None
    new: float | None
    old_ci: Interval | None
    new_ci: Interval | None
    old_n: int
    new_n: int
    delta: float | None
    overlap: bool | None
    change: Literal["regression", "improvement", "unchanged", "informational", "added", "removed"]


class ReportDiff(BaseModel):
    old: str
    new: str
    metrics: list[MetricDiff] = Field(default_factory=list)

    @property
    def regressions(self) -> list[MetricDiff]:
        return [m for m in self.metrics if m.change == "regression"]


class IncomparableReports(ValueError):
    """The reports were produced with different taxonomies or probe versions."""


def _change(old: Metric, new: Metric) -> tuple[str, bool | None]:
    if old.ci is None or new.ci is None or old.value is None or new.value is None:
        return "informational", None
    overlap = old.ci.overlaps(new.ci)
    hib = new.higher_is_better
    if hib is None:
        return "informational", overlap
    if overlap:
        return "unchanged", True
    better = new.ci.low > old.ci.high if hib else new.ci.high < old.ci.low
    return ("improvement" if better else "regression"), False


def diff_reports(old: AuditReport, new: AuditReport, force: bool = False) -> ReportDiff:
    """Per (probe, metric): values, delta, whether the 95% intervals overlap, and the change.
    A regression is a metric whose new interval lies wholly on the worse side of the old one,
    so sampling noise alone does not flag. Different taxonomies or probe versions raise
    IncomparableReports unless ``force``."""
    if not force:
        old_tax = (old.taxonomy.name, old.taxonomy.version, old.taxonomy.sha256)
        if old_tax != (new.taxonomy.name, new.taxonomy.version, new.taxonomy.sha256):
            raise IncomparableReports(f"different taxonomies ({old.taxonomy.name} {old.taxonomy.version} sha256 "
                                      f"{old.taxonomy.sha256[:12]} vs {new.taxonomy.name} {new.taxonomy.version} "
                                      f"sha256 {new.taxonomy.sha256[:12]}); use --force to compare anyway")
        versions = {p.id: p.version for p in old.probes}
        for p in new.probes:
            if p.id in versions and versions[p.id] != p.version:
                raise IncomparableReports(f"probe {p.id} changed version ({versions[p.id]} -> {p.version}); "
                                          "use --force to compare anyway")
    out = ReportDiff(old=old.run.id, new=new.run.id)
    old_metrics = {(p.id, m.name): m for p in old.probes for m in p.metrics}
    new_metrics = {(p.id, m.name): m for p in new.probes for m in p.metrics}
    for key in list(dict.fromkeys([*old_metrics, *new_metrics])):
        o, n = old_metrics.get(key), new_metrics.get(key)
        if o is None or n is None:
            m = n or o
            assert m is not None
            out.metrics.append(MetricDiff(probe=key[0], metric=key[1], old=o.value if o else None,
                                          new=n.value if n else None, old_ci=o.ci if o else None,
                                          new_ci=n.ci if n else None, old_n=o.n if o else 0, new_n=n.n if n else 0,
                                          delta=None, overlap=None, change="added" if o is None else "removed"))
            continue
        change, overlap = _change(o, n)
        delta = n.value - o.value if n.value is not None and o.value is not None else None
        out.metrics.append(MetricDiff(probe=key[0], metric=key[1], old=o.value, new=n.value, old_ci=o.ci, new_ci=n.ci,
                                      old_n=o.n, new_n=n.n, delta=delta, overlap=overlap, change=change))  # type: ignore[arg-type]
    return out


def render_diff_markdown(d: ReportDiff) -> str:
    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    def ci(i: Interval | None) -> str:
        return "n/a" if i is None else f"[{i.low:.3f}, {i.high:.3f}]"

    lines = [f"# Report diff: `{esc(d.old)}` → `{esc(d.new)}`", "",
             f"{len(d.regressions)} regression(s) beyond the 95% intervals.", "",
             "| probe | metric | old | new | delta | intervals overlap | change |", "|---|---|---|---|---|---|---|"]
    for m in d.metrics:
        lines.append(f"| {esc(m.probe)} | {esc(m.metric)} | {f(m.old)} {ci(m.old_ci)} (n={m.old_n}) | "
                     f"{f(m.new)} {ci(m.new_ci)} (n={m.new_n}) | {f(m.delta)} | "
                     f"{'n/a' if m.overlap is None else ('yes' if m.overlap else 'no')} | "
                     f"{'**' + m.change + '**' if m.change == 'regression' else m.change} |")
    return "\n".join(lines) + "\n"
