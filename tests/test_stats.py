import pytest

from audit import stats


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
