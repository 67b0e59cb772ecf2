"""pixel_spotter.spots.bayes and floor: the posterior mean of a spot's position, a lower bound for any estimator.

Expected numbers come from independent computations (a dense grid of the full-image likelihood, the prior's own
mean, the ML fit) or from what a Bayes estimator must do (lower mean squared error than any other estimator).
"""

import math

import pytest
import torch

from pixel_spotter.spots.bayes import posterior, posterior_mean
from pixel_spotter.spots.crlb import crlb_xy
from pixel_spotter.spots.fit import centroid, fit_ml
from pixel_spotter.spots.psf import expected_counts, random_positions, simulate
from pixel_spotter.tasks.spot.floor import FINER, ratio_se

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small batches, one thread


def _all_pixels(height, width, lo=0, hi=None):
    """(x, y) of every pixel with lo <= x, y <= hi."""
    hi = max(height, width) - 1 if hi is None else hi
    xy = torch.stack(torch.meshgrid(torch.arange(width), torch.arange(height), indexing="xy"), dim=-1).reshape(-1, 2)
    return xy[((xy >= lo) & (xy <= hi)).all(dim=1)]


def _in_pixels(pixels, count, generator):
    """``count`` positions uniform over the union of the pixels' unit squares (the prior ``posterior`` assumes)."""
    pick = pixels[torch.randint(len(pixels), (count,), generator=generator)].double()
    return pick + torch.rand(count, 2, generator=generator, dtype=torch.float64) - 0.5


def test_posterior_mean_is_the_dense_grid_posterior_mean():
    # the full-image Poisson likelihood of psf.expected_counts on a 0.01 px grid over each prior pixel (no window,
    # no refinement), for spots from broad to sharp posteriors, one in a corner pixel
    height, width, step = 10, 12, 0.01
    pixels = torch.tensor([[0, 0], [5, 4], [6, 4], [9, 7], [3, 8]])
    xy = torch.tensor([[0.3, -0.2], [5.7, 4.1], [9.2, 7.4], [3.0, 8.3]], dtype=torch.float64)
    photons = torch.tensor([800.0, 60.0, 3000.0, 300.0], dtype=torch.float64)
    background = torch.tensor([5.0, 20.0, 2.0, 10.0], dtype=torch.float64)
    sigma = torch.tensor([1.0, 1.6, 0.8, 1.3], dtype=torch.float64)
    counts = simulate(xy, photons, background, sigma, height, width, generator=torch.Generator().manual_seed(3))
    sub = (torch.arange(round(1 / step), dtype=torch.float64) + 0.5) * step - 0.5
    grid = (pixels[:, None, None, :].double() + torch.stack(torch.broadcast_tensors(sub[None, :, None],
                                                                                    sub[None, None, :]), -1))
    grid = grid.reshape(-1, 2)
    post = posterior(counts, photons, background, sigma, pixels)
    for i in range(len(xy)):
        mu = expected_counts(grid, photons[i], background[i], sigma[i], height, width)
        loglik = (counts[i] * mu.log() - mu).sum(dim=(1, 2))
        w = torch.softmax(loglik, dim=0)
        mean = w @ grid
        sd = float((w @ (grid - mean) ** 2).sum().sqrt())
        assert float((post.mean[i] - mean).norm()) < max(0.02 * sd, 2e-4), (i, post.mean[i], mean, sd)
        torch.testing.assert_close(post.var[i], w @ (grid - mean) ** 2, rtol=0.05, atol=1e-5)
    assert post.refined[2] and not post.refined[1]  # the sharp spot got the fine box, the faint one did not


def test_high_snr_posterior_mean_is_the_ml_fit():
    # at N = 5000 the posterior is a narrow Gaussian around the maximum of the likelihood
    height = width = 16
    gen = torch.Generator().manual_seed(0)
    xy = random_positions(30, height, width, margin=4.0, generator=gen)
    counts = simulate(xy, 5000, 10, 1.0, height, width, generator=gen)
    post = posterior(counts, 5000, 10, 1.0, _all_pixels(height, width, 2, 13))
    fit = fit_ml(counts, 1.0)
    var_x, var_y = crlb_xy(xy, 5000, 10, 1.0, height, width)
    assert post.refined.all()
    assert float(((post.mean - fit.xy).norm(dim=1) / (var_x + var_y).sqrt()).max()) < 0.05
    assert torch.allclose(post.var.sum(dim=1), var_x + var_y, rtol=0.15)  # posterior variance ~ the CRLB


def test_on_pure_background_the_posterior_mean_is_the_prior_mean():
    height, width = 12, 14
    pixels = torch.tensor([[0, 0], [13, 2], [4, 11], [7, 7], [8, 7], [2, 5]])
    counts = torch.poisson(torch.full((3, height, width), 10.0, dtype=torch.float64),
                           generator=torch.Generator().manual_seed(1))
    post = posterior(counts, 1e-6, 10.0, torch.tensor([0.8, 1.5, 2.0]), pixels)
    centres = pixels.double()
    assert torch.allclose(post.mean, centres.mean(dim=0).expand(3, 2), atol=1e-5)
    # uniform over unit squares: the centres' variance plus 1/12 (the midpoint rule's 4x4 cells: 15/16 of it)
    prior_var = centres.var(dim=0, unbiased=False) + 1 / 12
    assert torch.allclose(post.var, prior_var.expand(3, 2), atol=0.01)
    assert not post.refined.any()


def test_the_bayes_estimator_beats_the_ml_fit_and_the_centroid_at_low_snr():
    # N = 40 over b = 10 with sigma 1.2 (matched-filter SNR ~3): many spots are lost in the noise, where the ML
    # fit and the centroid land on a noise peak and the posterior mean hedges towards the middle (1.5-1.9x lower
    # squared error on 3 seeds at 200 spots; at N = 100, SNR ~7, the ML fit, with its matched-filter start, loses
    # almost none and is as good)
    height = width = 16
    gen = torch.Generator().manual_seed(0)
    pixels = _all_pixels(height, width)
    xy = _in_pixels(pixels, 200, gen)
    counts = simulate(xy, 40, 10, 1.2, height, width, generator=gen)
    post = posterior(counts, 40, 10, 1.2, pixels)

    def mse(estimate):
        return float(((estimate - xy) ** 2).sum(dim=1).mean())

    assert mse(post.mean) < mse(fit_ml(counts, 1.2).xy) / 1.3
    assert mse(post.mean) < mse(centroid(counts, radius=4)) / 1.3


def test_posterior_is_calibrated():
    # images drawn from the prior and the likelihood it assumes: E|mean - truth|^2 = E[posterior variance]
    height = width = 12
    gen = torch.Generator().manual_seed(4)
    pixels = _all_pixels(height, width)[::3]  # a sparse prior, as the test positions of data=spot
    xy = _in_pixels(pixels, 100, gen)
    counts = simulate(xy, 1000, 10, 1.0, height, width, generator=gen)
    post = posterior(counts, 1000, 10, 1.0, pixels)
    sq = ((post.mean - xy) ** 2).sum(dim=1)
    assert float(sq.mean()) == pytest.approx(float(post.var.sum(dim=1).mean()), rel=0.3)  # ~3 standard errors


def test_quadrature_refinement_changes_nothing_that_matters():
    # a mix of regimes (broad, multimodal, sharp, cut by the prior's and the image's edges): halving every step
    # and widening the fine box moves each posterior mean by a small fraction of its own sd (a quadrature error
    # delta adds only E|delta|^2 to the mean squared error)
    height = width = 16
    gen = torch.Generator().manual_seed(5)
    pixels = _all_pixels(height, width)[::4]
    count = 24
    xy = _in_pixels(pixels, count, gen)
    photons = torch.tensor([100.0, 300.0, 3000.0], dtype=torch.float64).repeat(count // 3)
    background = torch.exp(torch.rand(count, generator=gen, dtype=torch.float64) * math.log(100))
    sigma = 0.8 + 1.2 * torch.rand(count, generator=gen, dtype=torch.float64)
    counts = simulate(xy, photons, background, sigma, height, width, generator=gen)
    post = posterior(counts, photons, background, sigma, pixels)
    finer = posterior(counts, photons, background, sigma, pixels, **FINER)
    assert post.refined.any() and not post.refined.all()
    shift = (post.mean - finer.mean).norm(dim=1) / finer.var.sum(dim=1).sqrt()
    assert float(shift.max()) < 0.05
    mse, mse_finer = (float(((m - xy) ** 2).sum(dim=1).mean()) for m in (post.mean, finer.mean))
    assert mse == pytest.approx(mse_finer, rel=0.01)
    torch.testing.assert_close(post.var, finer.var, rtol=0.1, atol=1e-4)


def test_bad_input_is_refused_with_a_clear_message():
    counts = torch.poisson(torch.full((2, 8, 8), 5.0))
    pixels = torch.tensor([[3, 3]])
    with pytest.raises(ValueError, match=r"photons must be a number or a \(2,\) tensor"):
        posterior_mean(counts, torch.ones(3), 5.0, 1.0, pixels)
    with pytest.raises(ValueError, match="pixels must be a non-empty"):
        posterior_mean(counts, 100.0, 5.0, 1.0, torch.zeros(0, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="pixels must be a non-empty"):
        posterior_mean(counts, 100.0, 5.0, 1.0, torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="pixels must lie in the 8x8 image"):
        posterior_mean(counts, 100.0, 5.0, 1.0, torch.tensor([[8, 0]]))
    with pytest.raises(ValueError, match="counts must be"):
        posterior_mean(counts[0], 100.0, 5.0, 1.0, pixels)
    with pytest.raises(ValueError, match="counts must be finite photon counts >= 0"):
        posterior_mean(-counts, 100.0, 5.0, 1.0, pixels)
    with pytest.raises(ValueError, match="background must be finite and > 0"):
        posterior_mean(counts, 100.0, 0.0, 1.0, pixels)


def test_ratio_standard_error_matches_the_spread_of_resampled_ratios():
    gen = torch.Generator().manual_seed(6)
    bounds = torch.rand(400, generator=gen, dtype=torch.float64) + 0.5
    errors = bounds * torch.randn(400, generator=gen, dtype=torch.float64) ** 2 * 2.0
    ratio, se = ratio_se(errors, bounds)
    assert ratio == pytest.approx(float((errors.mean() / bounds.mean()).sqrt()))
    boot = torch.randint(400, (2000, 400), generator=gen)
    spread = float((errors[boot].mean(dim=1) / bounds[boot].mean(dim=1)).sqrt().std())
    assert se == pytest.approx(spread, rel=0.15)


def test_the_whole_image_prior_covers_every_pixel_and_is_worse_when_spots_are_lost():
    """--prior image: the same oracle without knowing where test spots can be. On dim spots (many lost) its
    error is larger than the true prior's, which is what makes the default a bound and this a comparison."""
    from pixel_spotter.tasks.spot import floor

    dm = floor.datamodule(0, ["data.height=12", "data.width=12"])
    assert len(floor.prior_pixels(dm, "image")) == 144 and len(floor.prior_pixels(dm, "test")) < 144
    with pytest.raises(ValueError, match="prior must be"):
        floor.prior_pixels(dm, "train")
    dim = {prior: floor.run(dm, (15,), spots=200, prior=prior, background=10, sigma_psf=1.5)[0]
           for prior in ("test", "image")}
    assert dim["image"]["floor"] > dim["test"]["floor"], dim
