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
STEP_PX = 0.5  # how far the fit may move a position from the network's guess
SIGMA_RANGE = (0.5, 3.0)  # px


def _frame_windows(photons: torch.Tensor, found: dict, size: int):
    height, width = photons.shape
    xy = torch.as_tensor(found["xy"], dtype=torch.float64)
    top = (xy[:, 1].round().long() - RADIUS).clamp(0, height - size)
    left = (xy[:, 0].round().long() - RADIUS).clamp(0, width - size)
    offsets = torch.arange(size)
    windows = photons[(top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :]]
    return xy, top, left, windows


def refine_frame(photons: torch.Tensor, found: dict, iterations: int, beyond: float = 0.0) -> dict:
    """One frame's localizations (``FrameLocalizer.localize``'s dict) refined on its (H, W) photons: those whose
    nearest other localization is more than ``beyond`` px away (0: all); the others keep the network's answer."""
    from pixel_spotter.evaluation.localizations import nearest_other

    size = 2 * RADIUS + 1
    height, width = photons.shape
    count = len(found["xy"])
    if count == 0 or height < size or width < size:
        return found
    fitted = torch.as_tensor(nearest_other(found["xy"]) > beyond)
    if not fitted.any():
        return found
    xy, top, left, windows = _frame_windows(photons, found, size)
    corner = torch.stack([left, top], dim=1).to(torch.float64)
    n = torch.as_tensor(found["photons"], dtype=torch.float64).clamp(min=1.0)
    b = torch.as_tensor(found["background"], dtype=torch.float64).clamp(min=1e-2)
    s = torch.as_tensor(found["psf_sigma"], dtype=torch.float64).clamp(*SIGMA_RANGE)
    # every other localization's light in each fitted one's window: (window i, spot j) pairs, itself left out
    k = fitted.nonzero().squeeze(1)
    relative = (xy[None, :, :] - corner[k][:, None, :]).reshape(-1, 2)
    spots = expected_counts(relative, n.repeat(len(k)), 0.0, s.repeat(len(k)), size, size).view(
        len(k), count, size, size)
    spots[torch.arange(len(k)), k] = 0.0
    extra = spots.sum(dim=1)
    local = xy - corner
    init = torch.stack([local[:, 0], local[:, 1], n, b, s], dim=1)
    lower = torch.stack([(local[:, 0] - STEP_PX).clamp(min=-0.5), (local[:, 1] - STEP_PX).clamp(min=-0.5),
                         0.1 * n, torch.full_like(b, 1e-3), torch.full_like(s, SIGMA_RANGE[0])], dim=1)
    upper = torch.stack([(local[:, 0] + STEP_PX).clamp(max=size - 0.5), (local[:, 1] + STEP_PX).clamp(max=size - 0.5),
                         10 * n + 10, 10 * b + 10, torch.full_like(s, SIGMA_RANGE[1])], dim=1)
    theta = init.clone()
    theta[k] = fit_ml_free_sigma(windows[k], init[k], lower[k], upper[k], iterations=iterations, extra=extra).theta
    good = torch.isfinite(theta).all(dim=1)
    theta = torch.where(good[:, None], theta, init)
    var_x, var_y = crlb_xy(theta[k, :2], theta[k, 2], theta[k, 3], theta[k, 4], size, size, free_sigma=True)
    own = torch.as_tensor(found["sigma"], dtype=torch.float64)
    sigma = own.clone()
    sigma[k] = torch.stack([var_x, var_y], dim=1).clamp(min=1e-8).sqrt()
    sigma = torch.where(torch.isfinite(sigma), sigma, own)
    out = {name: torch.as_tensor(found[name], dtype=torch.float64).clone()
           for name in ("xy", "photons", "background", "psf_sigma")}  # the others' answers exactly as they were
    out["xy"][k] = theta[k, :2] + corner[k]
    for column, name in ((2, "photons"), (3, "background"), (4, "psf_sigma")):
        out[name][k] = theta[k, column]
    return {**found, **{name: value.numpy() for name, value in out.items()}, "sigma": sigma.numpy()}


def refine(photons: torch.Tensor, found: list[dict], iterations: int, beyond: float = 0.0) -> list[dict]:
    """Every frame's localizations refined (those with no other within ``beyond`` px): ``photons`` (B, H, W),
    ``found`` one dict per frame."""
    photons = photons.detach().to("cpu", torch.float64)
    if not math.isfinite(float(photons.sum())):
        return found
    return [refine_frame(photons[i], f, iterations, beyond) for i, f in enumerate(found)]
