"""The Cramér–Rao lower bound of spot localization, exactly for the pixelated Poisson model of ``psf.py``,
and Mortensen et al.'s closed form for comparison.

With the counts k of each pixel independent Poisson(mu(theta)), theta = (x, y, photons, background) all
unknown, the Fisher information is

    I_ij = sum over pixels of (d mu / d theta_i) (d mu / d theta_j) / mu

and the CRLB is its inverse: no unbiased estimator of x has a variance below (I^-1)_xx. Read noise
(Gaussian, sd ``read_noise`` photons, on top of the shot noise) makes the exact likelihood a
Poisson-Gaussian convolution; we use the usual approximation that k + read_noise^2 is Poisson with mean
mu + read_noise^2 (right mean and variance), i.e. mu -> mu + read_noise^2 in the denominator only. It is
accurate when mu + read_noise^2 is more than a few photons, and exact when read_noise = 0.
"""

from __future__ import annotations

import numpy as np
import torch

from pixel_spotter.spots.psf import as_batch, counts_and_jacobian


def fisher_information(xy, photons, background, sigma_psf, height: int, width: int, read_noise=0.0,
                       free_sigma: bool = False) -> torch.Tensor:
    """Fisher information (B, 4, 4) float64 about (x, y, photons, background) of spots at ``xy`` (B, 2);
    (B, 5, 5) with sigma_psf as a fifth unknown when ``free_sigma``."""
    mu, jac = counts_and_jacobian(xy, photons, background, sigma_psf, height, width, with_sigma=free_sigma)
    read = as_batch(read_noise, mu.shape[0], mu)
    weighted = jac / (mu + read[:, None, None] ** 2)[:, None]
    return torch.einsum("bphw,bqhw->bpq", jac, weighted)


def crlb_matrix(xy, photons, background, sigma_psf, height: int, width: int, read_noise=0.0,
                free_sigma: bool = False) -> torch.Tensor:
    """The inverse Fisher information (B, 4, 4): the bound on the covariance of (x, y, photons, background);
    (B, 5, 5) with sigma_psf too when ``free_sigma``."""
    return torch.linalg.inv(fisher_information(xy, photons, background, sigma_psf, height, width, read_noise,
                                               free_sigma))


def crlb_xy(xy, photons, background, sigma_psf, height: int, width: int, read_noise=0.0, free_sigma: bool = False):
    """``(var_x, var_y)``: the per-spot CRLB (B,) (px^2) of x and of y, with all four parameters unknown (the
    issue's bound: sigma_psf known); ``free_sigma``: sigma_psf unknown as well, the bound of an estimator that
    is not told the PSF's width (never lower: one more unknown; higher mostly near the border, where a shift
    and a change of width look alike)."""
    cov = crlb_matrix(xy, photons, background, sigma_psf, height, width, read_noise, free_sigma)
    return cov[:, 0, 0], cov[:, 1, 1]


def joint_crlb_xy(xy, photons, background: float, sigma_psf, height: int, width: int):
    """``(var_x, var_y)`` (K,) (px^2) of K spots in one image, all unknown at once: x, y and photons of each and the
    image's one background (sigma_psf known, as ``crlb_xy``). The Fisher information is (3K + 1)^2, from the
    (3K + 1) x pixels Jacobian of the summed expected counts: overlapping spots share information, so each bound is
    at least its lone ``crlb_xy``. NaN where the information is singular (two spots at one position)."""
    count, pixels = len(xy), height * width
    light, jac = counts_and_jacobian(xy, photons, 0.0, sigma_psf, height, width)
    mu = light.sum(dim=0).reshape(-1) + float(background)
    design = torch.cat([jac[:, :3].reshape(3 * count, pixels),  # x, y, photons of each spot
                        torch.ones(1, pixels, dtype=jac.dtype, device=jac.device)])  # the background
    covariance, info = torch.linalg.inv_ex((design / mu) @ design.T)
    variances = torch.diagonal(covariance)[:3 * count].reshape(count, 3)
    if info != 0:
        variances = torch.full_like(variances, float("nan"))
    return variances[:, 0], variances[:, 1]


def rmse_bound(var_x: torch.Tensor, var_y: torch.Tensor) -> torch.Tensor:
    """The bound on the 2D RMSE of a set of spots: sqrt(mean over spots of (var_x + var_y)) (px)."""
    return torch.sqrt((var_x + var_y).mean())


# Gauss-Legendre nodes on s in [0, 60] for the integral below (its integrand is analytic in a strip of
# half-width pi around the real axis, so 256 nodes are exact to double precision; e^-60 * 60 ~ 1e-24).
_S_MAX = 60.0
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(256)


def mortensen_ml_variance(photons, background, sigma_psf, a=1.0) -> torch.Tensor:
    """Mortensen et al. 2010 (Nat. Methods 7:377) variance (length^2) of x for maximum-likelihood
    fitting of a Gaussian spot on square pixels of size ``a`` (same length unit as ``sigma_psf``):

        var_x = sigma_a^2 / N * (1 + integral_0^1 ln t / (1 + t / tau) dt)^-1,
        sigma_a^2 = sigma^2 + a^2 / 12,   tau = 2 pi sigma_a^2 b / (N a^2)

    with N the spot's photons and b the background photons per pixel (the paper's b^2). Because
    integral_0^1 ln t dt = -1, the bracket equals -integral_0^1 t ln t / (t + tau) dt, which t = e^-s turns
    into integral_0^inf s e^-s / (1 + tau e^s) ds (smooth, no log singularity), computed by quadrature.
    It tends to sigma_a^2 / N as b -> 0. The derivation treats the image as infinite and the pixelated
    spot as a Gaussian of width sigma_a (not the exact model of ``fisher_information``); float64, any
    broadcastable shapes.
    """
    n, b, s, a = (torch.as_tensor(v, dtype=torch.float64) for v in (photons, background, sigma_psf, a))
    var_a = s * s + a * a / 12.0
    tau = 2.0 * torch.pi * var_a * b / (n * a * a)
    nodes = torch.as_tensor(0.5 * _S_MAX * (_NODES + 1.0), dtype=torch.float64, device=tau.device)
    weights = torch.as_tensor(0.5 * _S_MAX * _WEIGHTS, dtype=torch.float64, device=tau.device)
    integrand = nodes * torch.exp(-nodes) / (1.0 + tau[..., None] * torch.exp(nodes))
    bracket = (integrand * weights).sum(-1)
    return var_a / n / bracket
