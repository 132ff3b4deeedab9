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


def half_bar(fail: float, ideal: float) -> float:
    """The true value halfway between a metric's ideal and its fail bar: the model the default item
    count is designed to pass (a rate with fail bar 0.2 and ideal 0: 0.1)."""
    return ideal + (fail - ideal) / 2.0


def _clears(ci_low: float, ci_high: float, fail: float, higher_is_better: bool) -> bool:
    """The whole interval on the acceptable side of the fail bar (a bound on the bar counts)."""
    return ci_low >= fail if higher_is_better else ci_high <= fail


def clear_probability(n: int, true: float, fail: float, higher_is_better: bool, level: float = 0.95) -> float:
    """Chance that a Wilson rate on n items at true rate ``true`` clears its fail bar (status pass
    or warn, never inconclusive or fail): an exact binomial sum."""
    if n <= 0:
        return 0.0
    total = 0.0
    lp = math.log(true) if 0 < true < 1 else None
    lq = math.log1p(-true) if 0 < true < 1 else None
    lc = math.lgamma(n + 1)
    for k in range(n + 1):
        ci = wilson_interval(k, n, level)
        assert ci is not None
        if not _clears(ci.low, ci.high, fail, higher_is_better):
            continue
        if lp is None or lq is None:
            total += 1.0 if k == round(true * n) else 0.0
        else:
            total += math.exp(lc - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq)
    return min(1.0, total)


def corrected_clear_probability(n: int, true: float, fail: float, higher_is_better: bool,
                                sens: tuple[int, int], spec: tuple[int, int], *, sims: int = 200,
                                resamples: int = 400, seed: int = 0) -> float:
    """Chance that a scorer-corrected rate (``probes.stats.corrected_rate``) clears its fail bar when
    the model's true rate is ``true`` and the scorer errs at its labelled set's sensitivity and
    specificity: simulated (``sims`` audits, each a binomial draw of flags and the run's bootstrap)."""
    import numpy as np

    from probes.stats import corrected_rate

    se, sp = sens[0] / sens[1], spec[0] / spec[1]
    observed = true * se + (1.0 - true) * (1.0 - sp)
    rng = np.random.default_rng(seed)
    cleared = 0
    for i in range(sims):
        k = int(rng.binomial(n, observed))
        flags = [True] * k + [False] * (n - k)
        value, ci, _ = corrected_rate(flags, sens, spec, seed=seed + i, resamples=resamples)
        if value is not None and ci is not None and _clears(ci.low, ci.high, fail, higher_is_better):
            cleared += 1
    return cleared / sims


def required_n(true: float, fail: float, higher_is_better: bool, power: float = POWER,
               limit: int = 20000) -> int | None:
    """Smallest n whose Wilson rate clears the fail bar with probability ``power`` at true rate
    ``true`` (the pass chance is not monotone in n, so the n returned is the first of a run of
    ten that all reach it); None past ``limit``."""
    n, first, run = 1, 0, 0
    while n <= limit:
        if clear_probability(n, true, fail, higher_is_better) >= power:
            first, run = (first or n), run + 1
            if run == 10:
                return first
        else:
            first, run = 0, 0
        n += 1 if n < 400 else max(1, n // 200)
    return None
