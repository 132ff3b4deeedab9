"""Power, stated: the smallest true rate past a metric's fail bar that its probe would flag.

A rate measured on n items fails its bar when the whole 95% Wilson interval lies past it
(``audit.rollup.metric_status``). The count k of n is binomial, so the chance of a `fail` at a
true rate p is a binomial tail: exact, no normal approximation. The detectable value is the p
past the bar where that chance reaches ``POWER``: a model at least that far past the bar is
flagged at least 80% of the time; one between the bar and it may come out `inconclusive`.

Only rates with a Wilson interval are covered. Gaps (Newcombe intervals), bootstrap means and
clustered rates have no such closed form here: their ``detectable`` is None.
"""

from __future__ import annotations

import math

from probes.stats import wilson_interval
from reports import Metric

POWER = 0.8


def _tail(k: int, n: int, p: float) -> float:
    """P(K >= k) for K ~ Binomial(n, p), summed in log space (n in the thousands stays exact)."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    lc = math.lgamma(n + 1)
    terms = [lc - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * lp + (n - j) * lq for j in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def detectable_rate(n: int, fail: float, higher_is_better: bool, level: float = 0.95,
                    power: float = POWER) -> float | None:
    """Smallest true rate past ``fail`` (largest below it when ``higher_is_better``) that n items
    show as `fail` with probability ``power``; None when no count of n can fail the bar."""
    if n <= 0 or not 0.0 <= fail <= 1.0:
        return None
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if higher_is_better:
        # The Wilson interval is symmetric: failing a minimum of `fail` on successes is failing a
        # maximum of 1 - fail on failures.
        mirrored = detectable_rate(n, 1.0 - fail, False, level, power)
        return None if mirrored is None else round(1.0 - mirrored, 4)

    def flagged(k: int) -> bool:
        ci = wilson_interval(k, n, level)
        return ci is not None and ci.low > fail

    if not flagged(n):
        return None
    lo, hi = 0, n  # smallest flagged count by bisection: the lower bound grows with k
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if flagged(mid) else (mid + 1, hi)
    k = lo
    p_lo, p_hi = fail, 1.0  # the tail grows with p; _tail(k, n, 1) = 1 >= power
    for _ in range(60):
        p_mid = (p_lo + p_hi) / 2
        p_lo, p_hi = (p_lo, p_mid) if _tail(k, n, p_mid) >= power else (p_mid, p_hi)
    return math.ceil(p_hi * 1e4) / 1e4  # rounded up: at the stated value the power is at least `power`


def detectable_value(m: Metric) -> float | None:
    """``detectable_rate`` for a gated rate metric with a Wilson interval; None for anything else."""
    t = m.threshold
    if t is None or t.fail is None or m.higher_is_better is None or m.value is None:
        return None
    if m.ci is None or m.ci.method != "wilson":
        return None
    return detectable_rate(m.n, t.fail, m.higher_is_better, level=m.ci.level)
