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
from collections.abc import Callable

from probes.stats import rate_difference, wilson_interval
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
    return _rate_reaching(lo, n, fail, power)


def _rate_reaching(k: int, n: int, fail: float, power: float) -> float:
    """The smallest true rate past ``fail`` at which at least k of n come up with probability
    ``power`` (bisection: the binomial tail grows with p, and _tail(k, n, 1) = 1), rounded up to 4
    decimals so that at the stated value the power is at least ``power``."""
    p_lo, p_hi = fail, 1.0
    for _ in range(60):
        p_mid = (p_lo + p_hi) / 2
        p_lo, p_hi = (p_lo, p_mid) if _tail(k, n, p_mid) >= power else (p_mid, p_hi)
    return math.ceil(p_hi * 1e4) / 1e4


def detectable_gap(n_templates: int, n_rest: int, fail: float, level: float, power: float = POWER) -> float | None:
    """Smallest true gap between one group and the rest of its axis (rest clean) that comes out
    `fail` with probability ``power`` when each group has ``n_templates`` outputs and the rest
    ``n_rest``: the gap interval is never narrower than Newcombe's on the pooled counts, so a fail
    needs the Newcombe lower bound past the bar (exact binomial over the group's count). A noisy
    rest (a model toxic for every group at some rate) needs a larger gap than this."""
    if n_templates <= 0 or n_rest <= 0:
        return None

    def flagged(k: int) -> bool:
        _, ci = rate_difference(k, n_templates, 0, n_rest, level=level)
        return ci is not None and ci.low > fail

    k = next((k for k in range(n_templates + 1) if flagged(k)), None)
    return None if k is None else _rate_reaching(k, n_templates, fail, power)


def detectable_mean(se: float, fail: float, higher_is_better: bool, level: float = 0.95,
                    power: float = POWER) -> float:
    """The true mean past ``fail`` that a normal-approximate interval of standard error ``se`` shows as
    `fail` with probability ``power``: fail +/- (z_level + z_power) * se."""
    from statistics import NormalDist

    shift = (NormalDist().inv_cdf(1 - (1 - level) / 2) + NormalDist().inv_cdf(power)) * se
    return round(fail - shift if higher_is_better else fail + shift, 4)


def detectable_value(m: Metric) -> float | None:
    """The detectable value of a gated metric: ``detectable_rate`` for a Wilson rate;
    ``detectable_gap`` for a between-group gap (template-clustered, groups in its first breakdown as
    "axis: group"; the smallest axis, where one group has the least data beside it); for a bootstrap
    mean or ratio, ``detectable_mean`` with the standard error its interval implies. None for a metric
    with no fail bar, no interval, or a zero-tolerance bar (its rate form still applies)."""
    t = m.threshold
    if t is None or t.fail is None or m.higher_is_better is None or m.value is None or m.ci is None:
        return None
    if m.ci.method == "wilson":
        return detectable_rate(m.n, t.fail, m.higher_is_better, level=m.ci.level)
    if m.ci.clusters == "template" and m.breakdowns and m.breakdowns[0].groups:
        axes = [g.group.split(":", 1)[0] for g in m.breakdowns[0].groups]
        smallest = min(axes.count(a) for a in set(axes))
        n_templates = m.n // len(axes)
        return detectable_gap(n_templates, n_templates * (smallest - 1), t.fail, m.ci.level)
    if m.ci.method == "bootstrap" and m.n > 1:
        from statistics import NormalDist

        se = (m.ci.high - m.ci.low) / (2 * NormalDist().inv_cdf(1 - (1 - m.ci.level) / 2))
        return detectable_mean(se, t.fail, m.higher_is_better, level=m.ci.level)
    return None


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
    return _wilson_chance(n, true, lambda lo, hi: _clears(lo, hi, fail, higher_is_better), level)


def fail_probability(n: int, true: float, fail: float, higher_is_better: bool, level: float = 0.95) -> float:
    """Chance that a Wilson rate on n items at true rate ``true`` comes out `fail` (the whole interval
    past the bar): an exact binomial sum."""
    return _wilson_chance(n, true, lambda lo, hi: hi < fail if higher_is_better else lo > fail, level)


def _wilson_chance(n: int, true: float, event: Callable[[float, float], bool], level: float) -> float:
    if n <= 0:
        return 0.0
    total = 0.0
    lp = math.log(true) if 0 < true < 1 else None
    lq = math.log1p(-true) if 0 < true < 1 else None
    lc = math.lgamma(n + 1)
    for k in range(n + 1):
        ci = wilson_interval(k, n, level)
        assert ci is not None
        if not event(ci.low, ci.high):
            continue
        if lp is None or lq is None:
            total += 1.0 if k == round(true * n) else 0.0
        else:
            total += math.exp(lc - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq)
    return min(1.0, total)


def corrected_chances(n: int, true: float, fail: float, higher_is_better: bool,
                      sens: tuple[int, int], spec: tuple[int, int], *, sims: int = 200,
                      resamples: int = 400, seed: int = 0) -> tuple[float, float]:
    """(chance to clear the bar, chance to fail it) for a scorer-corrected rate
    (``probes.stats.corrected_rate``) when the model's true rate is ``true`` and the scorer errs at
    its labelled set's sensitivity and specificity: simulated (``sims`` audits, each a binomial draw
    of flags and the run's bootstrap)."""
    import numpy as np

    from probes.stats import corrected_rate

    se, sp = sens[0] / sens[1], spec[0] / spec[1]
    observed = true * se + (1.0 - true) * (1.0 - sp)
    rng = np.random.default_rng(seed)
    cleared = failed = 0
    for i in range(sims):
        k = int(rng.binomial(n, observed))
        flags = [True] * k + [False] * (n - k)
        value, ci, _ = corrected_rate(flags, sens, spec, seed=seed + i, resamples=resamples)
        if value is None or ci is None:
            continue
        cleared += _clears(ci.low, ci.high, fail, higher_is_better)
        failed += ci.high < fail if higher_is_better else ci.low > fail
    return cleared / sims, failed / sims


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
