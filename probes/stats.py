"""The one statistics module: intervals for rates and means, grouped breakdowns.

Every figure in a report carries n and a 95% interval. Rates get a Wilson score
interval (well behaved at 0, 1 and small n, unlike the normal approximation);
means get a seeded percentile bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from statistics import NormalDist

import numpy as np

from reports import Breakdown, GroupValue, Interval

_BOOTSTRAP_RESAMPLES = 2000


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval | None:
    """Wilson score interval for successes/n; None when n == 0 (no evidence, no interval)."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return None
    z = _z(level)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 or n successes the bound is exactly 0 or 1; avoid a float residue like 1e-17.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low=low, high=high, level=level, method="wilson")


def bootstrap_interval(
    values: Sequence[float], seed: int = 0, level: float = 0.95, resamples: int = _BOOTSTRAP_RESAMPLES
) -> Interval | None:
    """Percentile bootstrap interval of the mean, seeded so reports are reproducible."""
    _z(level)  # validates level
    if len(values) == 0:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) == 1:
        return Interval(low=float(arr[0]), high=float(arr[0]), level=level, method="bootstrap")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(arr), size=(resamples, len(arr)))
    means = arr[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(low=float(low), high=float(high), level=level, method="bootstrap")


def rate(flags: Sequence[bool]) -> tuple[float | None, Interval | None, int]:
    """Share of True with its Wilson interval and n."""
    n = len(flags)
    k = sum(1 for f in flags if f)
    return (k / n if n else None), wilson_interval(k, n), n


def mean(values: Sequence[float], seed: int = 0) -> tuple[float | None, Interval | None, int]:
    """Mean with its bootstrap interval and n."""
    n = len(values)
    return (float(np.mean(values)) if n else None), bootstrap_interval(values, seed=seed), n


def grouped(
    by: str,
    items: Iterable[tuple[Hashable, float | bool]],
    kind: str,
    seed: int = 0,
) -> Breakdown:
    """Breakdown of a rate (kind='rate') or mean (kind='mean') by group, sorted by group name."""
    if kind not in ("rate", "mean"):
        raise ValueError(f"kind must be 'rate' or 'mean', got {kind!r}")
    buckets: dict[str, list[float | bool]] = {}
    for key, value in items:
        buckets.setdefault(str(key), []).append(value)
    stat: Callable[..., tuple[float | None, Interval | None, int]] = rate if kind == "rate" else mean
    groups = []
    for key in sorted(buckets):
        vals = buckets[key]
        value, ci, n = stat([bool(v) for v in vals]) if kind == "rate" else stat([float(v) for v in vals], seed=seed)
        groups.append(GroupValue(group=key, value=value, ci=ci, n=n))
    return Breakdown(by=by, groups=groups)


def intervals_overlap(a: Interval | None, b: Interval | None) -> bool | None:
    """Whether two intervals overlap; None when either is missing."""
    if a is None or b is None:
        return None
    return a.overlaps(b)


def rate_difference(k1: int, n1: int, k2: int, n2: int, level: float = 0.95) -> tuple[float | None, Interval | None]:
    """p1 - p2 with Newcombe's hybrid score interval (Newcombe 1998, method 10), built from
    the two Wilson intervals; well behaved at 0, 1 and small n, unlike the Wald interval."""
    a, b = wilson_interval(k1, n1, level), wilson_interval(k2, n2, level)
    if a is None or b is None:
        return None, None
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    low = d - math.sqrt((p1 - a.low) ** 2 + (b.high - p2) ** 2)
    high = d + math.sqrt((a.high - p1) ** 2 + (p2 - b.low) ** 2)
    return d, Interval(low=max(-1.0, low), high=min(1.0, high), level=level, method="newcombe")


def paired_rate_difference(
    before: Sequence[bool], after: Sequence[bool], level: float = 0.95,
) -> tuple[float | None, Interval | None, int]:
    """(rate of ``after`` - rate of ``before``, interval, n) for one set of items measured twice
    (with and without a system prompt, say): Newcombe's hybrid score interval for paired
    proportions (Newcombe 1998, "Improved confidence intervals for the difference between binomial
    proportions based on paired data", method 10): the two Wilson intervals combined with the
    correlation between the arms (phi of the 2x2 table, continuity-corrected as Newcombe does; 0
    where a margin is empty). Unlike a paired
    bootstrap it does not collapse to a point when no item changed (0 of n flips still leaves
    room for a change of about 3/n either way), and it stays inside [-1, 1]."""
    if len(before) != len(after):
        raise ValueError(f"need paired outcomes of equal length, got {len(before)} and {len(after)}")
    n = len(before)
    if n == 0:
        return None, None, 0
    b = [bool(x) for x in before]
    a = [bool(x) for x in after]
    both = sum(1 for x, y in zip(b, a) if x and y)
    only_after = sum(1 for x, y in zip(b, a) if y and not x)
    only_before = sum(1 for x, y in zip(b, a) if x and not y)
    neither = n - both - only_after - only_before
    k_after, k_before = both + only_after, both + only_before
    w_after, w_before = wilson_interval(k_after, n, level), wilson_interval(k_before, n, level)
    assert w_after is not None and w_before is not None
    p_after, p_before = k_after / n, k_before / n
    margins = k_after * (n - k_after) * k_before * (n - k_before)
    # phi with Newcombe's continuity correction: a positive association counts only beyond n/2
    cross = float(both * neither - only_after * only_before)
    corrected = cross - n / 2 if cross > n / 2 else min(cross, 0.0)
    phi = corrected / math.sqrt(margins) if margins else 0.0
    d = p_after - p_before
    lo_a, hi_a = p_after - w_after.low, w_after.high - p_after
    lo_b, hi_b = p_before - w_before.low, w_before.high - p_before
    # max(0, ...): a strong positive phi can make the sum a hair negative in floating point
    low = d - math.sqrt(max(0.0, lo_a ** 2 - 2 * phi * lo_a * hi_b + hi_b ** 2))
    high = d + math.sqrt(max(0.0, hi_a ** 2 - 2 * phi * hi_a * lo_b + lo_b ** 2))
    return d, Interval(low=max(-1.0, low), high=min(1.0, high), level=level, method="newcombe"), n


def group_vs_rest(
    table: Sequence[Sequence[bool]], *, level: float = 0.95, seed: int = 0, resamples: int = 20_000,
) -> list[tuple[float, Interval]]:
    """Each group's rate minus the rest of its axis, paired by template.

    ``table[t][g]`` is the outcome of template t filled with group g. Group g's gap is the mean over
    templates of (its outcome - the mean outcome of the other groups on that template). Outputs of
    one template are not independent (the template sets the tone for every group), so the interval
    is a percentile bootstrap over whole templates; it is widened, where narrower, to Newcombe's
    interval for the pooled counts (g's k/n against the rest's), because a bootstrap of rare events
    (no toxic output at all) collapses to a point. One (gap, interval) per group, in column order.
    """
    arr = np.asarray(table, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] < 2:
        raise ValueError("group_vs_rest needs a templates x groups table with at least two groups")
    n_t, n_g = arr.shape
    rest = (arr.sum(axis=1, keepdims=True) - arr) / (n_g - 1)
    diff = arr - rest  # templates x groups
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_t, size=(resamples, n_t))
    boot = diff[idx].mean(axis=1)  # resamples x groups
    alpha = (1.0 - level) / 2.0
    lows, highs = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    out = []
    for g in range(n_g):
        k_g, k_rest = int(arr[:, g].sum()), int(arr.sum() - arr[:, g].sum())
        _, newc = rate_difference(k_g, n_t, k_rest, n_t * (n_g - 1), level=level)
        assert newc is not None
        low, high = min(float(lows[g]), newc.low), max(float(highs[g]), newc.high)
        out.append((float(diff[:, g].mean()),
                    Interval(low=max(-1.0, low), high=min(1.0, high), level=level, method="bootstrap",
                             clusters="template")))
    return out


def abs_interval(ci: Interval) -> tuple[float, float]:
    """Bounds of |x| for x in the interval."""
    if ci.low <= 0.0 <= ci.high:
        return 0.0, max(-ci.low, ci.high)
    return min(abs(ci.low), abs(ci.high)), max(abs(ci.low), abs(ci.high))


def cluster_rate(
    clusters: Sequence[Sequence[bool]], seed: int = 0, level: float = 0.95, resamples: int = _BOOTSTRAP_RESAMPLES,
    unit: str = "prompt",
) -> tuple[float | None, Interval | None, int]:
    """Share of True over all items when items come in clusters (k samples per prompt).

    Items of one cluster are not independent, so the interval resamples whole clusters
    (percentile bootstrap); with one item per cluster it is the Wilson interval. n counts items.
    """
    sizes = np.array([len(c) for c in clusters], dtype=np.float64)
    hits = np.array([sum(1 for x in c if x) for c in clusters], dtype=np.float64)
    n = int(sizes.sum())
    if n == 0:
        return None, None, 0
    if np.all(sizes == 1):
        return rate([bool(h) for h in hits])
    _z(level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(clusters), size=(resamples, len(clusters)))
    shares = hits[idx].sum(axis=1) / np.maximum(sizes[idx].sum(axis=1), 1.0)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(shares, [alpha, 1.0 - alpha])
    return float(hits.sum() / n), Interval(low=float(low), high=float(high), level=level, method="bootstrap",
                                           clusters=unit), n


def f1_interval(
    truth: Sequence[bool], predicted: Sequence[bool], seed: int = 0, level: float = 0.95,
    resamples: int = _BOOTSTRAP_RESAMPLES,
) -> tuple[float | None, Interval | None, int]:
    """F1 of ``predicted`` against ``truth`` with a percentile bootstrap interval over items."""
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    if len(t) != len(p):
        raise ValueError("truth and predicted differ in length")

    def f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
        denom = 2 * tp + fp + fn
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)

    if len(t) == 0 or not (t.any() or p.any()):
        return None, None, len(t)
    value = float(f1(np.array((t & p).sum()), np.array((~t & p).sum()), np.array((t & ~p).sum())))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(t), size=(resamples, len(t)))
    tt, pp = t[idx], p[idx]
    boot = f1((tt & pp).sum(1), (~tt & pp).sum(1), (tt & ~pp).sum(1))
    boot = boot[~np.isnan(boot)]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return value, Interval(low=float(low), high=float(high), level=level, method="bootstrap"), len(t)


# Below this sensitivity + specificity - 1 (Youden's J) a scorer is too weak for the Rogan-Gladen
# correction to mean anything; bootstrap resamples with J at or below _MIN_RESAMPLED_YOUDEN are dropped.
MIN_YOUDEN = 0.2
_MIN_RESAMPLED_YOUDEN = 0.05


def rogan_gladen(observed: float, sensitivity: float, specificity: float) -> float:
    """True prevalence from an observed rate through a scorer: (observed + spec - 1) / (sens + spec - 1),
    clipped to [0, 1]. The caller makes sure sens + spec - 1 > 0."""
    return min(1.0, max(0.0, (observed + specificity - 1.0) / (sensitivity + specificity - 1.0)))


def corrected_rate_detail(
    flags: Sequence[bool], sens: tuple[int, int], spec: tuple[int, int], *, seed: int,
    resamples: int = _BOOTSTRAP_RESAMPLES, level: float = 0.95, clusters: Sequence[Hashable] | None = None,
    cluster_unit: str = "prompt",
) -> tuple[float | None, Interval | None, int, int]:
    """``corrected_rate`` plus the number of bootstrap resamples dropped for a near-zero J."""
    _z(level)
    n = len(flags)
    (tp, n_pos), (tn, n_neg) = sens, spec
    if n == 0 or n_pos <= 0 or n_neg <= 0:
        return None, None, n, 0
    se, sp = tp / n_pos, tn / n_neg
    if se + sp - 1.0 < MIN_YOUDEN:
        return None, None, n, 0
    arr = np.asarray([1.0 if f else 0.0 for f in flags])
    point = rogan_gladen(float(arr.mean()), se, sp)
    rng = np.random.default_rng(seed)
    if clusters is None:
        # resampling n binary items with replacement is exactly Binomial(n, observed) / n
        obs = rng.binomial(n, float(arr.mean()), size=resamples) / n
    else:
        keys = list(dict.fromkeys(clusters))
        pos = {k: i for i, k in enumerate(keys)}
        c = np.array([pos[k] for k in clusters])
        hits = np.bincount(c, weights=arr, minlength=len(keys))
        sizes = np.bincount(c, minlength=len(keys)).astype(np.float64)
        idx = rng.integers(0, len(keys), size=(resamples, len(keys)))
        obs = hits[idx].sum(axis=1) / np.maximum(sizes[idx].sum(axis=1), 1.0)
    # The labelled set's sensitivity and specificity are drawn from their Jeffreys posteriors
    # (Beta(k + 1/2, n - k + 1/2)) rather than resampled binomially, so a perfect score on a finite
    # set (tp == n_pos) still carries its uncertainty.
    se_b = rng.beta(tp + 0.5, n_pos - tp + 0.5, size=resamples)
    sp_b = rng.beta(tn + 0.5, n_neg - tn + 0.5, size=resamples)
    j = se_b + sp_b - 1.0
    keep = j > _MIN_RESAMPLED_YOUDEN
    dropped = int(resamples - keep.sum())
    if not keep.any():
        return point, None, n, dropped
    est = np.clip((obs[keep] + sp_b[keep] - 1.0) / j[keep], 0.0, 1.0)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(est, [alpha, 1.0 - alpha])
    if clusters is None:
        # Never narrower than the items alone allow: the Wilson interval of the observed rate carried
        # through the correction (a bootstrap of 0 of 3 flags collapses to [0, 0]; Wilson does not).
        w = wilson_interval(int(arr.sum()), n, level)
        assert w is not None
        low, high = min(low, rogan_gladen(w.low, se, sp)), max(high, rogan_gladen(w.high, se, sp))
        items_low, items_high = w.low, w.high
    else:
        items_low, items_high = (float(q) for q in np.quantile(obs, [alpha, 1.0 - alpha]))
    # The bounds never bank on the labelled set's errors recurring here: the held-out sets are hard
    # cases, and audited outputs can be easier for the scorer in either direction (a flag rate below
    # the scorer's false-alarm rate shows it: Rogan-Gladen then clips every resample to 0). So the
    # interval also covers every scorer at least as good as measured — from perfect sensitivity
    # (lowest true rate: (observed + spec - 1) / spec) to perfect specificity (highest: observed /
    # sens). A fail needs evidence that holds even if the scorer misses nothing; a pass, evidence
    # that holds even if it never false-alarms.
    low = min(low, max(0.0, (items_low + sp - 1.0) / sp))
    high = max(high, min(1.0, items_high / se))
    return point, Interval(low=float(low), high=float(high), level=level, method="bootstrap",
                           clusters=None if clusters is None else cluster_unit), n, dropped


def corrected_rate(
    flags: Sequence[bool], sens: tuple[int, int], spec: tuple[int, int], *, seed: int,
    resamples: int = _BOOTSTRAP_RESAMPLES, clusters: Sequence[Hashable] | None = None,
) -> tuple[float | None, Interval | None, int]:
    """A rate measured through an imperfect scorer, corrected for its errors (Rogan-Gladen).

    ``flags`` are the scorer's calls on the items; ``sens`` = (tp, tp + fn) and ``spec`` = (tn, tn + fp)
    are its counts on a labelled set. The point is Rogan-Gladen clipped to [0, 1]; the percentile
    bootstrap interval resamples the items (whole clusters when ``clusters`` gives each item's cluster)
    and draws sens and spec from their Jeffreys posteriors on the labelled set, dropping resamples
    whose sens + spec - 1 is at most 0.05; without clusters it is widened, where narrower, to the
    items' Wilson interval carried through the correction (so a small sample never looks surer
    corrected than raw). It also covers every scorer at least as good on these outputs as on its
    labelled set: down to the reading with perfect sensitivity ((low + spec - 1) / spec) and up to
    the one with perfect specificity (high / sens), so neither a fail nor a pass rests on the
    labelled set's errors recurring exactly. The value is None when the scorer's sens + spec - 1 is below
    ``MIN_YOUDEN`` (too weak to correct anything). n counts items.
    """
    value, ci, n, _ = corrected_rate_detail(flags, sens, spec, seed=seed, resamples=resamples, clusters=clusters)
    return value, ci, n
