"""The interval formulas against published values (Newcombe 1998) and textbook sample sizes."""

import pytest

from smallwins.measure.stats import kaplan_meier, newcombe, sample_size, wilson


def test_wilson_matches_newcombes_table() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (score, no correction).
    for (k, n), (low, high) in {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        interval = wilson(k, n)
        assert interval.low == pytest.approx(low, abs=1e-4) and interval.high == pytest.approx(high, abs=1e-4)
    assert (wilson(0, 0).low, wilson(0, 0).high) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson(5, 4)


def test_newcombe_difference_matches_the_paper() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10: 56/70 vs 48/80.
    for (k1, n1, k2, n2), (low, high) in {
        (56, 70, 48, 80): (0.0524, 0.3339),
        (9, 10, 3, 10): (0.1705, 0.8090),
        (5, 56, 0, 29): (-0.0381, 0.1926),
    }.items():
        difference = newcombe(wilson(k1, n1), wilson(k2, n2))
        assert difference.estimate == pytest.approx(k1 / n1 - k2 / n2)
        assert difference.low == pytest.approx(low, abs=1e-4) and difference.high == pytest.approx(high, abs=1e-4)
    assert newcombe(wilson(56, 70), wilson(48, 80)).excludes_zero
    assert not newcombe(wilson(5, 56), wilson(0, 29)).excludes_zero
    assert newcombe(wilson(0, 0), wilson(1, 2)).estimate is None


def test_sample_size_matches_the_textbook_formula() -> None:
    # 50% -> 60%, alpha 0.05 two-sided, power 0.8, equal groups: 387.3 -> 388 per group.
    assert sample_size(0.5, 0.1, holdout_share=0.5).holdout == 388
    # 20% -> 40%: 81.2 -> 82 per group.
    equal = sample_size(0.2, 0.2, holdout_share=0.5)
    assert (equal.treatment, equal.holdout) == (82, 82)
    # A 20% holdout: fewer held out, more shown, more in total than with equal groups.
    skewed = sample_size(0.2, 0.2, holdout_share=0.2)
    assert skewed.holdout < 82 < skewed.treatment and skewed.total > equal.total
    with pytest.raises(ValueError):
        sample_size(0.5, 0.1, holdout_share=0)


def test_kaplan_meier_by_hand() -> None:
    # 4 streaks ended after 1, 1, 2, 3 days; 2 still running after 3 and 5 days.
    curve = kaplan_meier({1: 2, 2: 1, 3: 1}, {3: 1, 5: 1}, 6)
    # S(2) = 1 - 2/6; S(3) = S(2) * (1 - 1/4); S(4) = S(3) * (1 - 1/2); no break after that.
    assert curve == pytest.approx([1, 2 / 3, 1 / 2, 1 / 4, 1 / 4, 1 / 4])
