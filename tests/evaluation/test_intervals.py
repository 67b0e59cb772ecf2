"""The bootstrap intervals of a tally's efficiency and RMSE over the CRLB (evaluation/intervals.py)."""

import math

import numpy as np
import pytest

from pixel_spotter.evaluation.intervals import frame_bootstrap
from pixel_spotter.evaluation.localizations import Tally


def _tally(errors, bound=0.01, missed=0):
    """One emitter per frame at the origin, found at ``errors[k]`` (px); ``missed`` more frames find nothing."""
    tally = Tally(250.0, 100.0)
    for e in errors:
        tally.add(np.array([[e, 0.0]]), np.zeros((1, 2)), np.array([bound]))
    for _ in range(missed):
        tally.add(np.zeros((0, 2)), np.zeros((1, 2)), np.array([bound]))
    return tally


def test_frames_all_alike_give_an_interval_of_one_point_the_summarys_number():
    tally = _tally([0.1] * 30, missed=0)
    summary, interval = tally.summary(), frame_bootstrap(tally)
    for name in ("efficiency", "rmse_over_bound"):
        assert interval[name][0] == pytest.approx(summary[name]) == pytest.approx(interval[name][1])
    assert summary["rmse_over_bound"] == pytest.approx(1.0)  # 0.1 px against a bound of 0.01 px^2
    assert frame_bootstrap(Tally()) == {}
    empty = Tally()
    empty.add(np.zeros((0, 2)), np.zeros((0, 2)))
    assert frame_bootstrap(empty) == {"efficiency": (100.0, 100.0)}  # nothing to find, nothing found


def test_one_badly_placed_pair_among_a_hundred_widens_the_ratios_interval():
    """The way close pairs found as one move RMSE / CRLB: a single frame whose error is 10 bounds."""
    good = _tally([0.1] * 100)
    bad = _tally([0.1] * 99 + [1.0])
    low, high = frame_bootstrap(bad)["rmse_over_bound"]
    assert frame_bootstrap(good)["rmse_over_bound"][1] - frame_bootstrap(good)["rmse_over_bound"][0] < 1e-9
    assert low < 1.1 and high > 1.5 and low <= bad.summary()["rmse_over_bound"] <= high  # 1.41 either way


def test_the_95_percent_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    """Errors drawn at the bound (true RMSE / CRLB = 1), 60 frames of 5 emitters, 300 repetitions: the interval
    holds 1 in 0.90-0.99 of them (a percentile bootstrap of a ratio of sums undercovers a little on few frames)."""
    rng = np.random.default_rng(0)
    covered = 0
    for r in range(300):
        tally = Tally(250.0, 100.0)
        for _ in range(60):
            true = rng.uniform(0, 30, (5, 2))
            tally.add(true + rng.normal(0, 0.05, (5, 2)), true, np.full(5, 2 * 0.05 ** 2))
        low, high = frame_bootstrap(tally, resamples=500, seed=r)["rmse_over_bound"]
        covered += low <= 1.0 <= high
    assert 0.90 <= covered / 300 <= 0.99, covered


def test_a_frame_without_a_pair_counts_against_the_efficiency():
    tally = _tally([0.1] * 10, missed=10)
    summary, interval = tally.summary(), frame_bootstrap(tally)
    assert summary["jaccard"] == pytest.approx(0.5)
    low, high = interval["efficiency"]
    assert low < summary["efficiency"] < high and high < 100 and math.isfinite(low)
