"""The classical many-emitter pipeline (spots/classical.py): matched-filter maxima, then a window ML fit each."""

import math

import pytest
import torch

from pixel_spotter.evaluation.localizations import score
from pixel_spotter.spots.camera import Camera
from pixel_spotter.spots.classical import localize, tune_threshold
from pixel_spotter.spots.crlb import crlb_xy
from pixel_spotter.spots.frames import EmitterRanges, Frame, draw_frame

CAMERA = Camera()  # photon counts


def _frames(xy_per_frame, photons=2000.0, background=10.0, sigma=1.3, size=32, seed=0):
    frames, gen = [], torch.Generator().manual_seed(seed)
    for xy in xy_per_frame:
        xy = torch.as_tensor(xy, dtype=torch.float64).reshape(-1, 2)
        frame = Frame(xy, torch.full((len(xy),), photons, dtype=torch.float64),
                      torch.full((len(xy),), sigma, dtype=torch.float64), background)
        frames.append(CAMERA.record(frame.expected(size, size), gen))
    return torch.stack(frames)


def test_an_isolated_emitter_is_found_near_its_bound():
    true = torch.tensor([[15.3, 16.7]], dtype=torch.float64)
    frames = _frames([true] * 40)
    found = localize(frames, 1.3, threshold=5.0)
    assert [len(loc.xy) for loc in found] == [1] * 40
    errors = torch.stack([loc.xy[0] - true[0] for loc in found])
    var_x, var_y = crlb_xy(true, 2000.0, 10.0, 1.3, 32, 32)
    bound = torch.stack([var_x, var_y], dim=1)[0].sqrt()  # the bound's standard deviations of x and y
    rmse = errors.pow(2).mean(dim=0).sqrt()
    assert (rmse < 1.5 * bound).all(), (rmse, bound)


def test_sparse_frames_score_near_the_bound_of_their_emitters():
    """Frames with a few well-separated emitters: every one found, matched RMSE within 1.5x of the emitters'
    single-emitter bounds (score(..., bounds=Frame.bounds))."""
    grid = [[8.2, 8.6], [23.7, 8.1], [8.4, 23.3], [23.1, 23.9]]
    frames, truths, bounds = [], [], []
    gen = torch.Generator().manual_seed(1)
    for _ in range(15):
        xy = torch.tensor(grid, dtype=torch.float64)
        frame = Frame(xy, torch.full((4,), 2000.0, dtype=torch.float64), torch.full((4,), 1.3, dtype=torch.float64),
                      10.0)
        frames.append(CAMERA.record(frame.expected(32, 32), gen))
        truths.append(xy.numpy())
        bounds.append(frame.bounds(32, 32).numpy())
    found = localize(torch.stack(frames), 1.3, threshold=5.0)
    s = score([loc.xy.numpy() for loc in found], truths, bounds=bounds)
    assert (s.tp, s.fp, s.fn) == (60, 0, 0)
    assert 0.5 < s.rmse_over_bound < 1.5, s.rmse_over_bound


def test_two_emitters_closer_than_the_psf_make_one_localization():
    """The pipeline's weakness in crowded frames: one maximum, one fit, in between."""
    frames = _frames([[[15.0, 16.0], [16.2, 16.0]]] * 5)
    found = localize(frames, 1.3, threshold=5.0)
    assert [len(loc.xy) for loc in found] == [1] * 5
    assert all(15.0 < float(loc.xy[0, 0]) < 16.2 for loc in found)


def test_background_alone_finds_almost_nothing():
    frames = _frames([torch.zeros(0, 2)] * 10, background=50.0)
    assert sum(len(loc.xy) for loc in localize(frames, 1.3, threshold=5.0)) <= 1


def test_denser_frames_score_lower_and_the_tuned_threshold_is_one_of_those_tried():
    efficiencies = []
    for density in (0.25, 4.0):
        ranges = EmitterRanges(density_per_um2=density, photons=(2000, 2000), background=(10, 10),
                               sigma_psf=(1.3, 1.3))
        frames, truths = [], []
        for seed in range(6):
            gen = torch.Generator().manual_seed(seed)
            frame = draw_frame(gen, 48, 48, ranges)
            frames.append(CAMERA.record(frame.expected(48, 48), gen))
            truths.append(frame.xy)
        frames = torch.stack(frames)
        threshold, e = tune_threshold(frames[:3], truths[:3], 1.3, [3, 5, 8])
        assert threshold in (3, 5, 8) and math.isfinite(e)
        found = localize(frames[3:], 1.3, threshold)
        efficiencies.append(score([loc.xy.numpy() for loc in found], [t.numpy() for t in truths[3:]]).efficiency)
    assert efficiencies[0] > efficiencies[1] + 20, efficiencies


@pytest.mark.parametrize("frames, words", [
    (torch.zeros(32, 32), "frames must be (frames, height, width)"),
    (torch.zeros(1, 8, 8), "smaller than the fit's 9x9 window"),
    (torch.full((1, 32, 32), float("nan")), "not a finite number"),  # not an empty answer
])
def test_bad_frames_are_one_line(frames, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
        localize(frames, 1.3, 5.0)
    assert "\n" not in str(err.value)


def test_the_joint_bound_is_the_single_one_for_a_lone_emitter_and_grows_as_two_overlap():
    from pixel_spotter.spots.frames import JOINT_BOUND_MAX

    def frame(xy):
        k = len(xy)
        return Frame(xy=torch.tensor(xy, dtype=torch.float64), photons=torch.full((k,), 2000.0, dtype=torch.float64),
                     sigma_psf=torch.full((k,), 1.3, dtype=torch.float64), background=20.0)

    lone = frame([[12.3, 10.6]])
    torch.testing.assert_close(lone.joint_bounds(24, 24), lone.bounds(24, 24), rtol=1e-9, atol=0)
    far = frame([[5.2, 6.1], [18.7, 17.4]])  # 19 px apart: nothing shared but the background
    torch.testing.assert_close(far.joint_bounds(24, 24), far.bounds(24, 24), rtol=1e-3, atol=0)
    close = frame([[11.0, 12.0], [12.5, 12.0]])  # 1.5 px apart, PSF sigma 1.3: hard to tell apart
    assert (close.joint_bounds(24, 24) > 3 * close.bounds(24, 24)).all()
    side = int((JOINT_BOUND_MAX / 4) ** 0.5) + 1  # 3 * 1 + 1 unknowns times more pixels than the limit
    assert torch.isnan(lone.joint_bounds(side, side)).all()
    assert torch.isnan(frame([[7.0, 8.0], [7.0, 8.0]]).joint_bounds(24, 24)).all()  # one position twice: singular
