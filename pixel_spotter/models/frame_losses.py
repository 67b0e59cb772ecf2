"""The training losses of a frame model (``model.loss``), each (maps, true sets) -> a scalar.

- ``detection``: per-pixel binary cross-entropy against the map of true pixels (the many-pixels task, whose
  emitters sit at pixel centres).
- ``mixture``: DECODE's idea (Speiser et al., Nature Methods 2021), written here from its description: no matching
  inside the loss. A count term, the true number of emitters under a Gaussian with the mean and variance of the sum
  of the detection probabilities (a Poisson-binomial's), plus a Gaussian-mixture likelihood: every pixel is a
  component weighted by its share of the probability, centred at its own centre plus its predicted offset, with its
  predicted photons and their standard deviations, and each true emitter's (x, y, photons) must be likely under the
  mixture. Plus a squared relative error of the background and the squared error of each emitter's PSF width read at
  its own pixel (what a localization table reports as sigma). Only components within ``WINDOW`` pixels of an emitter
  are summed (the others' density there is below e^-(WINDOW^2/2) of theirs at the smallest sigmas, and the weights
  keep their global normalization), which makes the cost per emitter, not per emitter x pixel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pixel_spotter.models.frame_maps import Maps
from pixel_spotter.tasks.frame_sets import FrameSets

WINDOW = 3  # px either way: the mixture components summed for one emitter


def true_pixel_map(sets: FrameSets, height: int, width: int) -> torch.Tensor:
    """(B, H, W) float: 1 at each true emitter's pixel."""
    target = torch.zeros(len(sets), height, width, device=sets.xy.device)
    frame, k = sets.mask.nonzero(as_tuple=True)
    col = sets.xy[frame, k, 0].round().long().clamp(0, width - 1)
    row = sets.xy[frame, k, 1].round().long().clamp(0, height - 1)
    target[frame, row, col] = 1.0
    return target


def detection_loss(maps: Maps, sets: FrameSets, photon_scale: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(maps.logit, true_pixel_map(sets, *maps.logit.shape[1:]))


def _log_normal(value, mean, sigma):
    return -0.5 * ((value - mean) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)


def mixture_loss(maps: Maps, sets: FrameSets, photon_scale: float) -> torch.Tensor:
    batch, height, width = maps.logit.shape
    p = maps.probability.flatten(1)
    mean, var = p.sum(dim=1), (p * (1 - p)).sum(dim=1).clamp(min=1e-6)
    counts = sets.counts.float()
    count_term = 0.5 * torch.log(2 * math.pi * var) + (counts - mean) ** 2 / (2 * var)

    # each emitter's components: the (2 WINDOW + 1)^2 pixels around its own
    steps = torch.arange(-WINDOW, WINDOW + 1, device=p.device)
    du, dv = torch.meshgrid(steps, steps, indexing="xy")
    col = sets.xy[..., 0].round().long()[..., None] + du.flatten()  # (B, K, M)
    row = sets.xy[..., 1].round().long()[..., None] + dv.flatten()
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height) & sets.mask[..., None]
    index = (row.clamp(0, height - 1) * width + col.clamp(0, width - 1)).flatten(1)  # (B, K*M)

    def at(values):
        return values.flatten(1).gather(1, index).view(col.shape)

    log_weight = torch.log(at(p).clamp(min=1e-12)) - torch.log(mean.clamp(min=1e-6))[:, None, None]
    log_density = (_log_normal(sets.xy[..., 0, None], col + at(maps.dx), at(maps.sigma_x))
                   + _log_normal(sets.xy[..., 1, None], row + at(maps.dy), at(maps.sigma_y))
                   + _log_normal(sets.photons[..., None] / photon_scale, at(maps.photons), at(maps.sigma_photons)))
    terms = torch.where(inside, log_weight + log_density, torch.full_like(log_density, -1e4))
    per_emitter = torch.logsumexp(terms, dim=2)  # (B, K)
    location_term = -(per_emitter * sets.mask).sum(dim=1)

    true_background = sets.background[:, None, None] / photon_scale
    background_term = ((maps.background - true_background) / (true_background + 1e-3)).pow(2).mean(dim=(1, 2))
    # each emitter's PSF width, read at its own pixel: squared error in px
    own = WINDOW * (2 * WINDOW + 1) + WINDOW  # the window's centre: the emitter's pixel
    psf_error = (at(maps.psf_sigma)[..., own] - sets.psf_sigma) ** 2
    psf_term = (psf_error * (sets.mask & inside[..., own])).sum(dim=1)
    return (count_term + location_term + background_term + psf_term).mean()


LOSSES = {"detection": detection_loss, "mixture": mixture_loss}
CHANNELS_OF_LOSS = {"detection": "detection", "mixture": "emitters"}  # which maps each loss needs (frame_maps)
