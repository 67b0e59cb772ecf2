"""Refining a frame model's localizations by maximum likelihood (``model.refine``): the network finds the emitters
and guesses each one's position, photons, background and PSF width; then each is fitted in its own window of the
frame's photons (``spots.fit.fit_ml_free_sigma``: Poisson likelihood, PSF width free), the light of every other
localization of the frame, as the network guessed it, held fixed in the window's model (so a neighbour's spot is
explained, not fitted). An isolated emitter then reaches the Cramér–Rao bound, as the single-spot ML fit does; the
network alone answers offsets a few times the bound after the minutes of CPU training it gets here.

The uncertainty each refined localization carries is its Cramér–Rao standard deviation at the fitted values (PSF
width unknown), what the fit's precision is when it has found the emitter alone.
"""

from __future__ import annotations

import math

import torch

from pixel_spotter.spots.crlb import crlb_xy
from pixel_spotter.spots.fit import fit_ml_free_sigma
from pixel_spotter.spots.psf import expected_counts

RADIUS = 5  # the window: 11 x 11 pixels, three PSF widths of the widest trained PSF either way
STEP_PX = 1.5  # how far the fit may move a position from the network's guess
SIGMA_RANGE = (0.5, 3.0)  # px


def _frame_windows(photons: torch.Tensor, found: dict, size: int):
    height, width = photons.shape
    xy = torch.as_tensor(found["xy"], dtype=torch.float64)
    top = (xy[:, 1].round().long() - RADIUS).clamp(0, height - size)
    left = (xy[:, 0].round().long() - RADIUS).clamp(0, width - size)
    offsets = torch.arange(size)
    windows = photons[(top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :]]
    return xy, top, left, windows


def refine_frame(photons: torch.Tensor, found: dict, iterations: int) -> dict:
    """One frame's localizations (``FrameLocalizer.localize``'s dict) refined on its (H, W) photons."""
    size = 2 * RADIUS + 1
    height, width = photons.shape
    count = len(found["xy"])
    if count == 0 or height < size or width < size:
        return found
    xy, top, left, windows = _frame_windows(photons, found, size)
    corner = torch.stack([left, top], dim=1).to(torch.float64)
    n = torch.as_tensor(found["photons"], dtype=torch.float64).clamp(min=1.0)
    b = torch.as_tensor(found["background"], dtype=torch.float64).clamp(min=1e-2)
    s = torch.as_tensor(found["psf_sigma"], dtype=torch.float64).clamp(*SIGMA_RANGE)
    # every other localization's light in each window: (window k, spot j) pairs, the diagonal left out
    relative = (xy[None, :, :] - corner[:, None, :]).reshape(-1, 2)
    spots = expected_counts(relative, n.repeat(count), 0.0, s.repeat(count), size, size).view(count, count, size, size)
    spots = spots * (1 - torch.eye(count, dtype=spots.dtype))[:, :, None, None]
    extra = spots.sum(dim=1)
    local = xy - corner
    init = torch.stack([local[:, 0], local[:, 1], n, b, s], dim=1)
    lower = torch.stack([(local[:, 0] - STEP_PX).clamp(min=-0.5), (local[:, 1] - STEP_PX).clamp(min=-0.5),
                         0.1 * n, torch.full_like(b, 1e-3), torch.full_like(s, SIGMA_RANGE[0])], dim=1)
    upper = torch.stack([(local[:, 0] + STEP_PX).clamp(max=size - 0.5), (local[:, 1] + STEP_PX).clamp(max=size - 0.5),
                         10 * n + 10, 10 * b + 10, torch.full_like(s, SIGMA_RANGE[1])], dim=1)
    theta = fit_ml_free_sigma(windows, init, lower, upper, iterations=iterations, extra=extra).theta
    good = torch.isfinite(theta).all(dim=1)
    theta = torch.where(good[:, None], theta, init)
    var_x, var_y = crlb_xy(theta[:, :2], theta[:, 2], theta[:, 3], theta[:, 4], size, size, free_sigma=True)
    sigma = torch.stack([var_x, var_y], dim=1).clamp(min=1e-8).sqrt()
    sigma = torch.where(torch.isfinite(sigma), sigma, torch.as_tensor(found["sigma"], dtype=torch.float64))
    return {**found, "xy": (theta[:, :2] + corner).numpy(), "photons": theta[:, 2].numpy(),
            "background": theta[:, 3].numpy(), "psf_sigma": theta[:, 4].numpy(), "sigma": sigma.numpy()}


def refine(photons: torch.Tensor, found: list[dict], iterations: int) -> list[dict]:
    """Every frame's localizations refined: ``photons`` (B, H, W), ``found`` one dict per frame."""
    photons = photons.detach().to("cpu", torch.float64)
    if not math.isfinite(float(photons.sum())):
        return found
    return [refine_frame(photons[i], f, iterations) for i, f in enumerate(found)]
