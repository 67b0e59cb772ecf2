"""pixel_spotter.spots: the pixelated Gaussian spot model, its Cramér–Rao bound, and the estimators.

Expected numbers come from the physics (direct numerical integration, the normal CDF, Poisson statistics,
Mortensen et al. 2010, Monte Carlo standard errors), not from the code under test.
"""

import math

import pytest
import torch

from pixel_spotter.benchmarks import spot_fit as bench
from pixel_spotter.spots.crlb import crlb_matrix, crlb_xy, fisher_information, mortensen_ml_variance, rmse_bound
from pixel_spotter.spots.fit import _window, border_median, centroid, fit_ml, fit_ml_free_sigma, initial_guess
from pixel_spotter.spots.psf import (
    counts_and_jacobian,
    expected_counts,
    random_positions,
    sample_counts,
    simulate,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small batches, one thread


def _phi(z: float) -> float:  # standard normal CDF
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _rmse(estimate, truth) -> float:
    return float(((estimate - truth) ** 2).sum(dim=1).mean().sqrt())


# --- psf ---------------------------------------------------------------------------------------------


def test_expected_counts_are_the_gaussian_integrated_over_each_pixel():
    height, width, sub = 7, 9, 60
    xy = torch.tensor([[4.0, 3.0], [2.3, 5.6], [0.2, 0.0], [8.0, 1.45]], dtype=torch.float64)
    sigma = torch.tensor([0.6, 1.3, 1.0, 0.8], dtype=torch.float64)
    mu = expected_counts(xy, 500.0, 2.0, sigma, height, width)
    # midpoint rule on sub x sub points per pixel: pixel (r, c) covers [c - 0.5, c + 0.5] x [r - 0.5, r + 0.5]
    u = (torch.arange(width * sub, dtype=torch.float64) + 0.5) / sub - 0.5
    v = (torch.arange(height * sub, dtype=torch.float64) + 0.5) / sub - 0.5
    for i in range(len(xy)):
        s = float(sigma[i])
        density = torch.exp(-((u[None, :] - xy[i, 0]) ** 2 + (v[:, None] - xy[i, 1]) ** 2) / (2 * s * s))
        density = density / (2 * math.pi * s * s) / sub**2
        pixels = density.reshape(height, sub, width, sub).sum(dim=(1, 3))
        torch.testing.assert_close(mu[i], 500.0 * pixels + 2.0, rtol=2e-4, atol=1e-3)


def test_photons_outside_the_image_are_lost():
    size, n, b, s = 41, 1000.0, 3.0, 1.5
    xy = torch.tensor([[20.0, 20.0], [0.0, 0.0], [0.0, 20.0]], dtype=torch.float64)
    inside = (expected_counts(xy, n, b, s, size, size) - b).sum(dim=(1, 2))
    half = _phi(0.5 / s)  # a centre on the first pixel centre: the image starts 0.5 px to its left
    assert inside[0].item() == pytest.approx(n, rel=1e-12)
    assert inside[1].item() == pytest.approx(n * half**2, rel=1e-9)
    assert inside[2].item() == pytest.approx(n * half, rel=1e-9)


def test_far_pixels_keep_their_relative_precision():
    # 12 sigma away the mass is ~1e-33: 1 - 1 would give 0, the upper tails give it to full precision
    mu = expected_counts(torch.tensor([[0.0, 0.0]], dtype=torch.float64), 1.0, 0.0, 1.0, 1, 13)
    tail = 0.5 * (math.erfc(11.5 / math.sqrt(2)) - math.erfc(12.5 / math.sqrt(2))) * (2 * _phi(0.5) - 1)
    assert float(mu[0, 0, 12]) == pytest.approx(tail, rel=1e-9)


def test_jacobian_matches_finite_differences():
    height, width, h = 8, 11, 1e-5
    theta = torch.tensor([[3.3, 4.7, 800.0, 5.0, 1.2], [0.1, 7.0, 300.0, 0.5, 0.8]], dtype=torch.float64)

    def mu_of(t):
        return expected_counts(t[:, :2], t[:, 2], t[:, 3], t[:, 4], height, width)

    _, jac = counts_and_jacobian(theta[:, :2], theta[:, 2], theta[:, 3], theta[:, 4], height, width, with_sigma=True)
    for p in range(5):
        step = torch.zeros_like(theta)
        step[:, p] = h * theta[:, p].abs().clamp(min=1.0)
        numeric = (mu_of(theta + step) - mu_of(theta - step)) / (2 * step[:, p, None, None])
        torch.testing.assert_close(jac[:, p], numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("read_noise", [0.0, 2.0])
def test_sampler_has_poisson_plus_read_noise_statistics(read_noise):
    mu = torch.linspace(0.5, 60.0, 64, dtype=torch.float64).reshape(1, 8, 8).expand(4000, 8, 8).contiguous()
    images = sample_counts(mu, torch.Generator().manual_seed(1), read_noise)
    n, var = images.shape[0], mu[0] + read_noise**2  # per pixel: mean mu, variance mu + read_noise^2
    mean_err = (images.mean(dim=0) - mu[0]) / (var / n).sqrt()
    assert mean_err.abs().max() < 4.5  # 64 pixels, each a z-score
    ratio = images.var(dim=0) / var  # its standard error is about sqrt(2 / n) = 2.2 %
    assert ((ratio - 1).abs() < 5 * math.sqrt(2 / n) + 1 / mu[0]).all()
    if read_noise == 0:
        assert torch.equal(images, images.round()) and (images >= 0).all()
    again = sample_counts(mu[:5], torch.Generator().manual_seed(7), read_noise)
    assert torch.equal(again, sample_counts(mu[:5], torch.Generator().manual_seed(7), read_noise))


def test_random_positions_stay_inside_the_margin():
    xy = random_positions(500, 10, 20, margin=2.5, generator=torch.Generator().manual_seed(0))
    assert xy[:, 0].min() >= 2.5 and xy[:, 0].max() <= 16.5 and xy[:, 1].min() >= 2.5 and xy[:, 1].max() <= 6.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_same_numbers_on_cuda():
    xy = torch.tensor([[3.3, 4.7], [10.0, 0.0]], dtype=torch.float64)
    on_cpu = expected_counts(xy, 900.0, 4.0, 1.1, 12, 16)
    torch.testing.assert_close(expected_counts(xy.cuda(), 900.0, 4.0, 1.1, 12, 16).cpu(), on_cpu)
    images = simulate(xy.cuda(), 900.0, 4.0, 1.1, 12, 16, torch.Generator(device="cuda").manual_seed(0))
    assert fit_ml(images, 1.1).xy.device.type == "cuda"


# --- crlb --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])
def test_crlb_agrees_with_mortensen_for_maximum_likelihood(sigma):
    # Mortensen's expression treats the pixelated spot as a Gaussian of width sigma_a on an infinite image;
    # away from the border and for sigma >= 1 px that approximation is good to well under 1 %.
    xy = torch.tensor([[16.0, 16.0], [16.3, 16.2], [16.5, 16.5]], dtype=torch.float64)
    for n in (200.0, 1000.0, 5000.0):
        for b in (1.0, 10.0, 100.0):
            var_x, var_y = crlb_xy(xy, n, b, sigma, 33, 33)
            expected = float(mortensen_ml_variance(n, b, sigma))
            assert ((torch.cat([var_x, var_y]) / expected - 1).abs() < 0.005).all(), (n, b)


def test_mortensen_known_values():
    # b = 0: tau = 0, the bracket is integral_0^1 (-ln t) dt = 1, so var = sigma_a^2 / N exactly
    assert float(mortensen_ml_variance(1000.0, 0.0, 1.0)) == pytest.approx((1 + 1 / 12) / 1000, rel=1e-12)
    # tau = 1: bracket = -integral_0^1 t ln t / (1 + t) dt = 1 - pi^2 / 12
    sigma_a2 = 1 + 1 / 12
    b = 1000.0 / (2 * math.pi * sigma_a2)  # makes tau = 2 pi sigma_a^2 b / N = 1
    assert float(mortensen_ml_variance(1000.0, b, 1.0)) == pytest.approx(sigma_a2 / 1000 / (1 - math.pi**2 / 12))
    # pixel size a scales lengths: a = 2 with sigma = 2 is a = 1, sigma = 1 in twice the units
    assert float(mortensen_ml_variance(500.0, 10.0, 2.0, a=2.0)) == pytest.approx(
        4 * float(mortensen_ml_variance(500.0, 10.0, 1.0)), rel=1e-12)


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_without_background_the_bound_is_sigma_a_squared_over_n(sigma):
    xy = torch.tensor([[12.0, 12.0], [12.25, 11.6]], dtype=torch.float64)
    sigma_a2 = sigma**2 + 1 / 12
    var_x, var_y = crlb_xy(xy, 1000.0, 1e-6, sigma, 25, 25)
    assert ((torch.cat([var_x, var_y]) * 1000 / sigma_a2 - 1).abs() < 0.01).all()
    more = crlb_xy(xy, 1000.0, 10.0, sigma, 25, 25)[0]
    assert (more > var_x).all()  # background only adds noise


def test_fisher_information_is_the_covariance_of_the_score():
    height = width = 9
    theta = torch.tensor([[4.3, 3.8, 300.0, 5.0]], dtype=torch.float64)
    info = fisher_information(theta[:, :2], 300.0, 5.0, 1.0, height, width)[0]
    mu, jac = counts_and_jacobian(theta[:, :2], 300.0, 5.0, 1.0, height, width)
    n = 20000
    k = sample_counts(mu.expand(n, height, width).contiguous(), torch.Generator().manual_seed(3))
    score = torch.einsum("phw,bhw->bp", jac[0], k / mu - 1)  # d/dtheta of sum(k ln mu - mu)
    empirical = score.T @ score / n
    scale = torch.sqrt(info.diagonal()[:, None] * info.diagonal()[None, :])
    assert ((empirical - info) / scale).abs().max() < 6 * math.sqrt(2 / n)  # 2/n: rel. variance of a variance


def test_read_noise_acts_as_extra_background_in_the_denominator():
    xy = torch.tensor([[7.2, 6.9]], dtype=torch.float64)
    with_read = crlb_xy(xy, 800.0, 4.0, 1.0, 15, 15, read_noise=3.0)
    as_background = crlb_xy(xy, 800.0, 4.0 + 9.0, 1.0, 15, 15)  # d mu / d theta does not depend on b
    torch.testing.assert_close(with_read, as_background)
    assert with_read[0] > crlb_xy(xy, 800.0, 4.0, 1.0, 15, 15)[0]


def test_bound_symmetry_border_and_rmse():
    xy = torch.tensor([[7.0, 7.0], [3.2, 9.7], [9.7, 3.2], [0.0, 0.0]], dtype=torch.float64)
    var_x, var_y = crlb_xy(xy, 1000.0, 10.0, 1.0, 15, 15)
    assert var_x[0] == pytest.approx(float(var_y[0]), rel=1e-12)
    assert var_x[1] == pytest.approx(float(var_y[2]), rel=1e-12)  # a transposed spot swaps x and y
    assert var_x[3] > 1.5 * var_x[0]  # the corner spot loses 3/4 of its photons
    assert float(rmse_bound(var_x, var_y)) == pytest.approx(math.sqrt(float((var_x + var_y).mean())))


# --- fit ---------------------------------------------------------------------------------------------


def test_centroid_of_noise_free_spots():
    xy = torch.tensor([[10.0, 7.0], [10.3, 7.8]], dtype=torch.float64)
    mu = expected_counts(xy, 1000.0, 10.0, 1.0, 21, 21)
    torch.testing.assert_close(border_median(mu), torch.full((2,), 10.0, dtype=torch.float64))
    torch.testing.assert_close(centroid(mu, radius=6), xy, rtol=0, atol=1e-6)
    assert centroid(mu[:, None].float()).shape == (2, 2)  # (B, 1, H, W) float32 is fine too


def test_ml_fit_of_noise_free_spots_is_exact():
    xy = torch.tensor([[6.3, 4.7], [0.3, 9.0], [11.0, 0.0], [5.5, 5.5]], dtype=torch.float64)
    photons = torch.tensor([1000.0, 300.0, 2000.0, 80.0], dtype=torch.float64)
    background = torch.tensor([10.0, 2.0, 0.5, 30.0], dtype=torch.float64)
    mu = expected_counts(xy, photons, background, 1.2, 10, 12)  # the Poisson likelihood peaks where mu = k
    result = fit_ml(mu, 1.2)
    assert result.converged.all()
    torch.testing.assert_close(result.xy, xy, rtol=0, atol=1e-6)
    torch.testing.assert_close(result.photons, photons, rtol=1e-6, atol=0)
    torch.testing.assert_close(result.background, background, rtol=1e-6, atol=0)


def test_ml_fit_is_unbiased_at_the_crlb_and_beats_the_centroid():
    # 2000 spots, N = 1000, b = 10, sigma = 1. Each spot's squared 2D error is ~ var * chi^2_2 (relative sd 1),
    # so the MSE has relative standard error 1/sqrt(n) and the RMSE half that: 3 SE = 0.034.
    n, size, gen = 2000, 16, torch.Generator().manual_seed(0)
    xy = random_positions(n, size, size, margin=4.0, generator=gen)
    images = simulate(xy, 1000.0, 10.0, 1.0, size, size, generator=gen)
    result = fit_ml(images, 1.0)
    assert result.converged.all()
    error = result.xy - xy
    assert (error.mean(dim=0).abs() < 3 * error.std(dim=0) / math.sqrt(n)).all()
    bound = float(rmse_bound(*crlb_xy(xy, 1000.0, 10.0, 1.0, size, size)))
    assert _rmse(result.xy, xy) / bound == pytest.approx(1.0, abs=3 * 0.5 / math.sqrt(n))
    assert _rmse(centroid(images, radius=3), xy) > 1.15 * _rmse(result.xy, xy)
    # photons too: unbiased, and at their own bound (1D: squared error ~ var * chi^2_1, RMSE SE sqrt(1/(2n)))
    photon_error = result.photons - 1000.0
    assert photon_error.mean().abs() < 3 * photon_error.std() / math.sqrt(n)
    photon_bound = crlb_matrix(xy, 1000.0, 10.0, 1.0, size, size)[:, 2, 2].mean().sqrt()
    assert float(photon_error.pow(2).mean().sqrt() / photon_bound) == pytest.approx(1.0, abs=3 / math.sqrt(2 * n))


def test_ml_fit_of_spots_on_the_border_pixels():
    gen, size = torch.Generator().manual_seed(2), 16
    edge = torch.tensor([-0.4, 0.0, 0.2, 14.8, 15.0, 15.4], dtype=torch.float64)  # data=spot: up to 0.5 px out
    along = torch.rand(400, generator=gen, dtype=torch.float64) * 15
    xy = torch.stack([edge[torch.randint(6, (400,), generator=gen)], along], dim=1)
    xy[::2] = xy[::2].flip(1)  # half on the left/right columns, half on the top/bottom rows
    images = simulate(xy, 1000.0, 10.0, 1.0, size, size, generator=gen)
    result = fit_ml(images, 1.0)
    assert torch.isfinite(result.xy).all() and result.converged.all()
    assert (result.xy >= -0.5).all() and (result.xy <= size - 0.5).all()  # within the image's outer edges
    bound = float(rmse_bound(*crlb_xy(xy, 1000.0, 10.0, 1.0, size, size)))
    assert _rmse(result.xy, xy) < 1.1 * bound  # at the border the clamp can only help the estimate


def test_ml_fit_with_read_noise():
    gen, size, n = torch.Generator().manual_seed(4), 16, 1000
    xy = random_positions(n, size, size, margin=4.0, generator=gen)
    images = simulate(xy, 1000.0, 2.0, 1.0, size, size, generator=gen, read_noise=3.0)
    result = fit_ml(images, 1.0, read_noise=3.0)
    bound = float(rmse_bound(*crlb_xy(xy, 1000.0, 2.0, 1.0, size, size, read_noise=3.0)))
    assert torch.isfinite(result.xy).all()
    assert _rmse(result.xy, xy) / bound == pytest.approx(1.0, abs=3 * 0.5 / math.sqrt(n) + 0.02)


def test_bench_runs():
    rows = bench.run(spots=64, size=16, photons=(1000,), repeats=1)
    assert rows[0]["ml_converged"] == 1.0 and rows[0]["ml_images_per_s"] > 0
    assert rows[0]["centroid_rmse_over_crlb"] > rows[0]["ml_rmse_over_crlb"] > 0.7


def _free_sigma_box(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    lower = torch.tensor([-0.5, -0.5, 1e-3, 1e-3, 0.3], dtype=torch.float64).expand(batch, 5)
    upper = torch.tensor([size - 0.5, size - 0.5, 1e9, 1e9, 5.0], dtype=torch.float64).expand(batch, 5)
    return lower, upper


def test_free_sigma_fit_of_noise_free_spots_recovers_all_five_parameters():
    truth = torch.tensor([[6.3, 4.7, 1000.0, 10.0, 1.6], [2.2, 9.0, 300.0, 2.0, 0.9], [5.5, 5.5, 5000.0, 0.5, 1.2]],
                         dtype=torch.float64)
    mu = expected_counts(truth[:, :2], truth[:, 2], truth[:, 3], truth[:, 4], 12, 12)
    start = truth + torch.tensor([0.4, -0.3, 200.0, 3.0, 0.4], dtype=torch.float64)  # sigma 0.4 px off, too
    result = fit_ml_free_sigma(mu, start, *_free_sigma_box(3, 12), iterations=40)
    torch.testing.assert_close(result.theta, truth, rtol=1e-5, atol=1e-6)
    assert (result.log_likelihood > result.start_log_likelihood).all()


def test_free_sigma_fit_ignores_masked_pixels():
    """A patch's pixels outside the image (mask False) must count nothing, whatever they hold."""
    truth = torch.tensor([[4.2, 5.6, 2000.0, 5.0, 1.3]], dtype=torch.float64)
    mu = expected_counts(truth[:, :2], truth[:, 2], truth[:, 3], truth[:, 4], 11, 11)
    images = simulate(truth[:, :2], 2000.0, 5.0, 1.3, 11, 11, generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(mu, dtype=torch.bool)
    mask[:, :, :2] = False  # the two left columns do not exist
    garbage = images.clone()
    garbage[:, :, :2] = 1e4
    start = truth + torch.tensor([0.3, 0.3, 100.0, 1.0, 0.2], dtype=torch.float64)
    box = _free_sigma_box(1, 11)
    clean = fit_ml_free_sigma(images, start, *box, mask=mask, iterations=30).theta
    torch.testing.assert_close(fit_ml_free_sigma(garbage, start, *box, mask=mask, iterations=30).theta, clean)
    assert (fit_ml_free_sigma(garbage, start, *box, iterations=30).theta - clean).abs().max() > 1.0


def test_free_sigma_fit_reaches_its_own_bound():
    """With sigma_psf unknown the bound is the inverse of the 5x5 Fisher information (x, y, N, b, sigma); the
    fit's 2D RMSE is at it (Monte Carlo: 3 SE = 0.034 at 2000 spots), and not below the 4-parameter bound."""
    n, size, gen = 2000, 16, torch.Generator().manual_seed(5)
    xy = random_positions(n, size, size, margin=4.0, generator=gen)
    images = simulate(xy, 2000.0, 10.0, 1.5, size, size, generator=gen)
    start = torch.cat([xy.round(), torch.full((n, 1), 1500.0, dtype=torch.float64),
                       torch.full((n, 1), 8.0, dtype=torch.float64), torch.full((n, 1), 1.0, dtype=torch.float64)], 1)
    theta = fit_ml_free_sigma(images, start, *_free_sigma_box(n, size), iterations=30).theta
    mu, jac = counts_and_jacobian(xy, 2000.0, 10.0, 1.5, size, size, with_sigma=True)
    cov = torch.linalg.inv(torch.einsum("bphw,bqhw->bpq", jac, jac / mu[:, None]))
    bound5 = float((cov[:, 0, 0] + cov[:, 1, 1]).mean().sqrt())
    assert bound5 >= float(rmse_bound(*crlb_xy(xy, 2000.0, 10.0, 1.5, size, size)))
    assert _rmse(theta[:, :2], xy) / bound5 == pytest.approx(1.0, abs=3 * 0.5 / math.sqrt(n))
    assert float((theta[:, 4] - 1.5).mean().abs()) < 0.01  # the width too, unbiased


def test_ml_fit_start_keeps_dim_spots_under_a_bright_background():
    """N = 500, b = 100, sigma 2 (the data=spot mix's hard end, matched-filter SNR ~7: every spot detectable).
    Started with the window's background-subtracted sum as the photon count (noise ~ 13 sqrt(100) photons), some
    fits start near 0 photons, where x and y carry no information, and run off to a corner; the matched
    filter's least-squares count (noise ~ 2 sqrt(pi) s sqrt(b) ~ 70) keeps every one."""
    gen = torch.Generator().manual_seed(0)
    xy = random_positions(600, 32, 32, generator=gen)
    images = simulate(xy, 500.0, 100.0, 2.0, 32, 32, generator=gen)
    start = initial_guess(images, 2.0)
    assert float((start[:, 2] - 500).std()) < 130
    lost = ((fit_ml(images, 2.0).xy - xy).norm(dim=1) > 3).sum()
    window_sum = start.clone()
    window = (images - border_median(images)[:, None, None]) * _window(images, 6)
    window_sum[:, 2] = window.sum(dim=(1, 2)).clamp(min=1e-3)
    lost_before = ((fit_ml(images, 2.0, init=window_sum).xy - xy).norm(dim=1) > 3).sum()
    assert lost == 0 and lost_before >= 3, (int(lost), int(lost_before))


def test_a_large_crowded_frame_is_summed_without_a_spot_per_pixel_array():
    from pixel_spotter.spots.frames import DIRECT_SUM_MAX, Frame
    from pixel_spotter.spots.psf import summed_counts

    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(400, 2, generator=gen, dtype=torch.float64) * 60
    n = 500 + 4500 * torch.rand(400, generator=gen, dtype=torch.float64)
    s = 1 + 0.6 * torch.rand(400, generator=gen, dtype=torch.float64)
    direct = expected_counts(xy, n, 0.0, s, 64, 70).sum(dim=0)
    torch.testing.assert_close(summed_counts(xy, n, s, 64, 70), direct, rtol=1e-12, atol=1e-9)
    # the frame takes the product beyond DIRECT_SUM_MAX spots x pixels, and gives the same light
    big = Frame(xy=xy * 8, photons=n, sigma_psf=s, background=10.0)
    assert len(xy) * 512 * 512 > DIRECT_SUM_MAX
    one_by_one = 10.0 + sum(expected_counts(big.xy[k:k + 50], n[k:k + 50], 0.0, s[k:k + 50], 512, 512).sum(dim=0)
                            for k in range(0, len(xy), 50))
    torch.testing.assert_close(big.expected(512, 512), one_by_one, rtol=1e-12, atol=1e-9)


def _group_box(spots: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    lower = torch.tensor([-0.5, -0.5, 1e-3, 0.3], dtype=torch.float64).expand_as(spots)
    upper = torch.tensor([size - 0.5, size - 0.5, 1e9, 5.0], dtype=torch.float64).expand_as(spots)
    return lower, upper


def test_a_group_fit_of_one_spot_is_the_free_sigma_fit_and_an_inactive_spot_changes_nothing():
    from pixel_spotter.spots.group_fit import fit_ml_group

    truth = torch.tensor([[4.2, 5.6, 2000.0, 5.0, 1.3], [6.1, 3.3, 800.0, 20.0, 1.1]], dtype=torch.float64)
    images = simulate(truth[:, :2], truth[:, 2], truth[:, 3], truth[:, 4], 11, 11,
                      generator=torch.Generator().manual_seed(2))
    start = truth + torch.tensor([0.3, -0.2, 300.0, 2.0, 0.2], dtype=torch.float64)
    single = fit_ml_free_sigma(images, start, *_free_sigma_box(2, 11), iterations=25).theta
    # the same spot, padded with an inactive one whose numbers are nonsense: it adds no light and stays put
    spots = torch.stack([start[:, [0, 1, 2, 4]], torch.tensor([[1.0, 1.0, 1e6, 0.4]] * 2, dtype=torch.float64)], 1)
    active = torch.tensor([[True, False]] * 2)
    fit = fit_ml_group(images, spots, start[:, 3], *_group_box(spots, 11), active, iterations=25)
    torch.testing.assert_close(fit.spots[:, 0], single[:, [0, 1, 2, 4]], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fit.background, single[:, 3], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fit.spots[:, 1], spots[:, 1])
    assert (fit.covariance[:, 4:8] == 0).all() and (torch.diagonal(fit.covariance[:, :4], dim1=1, dim2=2) > 0).all()


def test_two_overlapping_spots_fitted_at_once_reach_their_joint_bound():
    """Two spots 2 px apart (PSF sigma 1.3): fitted together, each position's RMSE is at the joint Fisher bound
    (both spots unknown), which is above each one's single-spot bound, and the fit's covariance is that bound.
    Monte Carlo over 600 windows: 3 SE of an RMSE ratio is 3 * 0.5 / sqrt(600) = 0.06."""
    from pixel_spotter.spots.group_fit import fit_ml_group

    m, size, gen = 600, 13, torch.Generator().manual_seed(4)
    centre = 6.0 + torch.rand(m, 2, generator=gen, dtype=torch.float64) - 0.5
    xy = torch.stack([centre - torch.tensor([1.0, 0.0]), centre + torch.tensor([1.0, 0.0])], dim=1)  # (m, 2, 2)
    n, b, s = 3000.0, 10.0, 1.3
    mu = expected_counts(xy.reshape(-1, 2), n, 0.0, s, size, size).view(m, 2, size, size).sum(1) + b
    images = torch.poisson(mu, generator=gen)
    spots = torch.cat([xy + 0.2, torch.full((m, 2, 1), 2500.0), torch.full((m, 2, 1), 1.2)], dim=2).double()
    fit = fit_ml_group(images, spots, torch.full((m,), 12.0), *_group_box(spots, size),
                       torch.ones(m, 2, dtype=torch.bool), iterations=30)
    error2 = ((fit.spots[:, :, :2] - xy) ** 2).sum(dim=2)  # (m, 2)
    # the joint bound at the truth: x, y, N, sigma of both, one background
    _, jac = counts_and_jacobian(xy.reshape(-1, 2), n, 0.0, s, size, size, with_sigma=True)
    jac = torch.cat([jac[:, [0, 1, 2, 4]].reshape(m, 8, size, size), torch.ones(m, 1, size, size).double()], 1)
    joint = torch.linalg.inv(torch.einsum("bphw,bqhw->bpq", jac, jac / mu[:, None]))
    bound2 = joint[:, [0, 4], [0, 4]] + joint[:, [1, 5], [1, 5]]  # (m, 2) var_x + var_y of each spot
    single = sum(crlb_xy(xy[:, i], n, b, s, size, size)[0] + crlb_xy(xy[:, i], n, b, s, size, size)[1]
                 for i in range(2)) / 2
    assert float(bound2.mean()) > 1.5 * float(single.mean())  # the overlap costs precision no fit gets back
    assert math.sqrt(float(error2.mean() / bound2.mean())) == pytest.approx(1.0, abs=0.06)
    fitted = fit.covariance[:, [0, 4], [0, 4]] + fit.covariance[:, [1, 5], [1, 5]]
    assert float(fitted.mean() / bound2.mean()) == pytest.approx(1.0, abs=0.05)


def test_every_frames_summed_light_at_once_is_each_frames_own():
    from pixel_spotter.spots.psf import summed_counts, summed_counts_per_frame

    gen = torch.Generator().manual_seed(9)
    xy = torch.rand(40, 2, generator=gen, dtype=torch.float64) * 20
    photons = 100 + 900 * torch.rand(40, generator=gen, dtype=torch.float64)
    sigma = 1 + torch.rand(40, generator=gen, dtype=torch.float64)
    frame = torch.tensor([0] * 25 + [2] * 15)  # frame 1 has no spot, and they need not come in order
    frame = frame[torch.randperm(40, generator=gen)]
    light = summed_counts_per_frame(xy, photons, sigma, frame, 3, 18, 22)
    assert light.shape == (3, 18, 22) and (light[1] == 0).all()
    for f in (0, 2):
        mine = frame == f
        torch.testing.assert_close(light[f], summed_counts(xy[mine], photons[mine], sigma[mine], 18, 22))


def test_a_width_prior_at_the_networks_accuracy_helps_two_overlapping_spots_and_leaves_a_lone_one_alone():
    """Two spots 1.6 px apart, PSF widths 1.1 and 1.5 px, fitted together from widths guessed as well as the frame
    network guesses them (0.08 px RMS): the likelihood alone trades widths against the separation, the prior at
    that accuracy holds them, and the positions are better. A lone spot's fit hardly moves: its light decides."""
    from pixel_spotter.spots.group_fit import fit_ml_group

    m, size, gen, guess = 400, 13, torch.Generator().manual_seed(5), 0.08
    centre = 6.0 + torch.rand(m, 2, generator=gen, dtype=torch.float64) - 0.5
    xy = torch.stack([centre - torch.tensor([0.8, 0.0]), centre + torch.tensor([0.8, 0.0])], dim=1)
    n, b, widths = 2000.0, 20.0, torch.tensor([1.1, 1.5], dtype=torch.float64)
    mu = (expected_counts(xy.reshape(-1, 2), n, 0.0, widths.repeat(m), size, size).view(m, 2, size, size).sum(1)
          + b)
    images = torch.poisson(mu, generator=gen)
    start_widths = widths + guess * torch.randn(m, 2, generator=gen, dtype=torch.float64)
    spots = torch.cat([xy + 0.15 * torch.randn(m, 2, 2, generator=gen, dtype=torch.float64),
                       torch.full((m, 2, 1), 1800.0, dtype=torch.float64), start_widths[..., None]], dim=2)
    on = torch.ones(m, 2, dtype=torch.bool)
    fits = {prior: fit_ml_group(images, spots, torch.full((m,), 15.0), *_group_box(spots, size), on,
                                iterations=20, width_prior=prior) for prior in (0.0, guess)}
    rmse = {p: float(((f.spots[:, :, :2] - xy) ** 2).sum(dim=2).mean().sqrt()) for p, f in fits.items()}
    assert rmse[guess] < 0.93 * rmse[0.0]  # measured: 0.152 against 0.172 px
    width_rmse = {p: float(((f.spots[:, :, 3] - widths) ** 2).mean().sqrt()) for p, f in fits.items()}
    assert width_rmse[guess] < width_rmse[0.0]
    # the posterior covariance: the prior's information added, so no width is less sure than the prior alone
    assert (fits[guess].covariance[:, [3, 7], [3, 7]] <= guess ** 2 + 1e-12).all()
    # a lone spot: its light decides, and the prior leaves its position where the fit alone puts it
    lone_xy = centre[:, None]
    lone_mu = expected_counts(centre, n, 0.0, 1.3, size, size) + b
    lone_images = torch.poisson(lone_mu, generator=gen)
    lone = spots[:, :1].clone()
    lone[:, 0, :2], lone[:, 0, 3] = centre + 0.15, 1.3 + guess * torch.randn(m, generator=gen, dtype=torch.float64)
    lone_fits = [fit_ml_group(lone_images, lone, torch.full((m,), 15.0), *_group_box(lone, size), on[:, :1],
                              iterations=20, width_prior=prior) for prior in (0.0, guess)]
    moved = [float(((f.spots[:, :, :2] - lone_xy) ** 2).sum(dim=2).mean().sqrt()) for f in lone_fits]
    assert moved[1] == pytest.approx(moved[0], rel=0.03)
