"""The localization-microscopy challenge's scores (evaluation/localizations.py): matching within a tolerance,
greedy and Hungarian, JI, recall, precision, F1, RMSE, efficiency, the border option and bad input."""

import math

import numpy as np
import pytest

from pixel_spotter.evaluation.localizations import Tally, efficiency, match, score


def test_the_efficiency_of_decodes_worked_example():
    # DECODE's evaluation/metric.py documents this example: JI 0.740 and RMSE 119.7 nm give E = -22.5
    assert efficiency(0.740, 119.7) == pytest.approx(-22.5, abs=0.05)
    assert efficiency(1.0, 0.0) == 100.0


def test_greedy_nearest_first_can_miss_a_pair_that_the_assignment_finds():
    # p is nearer to B than to A; taking p-B first leaves q with nothing within the tolerance
    true = [[0.0, 0.0], [1.2, 0.0]]  # A, B
    found = [[0.65, 0.0], [1.9, 0.0]]  # p, q
    assert match(found, true, tolerance=1.0, method="greedy") == [(0, 1)]
    assert match(found, true, tolerance=1.0, method="hungarian") == [(0, 0), (1, 1)]
    greedy, best = (score([found], [true], tolerance_nm=100, pixel_size_nm=100, method=m)
                    for m in ("greedy", "hungarian"))
    assert (greedy.tp, greedy.fp, greedy.fn) == (1, 1, 1)
    assert (best.tp, best.fp, best.fn) == (2, 0, 0)
    assert best.rmse_px == pytest.approx(math.sqrt((0.65**2 + 0.7**2) / 2))


def test_counts_and_scores_over_several_frames():
    true = [np.array([[10.0, 10.0], [20.0, 20.0]]), np.zeros((0, 2)), np.array([[5.0, 5.0]])]
    found = [np.array([[10.3, 10.4], [40.0, 40.0]]), np.array([[1.0, 1.0]]), np.array([[5.0, 5.0]])]
    s = score(found, true, tolerance_nm=250, pixel_size_nm=100)
    assert (s.tp, s.fp, s.fn) == (2, 2, 1)
    assert s.jaccard == pytest.approx(2 / 5) and s.recall == pytest.approx(2 / 3) and s.precision == pytest.approx(0.5)
    assert s.f1 == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert s.rmse_px == pytest.approx(math.sqrt((0.3**2 + 0.4**2 + 0.0) / 2))
    assert s.rmse_nm == pytest.approx(100 * s.rmse_px)
    assert s.efficiency == pytest.approx(100 - math.hypot(100 * (1 - 0.4), s.rmse_nm))


def test_rmse_over_the_bound_uses_the_matched_true_emitters_bounds():
    true = [[[10.0, 10.0], [30.0, 30.0]]]
    found = [[[10.1, 10.0]]]  # only the first emitter is found, 0.1 px off
    bounds = [[0.01 + 0.01, 4.0]]  # var_x + var_y of each true emitter; the second's is not used
    s = score(found, true, bounds=bounds)
    assert s.rmse_over_bound == pytest.approx(0.1 / math.sqrt(0.02))
    assert math.isnan(score(found, true).rmse_over_bound)  # no bounds given
    with pytest.raises(ValueError, match="frame 0 has 2 true positions but 1 bounds"):
        score(found, true, bounds=[[0.02]])


def test_a_pair_just_beyond_the_tolerance_is_two_mistakes():
    s = score([[[0.0, 2.51]]], [[[0.0, 0.0]]], tolerance_nm=250, pixel_size_nm=100)
    assert (s.tp, s.fp, s.fn) == (0, 1, 1) and math.isnan(s.rmse_px) and math.isnan(s.efficiency)


def test_nothing_to_find_and_nothing_found_is_undefined_not_perfect():
    s = score([[]], [[]])
    assert (s.tp, s.fp, s.fn) == (0, 0, 0) and math.isnan(s.jaccard) and math.isnan(s.f1)


def test_the_border_option_leaves_out_points_near_the_edge_in_both_sets():
    true = [[[1.0, 30.0], [30.0, 30.0]]]
    found = [[[30.1, 30.0]]]  # the point near the left edge was missed
    assert score(found, true).fn == 1
    trimmed = score(found, true, border_nm=450, frame_size=(64, 64))  # 4.5 px
    assert (trimmed.tp, trimmed.fp, trimmed.fn) == (1, 0, 0)


@pytest.mark.parametrize("found, true, kwargs, words", [
    ([[[1.0, 2.0, 3.0]]], [[[1.0, 2.0]]], {}, "(N, 2) array"),
    ([[[math.nan, 2.0]]], [[[1.0, 2.0]]], {}, "not a finite number"),
    ([[], []], [[]], {}, "2 frames of localizations against 1"),
    ([[]], [[]], {"tolerance_nm": 0}, "must be > 0"),
    ([[]], [[]], {"method": "closest"}, "matching method 'closest' is unknown"),
    ([[]], [[]], {"border_nm": 450}, "needs the frame size"),
])
def test_bad_input_is_one_line(found, true, kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
        score(found, true, **kwargs)
    assert "\n" not in str(err.value)


def test_a_tally_scores_frame_by_frame_as_score_does_and_judges_sets_and_uncertainties():
    from pixel_spotter.evaluation.localizations import Tally

    found = [[[0.1, 0.0], [5.0, 5.0]], [], [[2.0, 2.0]]]
    true = [[[0.0, 0.0]], [], [[2.0, 2.3]]]
    tally = Tally(tolerance_nm=50, pixel_size_nm=100)
    sigmas = [[[0.1, 0.1], [1.0, 1.0]], [], [[0.1, 0.1]]]
    for f, t, s in zip(found, true, sigmas):
        tally.add(f, t, sigmas=s)
    whole = score(found, true, tolerance_nm=50, pixel_size_nm=100)
    summary = tally.summary()
    assert (summary["tp"], summary["fp"], summary["fn"]) == (whole.tp, whole.fp, whole.fn) == (2, 1, 0)
    assert summary["jaccard"] == whole.jaccard and summary["rmse_px"] == pytest.approx(whole.rmse_px)
    assert summary["exact_frames"] == pytest.approx(2 / 3)  # the first frame found one pixel too many
    # z = error / predicted sigma over both coordinates of the 2 pairs: (1, 0) and (0, 3)
    assert summary["z_rms"] == pytest.approx(math.sqrt((1 + 0 + 0 + 9) / 4))
    assert summary["z_within_1"] == pytest.approx(3 / 4)
    assert "rmse_over_bound" not in summary  # no bounds given: left out, never NaN


def test_the_isolated_ratio_leaves_out_pairs_with_a_close_true_neighbour_also_one_outside_the_border():
    from pixel_spotter.evaluation.localizations import Tally

    # tolerance 250 nm at 100 nm/px: isolated means no other true emitter within 5 px
    true = [[10.0, 10.0], [13.0, 10.0], [30.0, 30.0], [43.0, 30.0], [45.5, 30.0]]
    found = [[10.2, 10.0], [13.0, 10.4], [30.1, 30.0], [43.0, 30.3]]
    bounds = [0.02, 0.02, 0.02, 0.02, 0.02]
    tally = Tally(tolerance_nm=250, pixel_size_nm=100)
    tally.add(found, true, bounds)
    summary = tally.summary()
    # only (30, 30) is isolated: (10, 10) and (13, 10) are 3 px apart, (43, 30) has (45.5, 30) 2.5 px away
    assert summary["isolated_over_bound"] == pytest.approx(0.1 / math.sqrt(0.02))
    assert summary["rmse_over_bound"] == pytest.approx(math.sqrt((0.04 + 0.16 + 0.01 + 0.09) / 0.08))
    # a 450 nm border (frame 50 px wide) leaves (45.5, 30) out of the scores (4.5 px from the edge at 49.5),
    # not out of the neighbours
    border = Tally(tolerance_nm=250, pixel_size_nm=100, border_nm=450, frame_size=(50, 50))
    border.add(found, true, bounds)
    assert border.summary()["isolated_over_bound"] == pytest.approx(0.1 / math.sqrt(0.02))
    assert "isolated_over_bound" not in Tally().summary()  # nothing scored: left out
    # the bounds with the whole frame unknown at once: the RMS of each pair's error over its own bound
    joint = Tally(tolerance_nm=250, pixel_size_nm=100)
    joint.add(found, true, bounds, joint_bounds=[0.05, 0.05, 0.02, 0.03, 0.04])
    ratios = [0.04 / 0.05, 0.16 / 0.05, 0.01 / 0.02, 0.09 / 0.03]
    assert joint.summary()["error_over_joint_bound"] == pytest.approx(math.sqrt(sum(ratios) / 4))
    assert "error_over_joint_bound" not in summary  # none given: left out
    partly = Tally(tolerance_nm=250, pixel_size_nm=100)  # a pair with no joint bound is left out, not NaN
    partly.add(found, true, bounds, joint_bounds=[0.05, math.nan, 0.02, 0.03, 0.04])
    assert partly.summary()["error_over_joint_bound"] == pytest.approx(math.sqrt((0.8 + 0.5 + 3.0) / 3))
    # an estimator at the joint bounds, on the same matched pairs: their joint bounds' sum over their single ones'
    assert joint.summary()["efficient_over_bound"] == pytest.approx(math.sqrt((0.05 + 0.05 + 0.02 + 0.03) / 0.08))
    assert partly.summary()["efficient_over_bound"] == pytest.approx(math.sqrt((0.05 + 0.02 + 0.03) / 0.06))
    assert "efficient_over_bound" not in summary
    with pytest.raises(ValueError, match="5 true positions but 2 joint bounds"):
        joint.add(found, true, bounds, joint_bounds=[0.1, 0.1])


def test_frames_with_nothing_to_find_where_nothing_was_found_are_perfect():
    from pixel_spotter.evaluation.localizations import Tally

    tally = Tally()
    tally.add([], [])
    summary = tally.summary()
    assert summary["jaccard"] == summary["f1"] == summary["exact_frames"] == 1.0
    assert all(math.isfinite(v) for v in summary.values()) and "rmse_px" not in summary
    tally.add([[1.0, 1.0]], [])
    assert tally.summary()["jaccard"] == 0.0 and tally.summary()["exact_frames"] == 0.5


def test_without_a_matched_pair_the_efficiency_takes_the_tolerance_as_the_rmse():
    from pixel_spotter.evaluation.localizations import Tally

    tally = Tally(tolerance_nm=250, pixel_size_nm=100)
    tally.add([[9.0, 9.0]], [[0.0, 0.0]])
    summary = tally.summary()
    assert "rmse_px" not in summary and summary["efficiency"] == pytest.approx(efficiency(0.0, 250.0))


def test_the_calibration_curve_compares_each_bin_of_predicted_sigma_with_its_errors():
    from pixel_spotter.evaluation.localizations import MIN_BIN

    tally = Tally(tolerance_nm=250, pixel_size_nm=100)
    rng = np.random.default_rng(0)
    true = np.stack([np.arange(200) * 3.0, np.full(200, 50.0)], axis=1)  # far apart: each matches its own
    signs = np.where(rng.uniform(size=(200, 2)) < 0.5, -1.0, 1.0)
    sigmas = np.empty((200, 2))
    sigmas[:100], sigmas[100:] = 0.1, 0.5  # two bins: errors twice the first's sigma, equal to the second's
    errors = np.where(np.arange(200)[:, None] < 100, 0.2, 0.5) * signs
    tally.add(true + errors, true, sigmas=sigmas)
    tally.add(np.array([[1000.0, 1000.0]] * 3), np.array([[1000.0, 1000.0]] * 3) + 0.01,
              sigmas=np.full((3, 2), 2.0))  # 6 coordinates: too few for a bin of their own
    curve = tally.calibration()
    assert [round(row["sigma_nm"], 6) for row in curve] == [10.0, 50.0]
    assert [round(row["rms_error_nm"], 6) for row in curve] == [20.0, 50.0]
    assert [row["coordinates"] for row in curve] == [200.0, 200.0] and 6 < MIN_BIN
    assert Tally().calibration() == []  # no sigmas given: no curve
