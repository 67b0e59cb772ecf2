"""Expected photon counts of a pixelated 2D Gaussian spot, their derivatives, and noisy images of it.

Coordinates (``pixel_spotter.data.datamodule``): x is the column, y the row, origin top-left, pixel centres at the
integers 0..W-1 / 0..H-1, so pixel (row r, column c) covers [c - 0.5, c + 0.5] x [r - 0.5, r + 0.5] (pixel
size a = 1). A spot at (x, y) with ``photons`` N and ``sigma_psf`` s (px) puts into that pixel the expected count

    mu[r, c] = N * Ex[c] * Ey[r] + b,   Ex[c] = Phi((c + 0.5 - x) / s) - Phi((c - 0.5 - x) / s)

(Phi: standard normal CDF; Ey likewise with y and r): the Gaussian integrated over each pixel exactly.
N is the integral over the whole plane, so photons falling outside the image are lost (a spot on the
border pixel loses about half of them); ``background`` b is the expected count per pixel.

Every function takes a batch: ``xy`` (B, 2), ``photons``/``background``/``sigma_psf`` numbers or (B,)
tensors, and computes in float64 on ``xy``'s device. Images are (B, H, W).
"""

from __future__ import annotations

import math

import torch
from torch.special import ndtr

PARAMS = ("x", "y", "photons", "background")  # the order of the Jacobian's rows (then "sigma_psf")
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def as_batch(value, batch: int, like: torch.Tensor) -> torch.Tensor:
    """A number or (B,) tensor as a float64 (B,) tensor on ``like``'s device."""
    out = torch.as_tensor(value, dtype=torch.float64, device=like.device)
    return out.expand(batch) if out.dim() == 0 else out.reshape(batch)


def _axis(centre: torch.Tensor, sigma: torch.Tensor, n: int):
    """Per-pixel Gaussian mass along one axis (B, n) and its derivatives w.r.t. the centre and sigma.

    The mass is a difference of CDFs on the spot's side of each pixel (upper tails to its right), so pixels
    far out keep their relative precision instead of cancelling 1 - 1.
    """
    edges = torch.arange(n + 1, dtype=torch.float64, device=centre.device) - 0.5
    z = (edges - centre[:, None]) / sigma[:, None]  # (B, n + 1)
    cdf, tail = ndtr(z), ndtr(-z)
    mass = torch.where(z[:, :-1] > 0, tail[:, :-1] - tail[:, 1:], cdf[:, 1:] - cdf[:, :-1])
    pdf = torch.exp(-0.5 * z * z) * _INV_SQRT_2PI
    s = sigma[:, None]
    d_centre = (pdf[:, :-1] - pdf[:, 1:]) / s  # d/dc Phi((e - c)/s) = -pdf(z)/s
    zpdf = z * pdf
    d_sigma = (zpdf[:, :-1] - zpdf[:, 1:]) / s  # d/ds Phi((e - c)/s) = -z pdf(z)/s
    return mass, d_centre, d_sigma


def _unpack(xy, photons, background, sigma_psf):
    xy = torch.as_tensor(xy).to(torch.float64)
    batch = xy.shape[0]
    return (xy[:, 0], xy[:, 1], as_batch(photons, batch, xy), as_batch(background, batch, xy),
            as_batch(sigma_psf, batch, xy))


def expected_counts(xy, photons, background, sigma_psf, height: int, width: int) -> torch.Tensor:
    """Expected counts mu (B, H, W), float64, of spots at ``xy`` (B, 2) (see the module docstring)."""
    x, y, n, b, s = _unpack(xy, photons, background, sigma_psf)
    ex = _axis(x, s, width)[0]
    ey = _axis(y, s, height)[0]
    return n[:, None, None] * ey[:, :, None] * ex[:, None, :] + b[:, None, None]


def summed_counts(xy, photons, sigma_psf, height: int, width: int) -> torch.Tensor:
    """(H, W) float64: the expected counts of all the spots at ``xy`` (K, 2) together, no background. Each spot is
    an outer product of its row and column masses, so the sum is one (H, K) x (K, W) product: memory K (H + W),
    not the K H W of ``expected_counts(...).sum(0)`` (a 512x512 frame of 8,000 emitters: 16 GB)."""
    x, y, n, _, s = _unpack(xy, photons, 0.0, sigma_psf)
    ex = _axis(x, s, width)[0]
    ey = _axis(y, s, height)[0]
    return (ey * n[:, None]).T @ ex


def summed_counts_per_frame(xy, photons, sigma_psf, frame: torch.Tensor, frames: int, height: int,
                            width: int) -> torch.Tensor:
    """(frames, H, W) float64: ``summed_counts`` of each frame's spots, the spots of all frames at once (``frame``
    (K,) says whose each spot is): one batched (H, K_max) x (K_max, W) product over frames padded to the most
    spots any frame has, not a loop over frames."""
    x, y, n, _, s = _unpack(xy, photons, 0.0, sigma_psf)
    ex = _axis(x, s, width)[0]
    ey = _axis(y, s, height)[0] * n[:, None]
    frame = torch.as_tensor(frame, dtype=torch.long, device=ex.device)
    counts = torch.bincount(frame, minlength=frames)
    order = torch.argsort(frame, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(frame)
    rank[order] = torch.arange(len(frame), device=ex.device) - starts[frame[order]]
    most = int(counts.max()) if len(frame) else 0
    rows = torch.zeros(frames, most, height, dtype=ex.dtype, device=ex.device)
    cols = torch.zeros(frames, most, width, dtype=ex.dtype, device=ex.device)
    rows[frame, rank], cols[frame, rank] = ey, ex
    return rows.transpose(1, 2) @ cols


def jacobian_factors(xy, photons, background, sigma_psf, height: int, width: int):
    """``(mu, rows, cols)``: mu (B, H, W) as ``expected_counts`` and its derivatives w.r.t. (x, y, photons,
    background) (``PARAMS``) as outer products, d mu / d theta_p = rows[:, p, :, None] * cols[:, p, None, :],
    rows (B, 4, H) and cols (B, 4, W): sums over pixels then cost matrix products, not (B, 4, H, W) arrays."""
    x, y, n, b, s = _unpack(xy, photons, background, sigma_psf)
    ex, dex, _ = _axis(x, s, width)
    ey, dey, _ = _axis(y, s, height)
    nn = n[:, None]
    rows = torch.stack([nn * ey, nn * dey, ey, torch.ones_like(ey)], dim=1)
    cols = torch.stack([dex, ex, ex, torch.ones_like(ex)], dim=1)
    return torch.einsum("bh,bw->bhw", rows[:, 0], ex) + b[:, None, None], rows, cols


def counts_and_jacobian(xy, photons, background, sigma_psf, height: int, width: int, with_sigma: bool = False):
    """``(mu, jac)``: mu (B, H, W) as ``expected_counts`` and its analytic derivatives jac (B, P, H, W)
    w.r.t. (x, y, photons, background) (``PARAMS``), then sigma_psf if ``with_sigma`` (P = 4 or 5)."""
    mu, rows, cols = jacobian_factors(xy, photons, background, sigma_psf, height, width)
    jac = rows[:, :, :, None] * cols[:, :, None, :]
    if with_sigma:
        x, y, n, _, s = _unpack(xy, photons, background, sigma_psf)
        ex, _, dexs = _axis(x, s, width)
        ey, _, deys = _axis(y, s, height)
        d_sigma = n[:, None, None] * (deys[:, :, None] * ex[:, None, :] + ey[:, :, None] * dexs[:, None, :])
        jac = torch.cat([jac, d_sigma[:, None]], dim=1)
    return mu, jac


def sample_counts(mu: torch.Tensor, generator: torch.Generator | None = None, read_noise=0.0) -> torch.Tensor:
    """A noisy image of expected counts ``mu``: Poisson shot noise, plus Gaussian read noise of standard
    deviation ``read_noise`` (photons; a number or (B,) tensor) when it is not 0. ``generator`` (on mu's
    device) makes it reproducible. Same dtype as mu; with read noise the counts are real and can be < 0."""
    counts = torch.poisson(mu, generator=generator)
    read = as_batch(read_noise, mu.shape[0], mu).to(mu.dtype)
    if bool((read != 0).any()):
        noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        counts = counts + read[:, None, None] * noise
    return counts


def simulate(xy, photons, background, sigma_psf, height: int, width: int,
             generator: torch.Generator | None = None, read_noise=0.0) -> torch.Tensor:
    """Noisy images (B, H, W) float64 of spots at ``xy``: ``sample_counts(expected_counts(...))``."""
    mu = expected_counts(xy, photons, background, sigma_psf, height, width)
    return sample_counts(mu, generator, read_noise)


def random_positions(batch: int, height: int, width: int, margin: float = 0.0,
                     generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Uniform continuous positions (B, 2) float64, x in [margin, W-1-margin], y in [margin, H-1-margin]."""
    u = torch.rand(batch, 2, generator=generator, dtype=torch.float64, device=device)
    span = torch.tensor([width - 1 - 2 * margin, height - 1 - 2 * margin], dtype=torch.float64, device=u.device)
    return margin + u * span
