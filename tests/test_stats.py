"""iql_tutorial.utils.stats against numbers computed by hand on tiny arrays, and the bootstrap
interval's coverage on a simulated distribution."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from iql_tutorial.utils import stats


def test_iqm_of_eight_known_scores_is_the_mean_of_the_middle_four():
    # sorted: 1 2 3 4 | 10 20 | 30 100; 25% of 8 = 2 cut at each end -> mean(3, 4, 10, 20) = 9.25
    scores = [20, 1, 100, 3, 10, 2, 30, 4]
    assert stats.iqm(scores) == pytest.approx(9.25)
    # five runs: int(0.25 * 5) = 1 cut at each end -> mean(2, 3, 50) = 55 / 3
    assert stats.iqm([3, 1, 50, 2, 90]) == pytest.approx(55 / 3)
    # three runs: nothing is cut, the IQM is the mean
    assert stats.iqm([1, 2, 9]) == pytest.approx(4.0)


def test_probability_of_improvement_by_hand():
    # pairs (x, y): 3>1, 3>2, 3=3 (1/2), 1=1 (1/2), 1<2, 1<3 -> (1 + 1 + 0.5 + 0.5) / 6 = 0.5
    assert stats.probability_of_improvement([3, 1], [1, 2, 3]) == pytest.approx(0.5)
    # every x above every y
    assert stats.probability_of_improvement([5, 6], [1, 2]) == 1.0
    # 2 beats 1 and ties 2; 0 loses both: (1 + 0.5 + 0 + 0) / 4
    assert stats.probability_of_improvement([2, 0], [1, 2]) == pytest.approx(0.375)
    # all equal: every pair a tie
    assert stats.probability_of_improvement([0, 0, 0], [0, 0]) == 0.5


def test_vectorized_pair_count_matches_mann_whitney():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.integers(0, 5, size=rng.integers(2, 7)).astype(float)
        y = rng.integers(0, 5, size=rng.integers(2, 7)).astype(float)
        assert stats._pairwise_improvement(x, y) == pytest.approx(stats.probability_of_improvement(x, y))


def test_average_probability_of_improvement_over_datasets():
    # dataset 1: 1.0 (x always above); dataset 2: 0.375 (as above) -> 0.6875
    out = stats.probability_of_improvement_interval([[5, 6], [2, 0]], [[1, 2], [1, 2]], n_resamples=500)
    assert out.estimate == pytest.approx(0.6875)
    assert 0 <= out.low <= out.estimate <= out.high <= 1


def test_interval_bounds_and_degenerate_cases():
    # three values: a percentile interval of their mean cannot leave [min, max]
    out = stats.iqm_interval([49.2, 60.5, 81.7], n_resamples=2000)
    assert out.estimate == pytest.approx((49.2 + 60.5 + 81.7) / 3)
    assert 49.2 <= out.low < out.estimate < out.high <= 81.7
    # all runs equal: the interval is that value
    assert stats.iqm_interval([0.0, 0.0, 0.0]) == stats.Interval(0.0, 0.0, 0.0)
    # one run: no interval
    one = stats.iqm_interval([7.0])
    assert one.estimate == 7.0 and math.isnan(one.low) and math.isnan(one.high)


def test_iqm_interval_covers_the_true_centre_about_95_percent_of_the_time():
    # a symmetric distribution: its IQM is its mean (2.0). 200 repetitions, 12 runs each.
    rng = np.random.default_rng(0)
    hits = 0
    for rep in range(200):
        x = rng.normal(2.0, 3.0, size=12)
        ci = stats.iqm_interval(x, n_resamples=400, seed=rep)
        hits += ci.low <= 2.0 <= ci.high
    # a percentile interval from 12 runs covers a little less than 95%; binomial sd at 200 is ~1.5%
    assert 0.85 <= hits / 200 <= 0.99


def test_aggregate_iqm_is_stratified():
    # every resample keeps two runs of dataset A (near 0) and two of B (near 100): the pooled IQM
    # of four runs cuts one at each end, so it always averages one A run and one B run
    a, b = [0.0, 2.0], [100.0, 102.0]
    out = stats.aggregate_iqm_interval([a, b], n_resamples=500)
    assert out.estimate == pytest.approx(51.0)
    assert 50.0 <= out.low <= out.high <= 52.0


def test_difference_interval_and_verdict():
    far = stats.iqm_difference_interval([50.0, 60.0, 70.0], [1.0, 2.0, 3.0], n_resamples=1000)
    assert far.estimate == pytest.approx(58.0)
    assert stats.verdict(far, 0.0, "IQL ahead", "BC ahead") == "IQL ahead"
    flip = stats.iqm_difference_interval([1.0, 2.0, 3.0], [50.0, 60.0, 70.0], n_resamples=1000)
    assert stats.verdict(flip, 0.0, "IQL ahead", "BC ahead") == "BC ahead"
    mixed = stats.iqm_difference_interval([1.0, 5.0, 9.0], [2.0, 4.0, 8.0], n_resamples=1000)
    assert mixed.low < 0 < mixed.high
    assert stats.verdict(mixed, 0.0, "IQL ahead", "BC ahead") == "not separable"
    assert stats.verdict(stats.Interval(1.0, math.nan, math.nan), 0.0, "a", "b") == "not separable"
    # both methods scored 0 in every run: no difference, not an undecided one
    same = stats.iqm_difference_interval([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], n_resamples=200)
    assert stats.verdict(same, 0.0, "a", "b") == "no difference"


def test_paired_change_resamples_seeds_in_pairs():
    # every seed gains exactly 10: any paired resample's mean change is 10
    out = stats.paired_change_interval([1.0, 20.0, 7.0], [11.0, 30.0, 17.0], n_resamples=500)
    assert (out.estimate, out.low, out.high) == pytest.approx((10.0, 10.0, 10.0))


def test_seeds_to_separate_by_hand():
    # means 2 and 0 (d = 2), variances 1 and 1 (s^2 = 1): n = 2 (1.95996 + 0.84162)^2 / 4 = 3.92 -> 4
    assert stats.seeds_to_separate([1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]) == 4
    # half the difference needs four times the seeds: 15.7 -> 16
    assert stats.seeds_to_separate([0.0, 1.0, 2.0], [-1.0, 0.0, 1.0]) == 16
    assert math.isnan(stats.seeds_to_separate([0.0, 0.0], [0.0, 0.0]))
    assert math.isnan(stats.seeds_to_separate([1.0], [0.0, 2.0]))


def test_performance_profile():
    assert stats.performance_profile([0, 10, 20, 30], [-1, 10, 25, 30]).tolist() == [1.0, 0.5, 0.25, 0.0]


def test_final_scores_and_compare_on_a_tiny_sweep():
    rows = []
    for seed, (iql, bc) in enumerate([(50.0, 1.0), (60.0, 2.0), (70.0, 3.0)]):
        for step, f in ((5, 0.5), (10, 1.0)):
            rows.append(("d", "IQL", seed, step, iql * f))
            rows.append(("d", "BC", seed, step, bc * f))
    # a run still in progress (its last step is 5): left out with steps=10
    rows.append(("d", "IQL", 3, 5, 0.0))
    curves = pd.DataFrame(rows, columns=["dataset", "policy", "seed", "step", "score_mean"])
    final = stats.final_scores(curves, steps=10)
    assert len(final) == 6 and set(final["step"]) == {10}
    table = stats.compare(final, n_resamples=500)
    row = table.loc["d"]
    assert (row["n IQL"], row["n BC"]) == (3, 3)
    assert row["IQL"] == pytest.approx(60.0) and row["BC"] == pytest.approx(2.0)
    assert row["verdict"] == "IQL ahead" and row["P(IQL > BC)"] == 1.0
    assert math.isnan(row["seeds needed"])
    agg = stats.aggregate(final, n_resamples=500)
    assert agg["IQL"].estimate == pytest.approx(60.0)
    assert agg["P(IQL > BC)"].estimate == 1.0


def test_paired_change_of_a_tiny_fine_tuning_sweep():
    rows = [
        ("d", s, step, v)
        for s, (a, b) in enumerate([(1.0, 11.0), (20.0, 30.0), (7.0, 17.0)])
        for step, v in ((0, a), (9, b))
    ]
    rows += [("flat", s, step, 0.0) for s in range(3) for step in (0, 9)]
    curves = pd.DataFrame(rows, columns=["dataset", "seed", "step", "score_mean"])
    out = stats.paired_change(curves, n_resamples=300)
    assert out.loc["d", "change"] == pytest.approx((10.0, 10.0, 10.0))
    assert out.loc["d", "label"] == "rose" and out.loc["flat", "label"] == "no difference"
    assert out.loc["d", "offline"][0] == pytest.approx(28 / 3) and out.loc["d", "seeds"] == 3
