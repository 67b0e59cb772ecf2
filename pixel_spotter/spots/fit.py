"""Reference estimators of a spot's position: background-subtracted centroid and a batched maximum-likelihood
fit of the pixelated Gaussian model of ``psf.py`` (the estimator that reaches the Cramér–Rao bound).

Images are (B, H, W) or (B, 1, H, W) photon counts (any real dtype; computed in float64); positions are
(B, 2) float64 (x = column, y = row, pixel centres at integers, as in ``pixel_spotter.data.datamodule``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from pixel_spotter.spots.detect import matched_filter, matched_photons
from pixel_spotter.spots.psf import as_batch, counts_and_jacobian, expected_counts, jacobian_factors

MIN_PHOTONS = 1e-3  # the fit keeps photons and background at least this (mu > 0 everywhere)
MIN_BACKGROUND = 1e-6


def _as_images(images: torch.Tensor) -> torch.Tensor:
    images = torch.as_tensor(images)
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.dim() != 3:
        raise ValueError(f"images must be (B, H, W) or (B, 1, H, W), not {tuple(images.shape)}")
    return images.to(torch.float64)


def border_median(images: torch.Tensor) -> torch.Tensor:
    """Background per pixel (B,): the median of each image's outermost ring of pixels. A spot on the border
    covers only a few of its 2(H + W) - 4 pixels, so the median barely moves (it is the background, not the
    mean, for a spot anywhere)."""
    im = _as_images(images)
    ring = torch.cat([im[:, 0, :], im[:, -1, :], im[:, 1:-1, 0], im[:, 1:-1, -1]], dim=1)
    return ring.median(dim=1).values


def _peak(im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) (B,) of the brightest 3x3 neighbourhood (a box sum resists single noisy pixels)."""
    box = F.avg_pool2d(im[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]
    flat = box.flatten(1).argmax(dim=1)
    return flat // im.shape[2], flat % im.shape[2]


def _window(im: torch.Tensor, radius: int, peak: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Mask (B, H, W) of the (2 radius + 1)^2 square around each image's ``peak`` (row, column) (B,) each,
    default ``_peak``, clipped by the image."""
    row, col = _peak(im) if peak is None else peak
    rows = torch.arange(im.shape[1], device=im.device)
    cols = torch.arange(im.shape[2], device=im.device)
    in_rows = (rows[None, :] - row[:, None]).abs() <= radius
    in_cols = (cols[None, :] - col[:, None]).abs() <= radius
    return in_rows[:, :, None] & in_cols[:, None, :]


def centroid(images: torch.Tensor, radius: int = 3, background=None, peak=None) -> torch.Tensor:
    """Centre of mass (B, 2) of the background-subtracted counts max(k - background, 0) in the
    (2 radius + 1)^2 window around the brightest 3x3 neighbourhood (radius ~ 3 sigma_psf keeps the spot and
    drops most of the noise). ``background``: photons/pixel, a number or (B,), default ``border_median``;
    ``peak``: the window's centre (row, column) (B,) each, default the brightest 3x3 neighbourhood.
    Near the border the window is clipped, which pulls the centroid inwards."""
    im = _as_images(images)
    bg = border_median(im) if background is None else as_batch(background, im.shape[0], im)
    weights = (im - bg[:, None, None]).clamp(min=0) * _window(im, radius, peak)
    total = weights.sum(dim=(1, 2))
    rows = torch.arange(im.shape[1], dtype=torch.float64, device=im.device)
    cols = torch.arange(im.shape[2], dtype=torch.float64, device=im.device)
    x = (weights.sum(dim=1) * cols).sum(dim=1) / total
    y = (weights.sum(dim=2) * rows).sum(dim=1) / total
    row, col = _peak(im) if peak is None else peak  # nothing above the background: the peak itself
    return torch.stack([torch.where(total > 0, x, col.double()), torch.where(total > 0, y, row.double())], dim=1)


def initial_guess(images: torch.Tensor, sigma_psf) -> torch.Tensor:
    """Start (B, 4) of the fit: (x, y) the centroid in a window of radius ceil(3 sigma_psf) (at least 2) around
    the maximum of a matched filter of the spots' (mean) width (``detect.matched_filter``: it finds dim wide
    spots that the brightest 3x3 box misses), background the border median, photons the matched filter's
    least-squares count there (``detect.matched_photons``). The window's background-subtracted sum, the start
    this had before, is so noisy under a bright background (b = 100: +-130 photons) that a 500-photon spot
    could start near 0 photons, where x and y carry no information: the fit then stepped to the image's
    corner and stayed there (one such spot in 3,060 made the fit 3.2x the bound at N = 500 on the mix)."""
    im = _as_images(images)
    batch = im.shape[0]
    sigma = as_batch(sigma_psf, batch, im)
    radius = max(2, math.ceil(3 * float(sigma.max())))
    score = matched_filter(im[:, None].float(), float(sigma.mean()))[:, 0]  # float32: a float64 conv is 6x slower
    flat = score.flatten(1).argmax(dim=1)
    peak = (flat // im.shape[2], flat % im.shape[2])
    bg = border_median(im)
    xy = centroid(im, radius, bg, peak)
    photons = matched_photons(im, sigma, peak[0].to(im.dtype), peak[1].to(im.dtype), bg)
    return torch.cat([xy, photons.clamp(min=MIN_PHOTONS)[:, None], bg.clamp(min=MIN_BACKGROUND)[:, None]], dim=1)


class SpotFit(NamedTuple):
    xy: torch.Tensor  # (B, 2) px
    photons: torch.Tensor  # (B,)
    background: torch.Tensor  # (B,) photons/pixel
    converged: torch.Tensor  # (B,) bool: the last accepted step moved x, y by < tol px and photons by < tol relative
    log_likelihood: torch.Tensor  # (B,) Poisson log-likelihood at the estimate (up to a constant)


def _bounds(theta: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lowest and highest (x, y, photons, background): (x, y) inside the image, whose outer pixel edges are at
    -0.5 and W - 0.5 (a spot in a border pixel can lie up to half a pixel beyond the outermost pixel centre, as
    ``data=spot`` draws them), photons and background > 0."""
    lo = theta.new_tensor([-0.5, -0.5, MIN_PHOTONS, MIN_BACKGROUND])
    hi = theta.new_tensor([width - 0.5, height - 0.5, math.inf, math.inf])
    return lo, hi


def _project(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    lo, hi = _bounds(theta, height, width)
    return torch.maximum(torch.minimum(theta, hi), lo)


def _projected_step(theta, grad, fisher, lam, lo, hi, held: torch.Tensor | None = None) -> torch.Tensor:
    """One Levenberg–Marquardt step on Fisher scoring, (I + lam diag(I))^-1 grad, projected into [lo, hi]; a
    parameter on its bound whose gradient points outwards stays there and is left out of the step (projected
    Newton), so the others still converge fast. ``held`` (B, P) bool: parameters that never move."""
    free = ~(((theta <= lo) & (grad < 0)) | ((theta >= hi) & (grad > 0)))
    if held is not None:
        free = free & ~held
    grad = grad * free
    fisher = fisher * (free[:, :, None] & free[:, None, :]) + torch.diag_embed((~free).to(fisher))
    damped = fisher + lam[:, None, None] * torch.diag_embed(fisher.diagonal(dim1=1, dim2=2))
    step = torch.linalg.solve(damped, grad[..., None])[..., 0]
    return torch.maximum(torch.minimum(theta + step, hi), lo)


def fit_ml(images: torch.Tensor, sigma_psf, iterations: int = 30, tol: float = 1e-6, read_noise=0.0,
           init: torch.Tensor | None = None) -> SpotFit:
    """Maximum-likelihood (x, y, photons, background) per image, sigma_psf (px; number or (B,)) known.

    Maximizes the Poisson log-likelihood sum(k ln mu - mu) of ``psf.expected_counts`` by Levenberg–Marquardt
    on Fisher scoring: step = (I + lambda diag(I))^-1 grad, I the Fisher information (always positive
    definite, no second derivatives), projected into the image; a parameter on its bound (x or y on the
    image's outer edge) whose gradient points out of the image is held there and left out of the step
    (projected Newton), so the others still converge fast. A step is kept only if the
    likelihood does not drop (then lambda / 10, else lambda * 10). At most ``iterations`` steps; images whose
    accepted step moved (x, y) by < ``tol`` px and photons by < ``tol`` relative are done (``converged``) and
    leave the batch. ``read_noise`` (photons): the shifted-Poisson approximation of ``crlb.py``, k + r^2 as
    Poisson(mu + r^2). ``init``: (B, 4) start, default ``initial_guess``.
    """
    im = _as_images(images)
    batch, height, width = im.shape
    sigma = as_batch(sigma_psf, batch, im)
    read2 = as_batch(read_noise, batch, im) ** 2
    counts = (im + read2[:, None, None]).clamp(min=0)
    theta = _project(initial_guess(im, sigma) if init is None else init.to(im), height, width)
    lam = torch.full((batch,), 1e-3, dtype=torch.float64, device=im.device)
    converged = torch.zeros(batch, dtype=torch.bool, device=im.device)
    loglik = torch.empty(batch, dtype=torch.float64, device=im.device)

    def loglik_of(mu, idx):
        return (counts[idx] * torch.log(mu) - mu).sum(dim=(1, 2))

    for _ in range(iterations):
        idx = (~converged).nonzero()[:, 0]
        if idx.numel() == 0:
            break
        t, m = theta[idx], idx.numel()
        mu, rows, cols = jacobian_factors(t[:, :2], t[:, 2], t[:, 3], sigma[idx], height, width)
        mu = mu + read2[idx, None, None]
        ll = loglik_of(mu, idx)
        # grad_p = sum_hw J_p (k/mu - 1), I_pq = sum_hw J_p J_q / mu, with J_p = rows_p (x) cols_p
        grad = ((rows @ (counts[idx] / mu - 1.0)) * cols).sum(dim=2)
        pair_rows = (rows[:, :, None] * rows[:, None]).reshape(m, 16, height)
        pair_cols = (cols[:, :, None] * cols[:, None]).reshape(m, 16, width)
        fisher = ((pair_rows @ mu.reciprocal()) * pair_cols).sum(dim=2).reshape(m, 4, 4)
        lo, hi = _bounds(t, height, width)
        cand = _projected_step(t, grad, fisher, lam[idx], lo, hi)
        mu_cand = expected_counts(cand[:, :2], cand[:, 2], cand[:, 3], sigma[idx], height, width)
        ll_cand = loglik_of(mu_cand + read2[idx, None, None], idx)
        accept = torch.isfinite(ll_cand) & (ll_cand >= ll)
        step = (cand - t).abs()
        small = (step[:, :2].amax(dim=1) < tol) & (step[:, 2] < tol * t[:, 2])
        theta[idx] = torch.where(accept[:, None], cand, t)
        loglik[idx] = torch.where(accept, ll_cand, ll)
        lam[idx] = torch.where(accept, (lam[idx] / 10).clamp(min=1e-9), (lam[idx] * 10).clamp(max=1e12))
        converged[idx] = accept & small
    return SpotFit(theta[:, :2], theta[:, 2], theta[:, 3], converged, loglik)


class SpotFitSigma(NamedTuple):
    theta: torch.Tensor  # (B, 5): x, y (px, in the images' own pixel frame), photons, background, sigma_psf
    log_likelihood: torch.Tensor  # (B,) at theta (up to a constant), over the masked pixels
    start_log_likelihood: torch.Tensor  # (B,) at the start: the gain says how much the fit found


def fit_ml_free_sigma(counts: torch.Tensor, init: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                      mask: torch.Tensor | None = None, iterations: int = 10,
                      extra: torch.Tensor | None = None) -> SpotFitSigma:
    """Maximum-likelihood (x, y, photons, background, sigma_psf) per image with sigma_psf unknown: what a
    model that is not told the PSF's width can fit. The same Levenberg–Marquardt as ``fit_ml`` on the Poisson
    likelihood of ``psf.expected_counts``, with the dense five-row Jacobian (sigma's derivative is not one
    outer product) and a fixed number of steps (no early exit: it runs inside a model's forward, on patches).

    ``counts`` (B, H, W) photon counts, e.g. patches cut around a detection (then x, y are in the patch's
    frame); ``mask`` (B, H, W) bool: pixels that exist (a patch's part outside the image counts nothing);
    ``init``, ``lower``, ``upper`` (B, 5) the start and the box the fit stays in (keep sigma_psf's bounds > 0
    and photons', background's > 0: mu must stay positive). ``extra`` (B, H, W): expected photons that are not
    the fitted spot's and stay fixed (the light of known neighbours, in a crowded frame). float64 throughout; no
    gradient.
    """
    with torch.no_grad():
        counts = counts.to(torch.float64)
        batch, height, width = counts.shape
        keep = torch.ones_like(counts) if mask is None else mask.to(counts)
        lower, upper = lower.to(counts), upper.to(counts)
        theta = torch.maximum(torch.minimum(init.to(counts), upper), lower)
        lam = torch.full((batch,), 1e-3, dtype=torch.float64, device=counts.device)
        fixed = 0.0 if extra is None else extra.to(counts)

        def loglik(t):
            mu = expected_counts(t[:, :2], t[:, 2], t[:, 3], t[:, 4], height, width) + fixed
            return ((counts * torch.log(mu) - mu) * keep).sum(dim=(1, 2))

        start = current = loglik(theta)
        for _ in range(iterations):
            mu, jac = counts_and_jacobian(theta[:, :2], theta[:, 2], theta[:, 3], theta[:, 4], height, width,
                                          with_sigma=True)
            mu = mu + fixed
            residual = (counts / mu - 1.0) * keep
            grad = torch.einsum("bphw,bhw->bp", jac, residual)
            fisher = torch.einsum("bphw,bqhw->bpq", jac, jac * (keep / mu)[:, None])
            cand = _projected_step(theta, grad, fisher, lam, lower, upper)
            new = loglik(cand)
            accept = torch.isfinite(new) & (new >= current)
            theta = torch.where(accept[:, None], cand, theta)
            current = torch.where(accept, new, current)
            lam = torch.where(accept, (lam / 10).clamp(min=1e-9), (lam * 10).clamp(max=1e12))
        return SpotFitSigma(theta, current, start)
