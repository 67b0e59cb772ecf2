"""The posterior mean of a spot's position by brute-force quadrature: a lower bound for any estimator.

Given an image's true photons N, background b and sigma_psf (an oracle: knowing them can only lower the
Bayes risk), the posterior of (x, y) under a uniform prior over the union of the unit squares of ``pixels``
(how ``data=spot`` draws its test positions: a pixel of the split, then a uniform sub-pixel offset) is

    p(x, y | k) ~ exp(L(x, y)),   L = sum over pixels of k ln mu - mu,   mu = N Ey(y) (x) Ex(x) + b

(``psf.py``). Its mean is the minimum-mean-squared-error estimator, so E|mean - truth|^2 over images drawn
from that prior is the smallest expected 2D squared error ANY estimator can have on them, biased or not, with
or without a detection step: the Bayes floor (``floor.py``) that the Cramér–Rao bound, a local
bound for unbiased estimators, does not give when a dim spot can be lost in the noise.

Quadrature, per image, float64: L is k ln(1 + N Ey Ex / b) (up to constants) summed over a window of pixels
within 6 sigma_psf of the candidate position (outside, the neglected terms total ~N 1e-9 nats) minus the
photons inside the image, N Sy(y) Sx(x), exactly. The posterior's width ranges from several pixels (low SNR,
many local modes) to ~0.01 px, so:

- coarse: the midpoint rule on ``coarse`` x ``coarse`` cells in each prior pixel (the cells tile the prior's
  support exactly: its edges are cell edges, never inside a cell);
- fine: where the posterior is narrower than a coarse cell (by the Fisher information about (x, y) at the
  coarse maximum, or by the coarse posterior's own sd: a peak cut by the prior's or the image's edge can be
  much narrower than the Fisher information says), a grid search zooms onto the peak and a box of
  +-``extent`` local sd around it, snapped outwards to the coarse cells it covers (which it replaces), is
  integrated by the midpoint rule with a step of ``fine`` local sd, its pieces split at pixel edges (the prior
  stays exact). The local sd starts from those estimates and is then the box's own posterior sd, until the
  two agree within a factor 0.7-1.5. The midpoint rule on a Gaussian-like peak with step h <= sd is accurate
  to ~2 exp(-2 pi^2 sd^2 / h^2).

Secondary modes away from the peak keep the coarse grid; they carry weight only at low SNR, where the
posterior is wide enough for it (tests/spots/test_spots_bayes.py checks that halving the steps changes nothing that
matters). A quadrature error delta only ADDS E|delta|^2 to the mean squared error (the posterior mean is
orthogonal to any function of the image), so an error of 5% of the posterior sd inflates the floor by 0.1%.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.special import ndtr

from pixel_spotter.spots.crlb import fisher_information
from pixel_spotter.spots.psf import _axis, as_batch

WINDOW_SIGMAS = 6.0  # pixels farther than this from a candidate position are left out of its likelihood
_CHUNK = 1 << 22  # elements (32 MB float64) per likelihood chunk: memory stays at a few hundred MB at most


class Posterior(NamedTuple):
    mean: torch.Tensor  # (B, 2) posterior mean of (x, y), px
    var: torch.Tensor  # (B, 2) posterior variance of x and of y, px^2
    refined: torch.Tensor  # (B,) bool: the fine box was used (posterior narrower than a coarse cell)


def _check(counts, photons, background, sigma_psf, pixels):
    counts = torch.as_tensor(counts)
    if counts.dim() == 4 and counts.shape[1] == 1:
        counts = counts[:, 0]
    if counts.dim() != 3 or counts.shape[0] == 0:
        raise ValueError(f"counts must be (B, H, W) photon counts with B >= 1, not {tuple(counts.shape)}")
    counts = counts.to(torch.float64)
    batch, height, width = counts.shape
    if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
        raise ValueError("counts must be finite photon counts >= 0 (the likelihood is Poisson; no read noise)")
    values = []
    for name, value, low in (("photons", photons, 0.0), ("background", background, 0.0), ("sigma_psf", sigma_psf, 0.0)):
        v = torch.as_tensor(value, dtype=torch.float64)
        if v.dim() > 1 or (v.dim() == 1 and v.numel() != batch):
            raise ValueError(f"{name} must be a number or a ({batch},) tensor (one per image), not {tuple(v.shape)}")
        v = as_batch(v, batch, counts)
        if not bool(torch.isfinite(v).all()) or bool((v <= low).any()):
            raise ValueError(f"{name} must be finite and > 0")
        values.append(v)
    pixels = torch.as_tensor(pixels)
    if pixels.dim() != 2 or pixels.shape[1] != 2 or pixels.shape[0] == 0:
        raise ValueError(f"pixels must be a non-empty (P, 2) list of (x, y) pixel indices, not {tuple(pixels.shape)}")
    if pixels.is_floating_point() and not bool((pixels == pixels.round()).all()):
        raise ValueError("pixels must be integer (x, y) = (column, row) indices")
    pixels = pixels.long()
    if bool((pixels < 0).any()) or bool((pixels[:, 0] >= width).any()) or bool((pixels[:, 1] >= height).any()):
        raise ValueError(f"pixels must lie in the {height}x{width} image: 0 <= x < {width}, 0 <= y < {height}")
    return counts, *values, torch.unique(pixels, dim=0)


class _Image:
    """One image's log-likelihood L on tensor grids of positions, from windows of pixels around them."""

    def __init__(self, counts: torch.Tensor, photons: float, background: float, sigma: float):
        self.shape = self.height, self.width = counts.shape
        self.radius = math.ceil(WINDOW_SIGMAS * sigma)
        self.pad = torch.nn.functional.pad(counts, (self.radius,) * 4)  # zero counts outside: no terms
        self.n, self.ratio, self.sigma = photons, photons / background, sigma

    def _sigmas(self, count: int) -> torch.Tensor:
        return torch.full((count,), self.sigma, dtype=torch.float64)

    def _inside(self, centre: torch.Tensor, size: int) -> torch.Tensor:
        """Fraction of the spot's photons that fall inside the image along one axis."""
        return ndtr((size - 0.5 - centre) / self.sigma) - ndtr((-0.5 - centre) / self.sigma)

    def loglik(self, xs: torch.Tensor, ys: torch.Tensor, c0: torch.Tensor, r0: torch.Tensor,
               sx: int, sy: int) -> torch.Tensor:
        """L (G, gy, gx) on the G grids xs (G, gx) x ys (G, gy), each from the pixels in columns c0..c0+sx-1 and
        rows r0..r0+sy-1 (G,) (which must cover WINDOW_SIGMAS sigma_psf around its positions)."""
        g, gx, gy = xs.shape[0], xs.shape[1], ys.shape[1]
        # a window's masses are the masses of a spot shifted by -c0 in pixels 0..sx-1
        ex = _axis((xs - c0[:, None]).reshape(-1), self._sigmas(g * gx), sx)[0].reshape(g, gx, sx)
        ey = _axis((ys - r0[:, None]).reshape(-1), self._sigmas(g * gy), sy)[0].reshape(g, gy, sy)
        rows = r0[:, None] + self.radius + torch.arange(sy)
        cols = c0[:, None] + self.radius + torch.arange(sx)
        window = self.pad[rows[:, :, None], cols[:, None, :]]  # (G, sy, sx)
        out = torch.empty(g, gy, gx, dtype=torch.float64)
        step = max(1, _CHUNK // (gy * gx * sy * sx))
        for i in range(0, g, step):
            z = self.ratio * ey[i:i + step, :, None, :, None] * ex[i:i + step, None, :, None, :]
            out[i:i + step] = torch.einsum("gjiuv,guv->gji", torch.log1p(z), window[i:i + step])
        inside = self._inside(ys, self.height)[:, :, None] * self._inside(xs, self.width)[:, None, :]
        return out - self.n * inside

    def loglik_box(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """L (gy, gx) on one grid xs (gx,) x ys (gy,), from the pixels within the window around all of it."""
        c0 = math.floor(float(xs.min()) + 0.5) - self.radius
        r0 = math.floor(float(ys.min()) + 0.5) - self.radius
        sx = math.floor(float(xs.max()) + 0.5) + self.radius + 1 - c0
        sy = math.floor(float(ys.max()) + 0.5) + self.radius + 1 - r0
        c0, r0 = max(c0, -self.radius), max(r0, -self.radius)  # clipped to the padded image
        sx = min(sx, self.width + self.radius - c0)
        sy = min(sy, self.height + self.radius - r0)
        return self.loglik(xs[None], ys[None], torch.tensor([c0]), torch.tensor([r0]), sx, sy)[0]


def _pieces(lo: float, hi: float, inner: tuple[float, float], fine: float, coarse: float):
    """Midpoint nodes and weights (1D) on [lo, hi], split at pixel edges and at ``inner``'s ends; step <= ``fine``
    inside ``inner``, <= ``coarse`` outside it."""
    cuts = {lo, hi, *(min(max(v, lo), hi) for v in inner)}
    cuts.update(e + 0.5 for e in range(math.ceil(lo - 0.5), math.floor(hi - 0.5) + 1))
    cuts = sorted(cuts)
    nodes, weights = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        if b - a <= 1e-12:
            continue
        inside = inner[0] <= 0.5 * (a + b) <= inner[1]
        n = max(1, math.ceil((b - a) / (fine if inside else coarse) - 1e-9))
        nodes += [a + (i + 0.5) * (b - a) / n for i in range(n)]
        weights += [(b - a) / n] * n
    return torch.tensor(nodes, dtype=torch.float64), torch.tensor(weights, dtype=torch.float64)


def _moments(points: torch.Tensor, logw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (2,) and variance (2,) of the weights exp(logw) (log-sum-exp: softmax) at points (M, 2)."""
    w = torch.softmax(logw, dim=0)
    mean = w @ points
    return mean, w @ (points - mean) ** 2


def posterior(counts, photons, background, sigma_psf, pixels, coarse: int = 4, fine: float = 0.5,
              extent: float = 6.0) -> Posterior:
    """Posterior mean and variance of (x, y) per image (see the module docstring).

    counts (B, H, W) (or (B, 1, H, W)) photon counts; photons, background (photons/pixel), sigma_psf (px): each
    image's true values, numbers or (B,); pixels (P, 2) integer (x, y) = (column, row): the prior is uniform over
    the union of their unit squares. ``coarse``: cells per pixel side of the coarse grid; ``fine``: the fine
    box's step, ``extent``: its half-width, both in the posterior's local sd.
    """
    counts, photons, background, sigma, pixels = _check(counts, photons, background, sigma_psf, pixels)
    batch, height, width = counts.shape
    h = 1.0 / coarse
    offsets = (torch.arange(coarse, dtype=torch.float64) + 0.5) * h - 0.5
    xs = pixels[:, 0, None].double() + offsets  # (P, coarse): the coarse cells' centres in each prior pixel
    ys = pixels[:, 1, None].double() + offsets
    grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), dim=-1).reshape(-1, 2)
    support = torch.zeros(height, width, dtype=torch.bool)
    support[pixels[:, 1], pixels[:, 0]] = True
    mean = torch.empty(batch, 2, dtype=torch.float64)
    var = torch.empty(batch, 2, dtype=torch.float64)
    refined = torch.zeros(batch, dtype=torch.bool)
    for i in range(batch):
        n, b, s = float(photons[i]), float(background[i]), float(sigma[i])
        image = _Image(counts[i], n, b, s)
        r = image.radius
        loglik = image.loglik(xs, ys, pixels[:, 0] - r, pixels[:, 1] - r, 2 * r + 1, 2 * r + 1)  # (P, gy, gx)
        points, logw = grid, loglik.reshape(-1)  # + log(cell area): the same for every coarse cell
        centre = points[logw.argmax()]
        # the local width: the Fisher information about (x, y) alone (N, b, sigma_psf known) at the coarse
        # maximum, or the coarse posterior's own sd where narrower (a peak cut by the prior's edge)
        info = fisher_information(centre[None], n, b, s, height, width)[0, :2, :2]
        width0 = torch.minimum(info.diagonal().clamp(min=1e-300).rsqrt(), _moments(points, logw)[1].sqrt())
        if float(width0.min()) < h:
            refined[i] = True
            points, logw = _refine(image, points, logw, centre, width0.clamp(min=h / 16), h, support, extent, fine)
        mean[i], var[i] = _moments(points, logw)
    return Posterior(mean, var, refined)


def posterior_mean(counts, photons, background, sigma_psf, pixels, **quadrature) -> torch.Tensor:
    """The posterior mean (B, 2) float64 of (x, y) per image: ``posterior(...).mean``."""
    return posterior(counts, photons, background, sigma_psf, pixels, **quadrature).mean


def _refine(image: _Image, points, logw, centre, width, h: float, support, extent: float, fine: float,
            rounds: int = 4):
    """Coarse (points, logw) with a fine box around the peak near ``centre`` in place of the coarse cells it
    covers. The box's step and half-width follow the posterior's local sd per axis, ``width`` to start with,
    then the box's own sd, until the two agree within [0.7, 1.5] (at most ``rounds`` boxes)."""
    centre = _zoom(image, centre, h, float(width.min()), support)
    for _ in range(rounds):
        box = [_box(float(centre[a]), extent * float(width[a]), h, image.shape[1 - a], min(h, fine * float(width[a])))
               for a in (0, 1)]
        (bx, wx), (by, wy) = box[0][2], box[1][2]
        inside = support[(by + 0.5).floor().long()[:, None], (bx + 0.5).floor().long()[None, :]]
        box_lw = image.loglik_box(bx, by) + wy.log()[:, None] + wx.log()[None, :] - 2 * math.log(h)
        box_lw = box_lw.masked_fill(~inside, -math.inf).reshape(-1)
        box_points = torch.stack(torch.broadcast_tensors(bx[None, :], by[:, None]), dim=-1).reshape(-1, 2)
        sd = _moments(box_points, box_lw)[1].sqrt()
        ratio = sd / width
        if bool(((ratio > 0.7) & (ratio < 1.5)).all()):
            break
        width, centre = sd.clamp(min=h / 256), box_points[box_lw.argmax()]
    covered = ((points[:, 0] > box[0][0]) & (points[:, 0] < box[0][1])
               & (points[:, 1] > box[1][0]) & (points[:, 1] < box[1][1]))
    return torch.cat([points[~covered], box_points]), torch.cat([logw[~covered], box_lw])


def _zoom(image: _Image, centre: torch.Tensor, half: float, target: float, support: torch.Tensor) -> torch.Tensor:
    """The peak of L near ``centre`` to within ~``target`` px: 9 x 9 grid searches over +-``half`` around the
    best node so far, the step shrinking 4x each round (nodes outside the prior's support never win)."""
    height, width = support.shape
    steps = torch.linspace(-1.0, 1.0, 9, dtype=torch.float64)
    while True:
        xs = (centre[0] + half * steps).clamp(-0.5, width - 0.5 - 1e-9)
        ys = (centre[1] + half * steps).clamp(-0.5, height - 0.5 - 1e-9)
        ll = image.loglik_box(xs, ys)
        ll = ll.masked_fill(~support[(ys + 0.5).floor().long()[:, None], (xs + 0.5).floor().long()[None, :]],
                            -math.inf)
        best = int(ll.argmax())
        centre = torch.stack([xs[best % 9], ys[best // 9]])
        half /= 4
        if half <= target:
            return centre


def _box(centre: float, half: float, h: float, size: int, step: float):
    """(lo, hi, (nodes, weights)) of the fine box along one axis: centre +- half snapped outwards to the coarse
    cells' edges (-0.5 + multiples of h) and clipped to the image, its nodes from ``_pieces``."""
    lo = max(-0.5, -0.5 + math.floor((centre - half + 0.5) / h) * h)
    hi = min(size - 0.5, -0.5 + math.ceil((centre + half + 0.5) / h) * h)
    return lo, hi, _pieces(lo, hi, (centre - half, centre + half), step, h)
