"""Frames with many emitters (spots/frames.py) and what cameras record of them (spots/camera.py): counts,
expected photons, the way back from ADU to photons, the EMCCD's excess noise, and bad settings in one line."""

import math
import re

import pytest
import torch

from pixel_spotter.spots.camera import Camera
from pixel_spotter.spots.frames import EmitterRanges, draw_frame


def test_the_emitter_count_is_poisson_with_the_density_times_the_area():
    ranges = EmitterRanges(density_per_um2=2.0)  # 64 x 64 px at 100 nm = 40.96 um^2: 81.92 expected
    gen = torch.Generator().manual_seed(0)
    counts = torch.tensor([len(draw_frame(gen, 64, 64, ranges).xy) for _ in range(400)], dtype=torch.float64)
    mean = ranges.mean_count(64, 64)
    assert mean == pytest.approx(2.0 * 6.4 * 6.4)
    assert abs(counts.mean().item() - mean) < 4 * math.sqrt(mean / 400)
    assert counts.var().item() == pytest.approx(mean, rel=0.25)  # Poisson: variance = mean


def test_a_frame_is_a_function_of_its_seed_and_its_draws_stay_in_their_ranges():
    ranges = EmitterRanges(density_per_um2=4.0, photons=(500, 800), sigma_psf=(1.2, 1.3), background=(20, 30))
    one, two = (draw_frame(torch.Generator().manual_seed(7), 32, 48, ranges) for _ in range(2))
    assert torch.equal(one.xy, two.xy) and one.background == two.background
    assert (one.xy[:, 0] >= -0.5).all() and (one.xy[:, 0] <= 47.5).all() and (one.xy[:, 1] <= 31.5).all()
    assert ((one.photons >= 500) & (one.photons <= 800)).all() and 20 <= one.background <= 30
    assert ((one.sigma_psf >= 1.2) & (one.sigma_psf <= 1.3)).all()


def test_the_expected_frame_holds_every_emitters_photons_and_the_background():
    ranges = EmitterRanges(density_per_um2=1.0, photons=(1000, 1000), sigma_psf=(1.0, 1.0), background=(10, 10))
    frame = draw_frame(torch.Generator().manual_seed(3), 64, 64, ranges)
    away = ((frame.xy > 5) & (frame.xy < 58)).all(dim=1)  # spots whose light stays in the frame
    frame = type(frame)(frame.xy[away], frame.photons[away], frame.sigma_psf[away], frame.background)
    mu = frame.expected(64, 64)
    assert len(frame.xy) > 10
    assert mu.sum().item() == pytest.approx(1000 * len(frame.xy) + 10 * 64 * 64, rel=1e-6)


@pytest.mark.parametrize("camera", [Camera(), Camera("emccd", quantum_efficiency=0.9, em_gain=200, e_per_adu=20),
                                    Camera("scmos", quantum_efficiency=0.8, e_per_adu=0.5, read_noise_e=1.5)],
                         ids=["ideal", "emccd", "scmos"])
def test_photons_read_back_from_the_camera_are_unbiased(camera):
    mu = torch.full((200, 200), 50.0, dtype=torch.float64)
    recorded = camera.record(mu, torch.Generator().manual_seed(0))
    assert recorded.min() >= 0 and recorded.max() <= 65535 and torch.equal(recorded, recorded.round())
    assert camera.to_photons(recorded).mean().item() == pytest.approx(50.0, rel=0.01)


def test_an_emccd_at_high_gain_doubles_the_variance():
    """The excess noise factor: Var(photons read back) ~ 2 mu / QE, against mu / QE without the gain."""
    mu = torch.full((300, 300), 40.0, dtype=torch.float64)
    emccd = Camera("emccd", quantum_efficiency=0.8, em_gain=300, e_per_adu=30, read_noise_e=0.0)
    scmos = Camera("scmos", quantum_efficiency=0.8, read_noise_e=0.0, e_per_adu=0.05)
    var_em = emccd.to_photons(emccd.record(mu, torch.Generator().manual_seed(1))).var().item()
    var_s = scmos.to_photons(scmos.record(mu, torch.Generator().manual_seed(1))).var().item()
    assert var_em / (mu[0, 0].item() / 0.8) == pytest.approx(2.0, rel=0.05)
    assert var_s / (mu[0, 0].item() / 0.8) == pytest.approx(1.0, rel=0.05)


def test_an_scmos_has_its_own_read_noise_per_pixel():
    noise = Camera("scmos", read_noise_e=1.5, read_noise_seed=4).read_noise_map(16, 16)
    again = Camera("scmos", read_noise_e=1.5, read_noise_seed=4).read_noise_map(16, 16)
    assert noise.std() > 0.1 and torch.equal(noise, again)
    assert (Camera("emccd").read_noise_map(4, 4) == 1.0).all()


@pytest.mark.parametrize("make, words", [
    (lambda: Camera("ccd"), "camera kind 'ccd' is unknown"),
    (lambda: Camera("emccd", quantum_efficiency=0), "quantum_efficiency must be a number in (0, 1]"),
    (lambda: Camera("emccd", em_gain=0.5), "em_gain must be a number in [1, 10000]"),
    (lambda: EmitterRanges(density_per_um2=-1), "density must be a number >= 0"),
    (lambda: Camera().record(torch.full((4, 4), float("nan")), torch.Generator()), "must be finite numbers >= 0"),
    (lambda: Camera("emccd").record(torch.full((4, 4), -1.0), torch.Generator()), "must be finite numbers >= 0"),
    (lambda: EmitterRanges(photons=(10, 1)), "photons must be [low, high]"),
    (lambda: draw_frame(torch.Generator(), 4096, 4096, EmitterRanges(density_per_um2=100)), "lower the density"),
])
def test_bad_settings_are_one_line(make, words):
    with pytest.raises(ValueError, match=re.escape(words)) as err:
        make()
    assert "\n" not in str(err.value)
