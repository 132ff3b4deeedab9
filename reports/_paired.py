"""Paired tests for two runs on the same items: McNemar's exact test for binary outcomes, a
paired bootstrap for continuous ones, and Holm's step-down correction across metrics.

They live here rather than in ``probes.stats`` because comparing reports is ``reports``' job
and ``reports`` imports nothing of ``probes``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from reports._schema import Interval

BOOTSTRAP_RESAMPLES = 2000


def mcnemar_exact(worse: int, better: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: items that flipped one way
    (``worse``) and the other (``better``). Under no change each flip is a fair coin, so the
    p-value is twice the binomial tail of the rarer flip, capped at 1; no flips gives 1."""
    if worse < 0 or better < 0:
        raise ValueError(f"discordant counts must be >= 0, got {worse} and {better}")
    n = worse + better
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(worse, better) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers; the division rounds once


def paired_bootstrap(old: Sequence[float], new: Sequence[float], seed: int = 0,
                     resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95) -> tuple[float, Interval, float]:
    """(mean of new - old, its percentile bootstrap interval, two-sided p) over paired items.
    Items are resampled with their pair, so what the two runs share cancels. The p-value is
    twice the share of resampled means on the far side of 0, with the +1 Monte Carlo
    correction, so it is never reported as exactly 0."""
    if len(old) != len(new) or not old:
        raise ValueError(f"need equal, non-empty paired samples, got {len(old)} and {len(new)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    d = np.asarray(new, dtype=np.float64) - np.asarray(old, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    far = min(int((means <= 0).sum()), int((means >= 0).sum()))
    p = min(1.0, 2.0 * (far + 1) / (resamples + 1))
    return float(d.mean()), Interval(low=float(low), high=float(high), level=level, method="bootstrap"), p


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest of m is
    multiplied by (m - i + 1), then made monotone. Rejecting where the adjusted p <= alpha
    holds the family-wise error rate at alpha for any dependence between the tests."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out
