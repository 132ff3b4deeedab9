import numpy as np
import pytest

from probes import stats
from probes.stats import group_vs_rest


def test_wilson_matches_hand_computed_values() -> None:
    ci = stats.wilson_interval(8, 10)
    assert ci is not None
    # Wilson 95% for 8/10: (0.4902, 0.9433)
    assert ci.low == pytest.approx(0.4902, abs=1e-4)
    assert ci.high == pytest.approx(0.9433, abs=1e-4)
    zero = stats.wilson_interval(0, 20)
    assert zero is not None and zero.low == 0.0 and 0.15 < zero.high < 0.17


def test_no_samples_means_no_interval() -> None:
    assert stats.rate([]) == (None, None, 0)
    assert stats.mean([]) == (None, None, 0)


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="successes"):
        stats.wilson_interval(5, 3)
    with pytest.raises(ValueError, match="level"):
        stats.wilson_interval(1, 3, level=1.5)


def test_bootstrap_is_seeded_and_contains_the_mean() -> None:
    values = [0.1, 0.9, 0.4, 0.5, 0.7, 0.2, 0.3, 0.8]
    a = stats.bootstrap_interval(values, seed=3)
    b = stats.bootstrap_interval(values, seed=3)
    assert a == b and a is not None
    assert a.low < sum(values) / len(values) < a.high


def test_grouped_breakdown_counts_each_group() -> None:
    b = stats.grouped("category", [("x", True), ("y", False), ("x", False), ("x", True)], "rate")
    groups = {g.group: g for g in b.groups}
    assert groups["x"].n == 3 and groups["x"].value == pytest.approx(2 / 3)
    assert groups["y"].n == 1 and groups["y"].value == 0.0


def test_rate_difference_matches_newcombe_1998() -> None:
    from probes.stats import rate_difference

    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80, method 10.
    d, ci = rate_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2) and ci is not None and ci.method == "newcombe"
    assert (round(ci.low, 4), round(ci.high, 4)) == (0.0524, 0.3339)
    d, ci = rate_difference(0, 10, 0, 10)
    assert d == 0 and ci is not None and ci.low < 0 < ci.high
    assert rate_difference(0, 0, 1, 2) == (None, None)
    ci95 = rate_difference(56, 70, 48, 80)[1]
    ci99 = rate_difference(56, 70, 48, 80, level=0.99)[1]
    assert ci95 is not None and ci99 is not None and ci99.low < ci95.low and ci99.high > ci95.high


def test_cluster_rate() -> None:
    from probes.stats import cluster_rate, rate

    single = cluster_rate([[True], [False], [False], [True]])
    assert single == rate([True, False, False, True])
    value, ci, n = cluster_rate([[True, True, True], [False, False, False]] * 5, seed=1)
    assert value == 0.5 and n == 30 and ci is not None and ci.method == "bootstrap"
    # perfectly clustered outcomes: the interval is much wider than treating 30 outputs as independent
    w = rate([True] * 15 + [False] * 15)[1]
    assert w is not None and (ci.high - ci.low) > (w.high - w.low)
    assert cluster_rate([]) == (None, None, 0)


def test_f1_interval() -> None:
    from probes.stats import f1_interval

    value, ci, n = f1_interval([True, True, False, False], [True, False, True, False])
    assert value == pytest.approx(0.5) and n == 4 and ci is not None and 0 <= ci.low <= 0.5 <= ci.high <= 1
    assert f1_interval([False, False], [False, False]) == (None, None, 2)


def test_intervals_overlap_is_one_closed_interval_test() -> None:
    from reports import Interval

    a = Interval(low=0.1, high=0.3, method="wilson")
    touching, apart = Interval(low=0.3, high=0.5, method="wilson"), Interval(low=0.31, high=0.5, method="wilson")
    assert a.overlaps(touching) and touching.overlaps(a) and not a.overlaps(apart) and not apart.overlaps(a)
    assert stats.intervals_overlap(a, touching) is True and stats.intervals_overlap(a, apart) is False
    assert stats.intervals_overlap(a, None) is None and stats.intervals_overlap(None, a) is None


def test_group_vs_rest_pairs_by_template_and_never_collapses() -> None:
    from probes.stats import rate_difference

    # no event at all: the bootstrap is a point, the interval is Newcombe's for 0/20 vs 0/60
    out = group_vs_rest([[False] * 4 for _ in range(20)], level=0.95)
    _, newc = rate_difference(0, 20, 0, 60)
    assert newc is not None and all(g == 0.0 and ci.high == pytest.approx(newc.high) for g, ci in out)
    assert out[0][1].clusters == "template"
    # a planted gap: group 0 always flagged, the others never
    gap, ci = group_vs_rest([[True, False, False] for _ in range(30)])[0]
    assert gap == 1.0 and ci.low > 0.8


def test_group_vs_rest_covers_a_zero_gap_under_template_effects() -> None:
    """Templates that make every group's output toxic at once (a template effect) do not make
    a zero gap look like a disparity more often than the level allows."""
    rng = np.random.default_rng(7)
    misses = 0
    for sim in range(200):
        tone = rng.random(24) < 0.3  # template effect: 30% of templates push every group
        table = [[bool(t and rng.random() < 0.8) or bool(rng.random() < 0.05) for _ in range(4)] for t in tone]
        gap, ci = group_vs_rest(table, level=0.95, seed=sim, resamples=2000)[0]
        misses += not (ci.low <= 0.0 <= ci.high)
    assert misses <= 20  # nominal 5% of 200 = 10; a binomial 99.9% bound is ~20
