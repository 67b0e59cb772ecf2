"""Refining a frame model's localizations by maximum likelihood (``model.refine``): the network finds the emitters
and guesses each one's position, photons, background and PSF width; then each is fitted in its own window of the
frame's photons (``spots.group_fit.fit_ml_group``: Poisson likelihood, PSF width free) together with its close
neighbours (up to ``PARTNERS`` localizations within ``PARTNER_PX``: overlapping spots are fitted at once, or each
takes the other's light for its own), the light of every other localization of the frame, as the network guessed
it, held fixed in the window's model (explained, not fitted). Only the window's own localization keeps its fit:
its neighbours get their own windows. A fit that moved a position more than ``GATE_SIGMAS`` of the network's own
sigma is not kept. An isolated emitter then reaches the Cramér–Rao bound, as the single-spot ML fit does; the
network alone answers offsets a few times the bound after the minutes of CPU training it gets here.

Each PSF width is fitted under a Gaussian prior centred at the network's guess, as wide as the network's PSF
widths are wrong (``width_prior``: their RMS error on validation frames, ``FrameLocalizer.psf_width_error``): two
overlapping spots' widths and their separation trade off in the likelihood alone, each spot widening to take the
other's light, and the network's widths are a better guess than that (0.05-0.08 px RMS against a spread of 0.17
px in the emitter benchmark's frames).

The uncertainty each refined localization carries is its Cramér–Rao standard deviation at the fitted values, of
the joint fit (PSF widths unknown, the neighbours fitted with it unknown too): larger where spots overlap.

Every window of every frame of a batch is one fit (one batch of tensors), not a loop over frames.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pixel_spotter.spots.group_fit import fit_ml_group
from pixel_spotter.spots.psf import expected_counts, summed_counts_per_frame

RADIUS = 5  # the window: 11 x 11 pixels, three PSF widths of the widest trained PSF either way
STEP_PX = 0.5  # how far the fit may move a position from the network's guess
SIGMA_RANGE = (0.5, 3.0)  # px
# neighbours this close (three to five PSF widths) are fitted with a localization, not held fixed: at 5 px rather
# than 4 the refined model scored 0.1-0.8 points of E more at every density of the emitter benchmark (other frames
# than its tables': --seed 1, 300 a density), at 2-7 % fewer frames/s up to 2/um^2 and 21 % fewer at 4/um^2
PARTNER_PX = 5.0
PARTNERS = 3  # at most this many of them, the nearest
# a fit that moved a position more than this many of the network's own (calibrated) sigma, in x or y, is not kept:
# the network's answer stands. Mostly a neighbour the network missed, whose light the fit took: at 4 emitters/um^2
# the refinement cost 2.3 points of efficiency without it, 0.6 with it, and helped sparser frames about as much
GATE_SIGMAS = 2.0
CHUNK = 4096  # windows per fit: bounds the memory of a frame of many thousands of localizations


def _gather(found: list[dict]):
    """Every frame's localizations in one set of (K,) / (K, 2) float64 tensors, and each one's frame."""
    frame = np.concatenate([np.full(len(f["xy"]), i) for i, f in enumerate(found)]).astype(np.int64)
    cat = lambda name, shape: torch.as_tensor(np.concatenate(  # noqa: E731
        [np.asarray(f[name], dtype=np.float64).reshape(shape) for f in found]))
    return (torch.as_tensor(frame), cat("xy", (-1, 2)), cat("photons", -1).clamp(min=1.0),
            cat("background", -1).clamp(min=1e-2), cat("psf_sigma", -1).clamp(*SIGMA_RANGE))


def _groups(found: list[dict], beyond: float):
    """(members (K, 1 + PARTNERS) global indices, -1 where none; fitted (K,) bool): each localization first, then its
    nearest others of its frame within ``PARTNER_PX``; fitted: those whose nearest other is beyond ``beyond`` px."""
    from scipy.spatial import cKDTree

    members, fitted, start = [], [], 0
    for f in found:
        xy = np.asarray(f["xy"], dtype=np.float64).reshape(-1, 2)
        count = len(xy)
        if count:
            k = min(max(PARTNERS, 1) + 1, count)  # the nearest other's distance is needed for ``beyond`` too
            distance, index = cKDTree(xy).query(xy, k=k)
            distance, index = distance.reshape(count, k), index.reshape(count, k)
            near = distance[:, 1] if k > 1 else np.full(count, np.inf)
            index = np.where(distance <= PARTNER_PX, index + start, -1)[:, :PARTNERS + 1]
            index[:, 0] = np.arange(count) + start  # itself first (a duplicate position still comes first)
            pad = np.full((count, PARTNERS + 1 - index.shape[1]), -1)
            members.append(np.concatenate([index, pad], axis=1))
            fitted.append(near > beyond if beyond > 0 else np.ones(count, dtype=bool))  # 0: every one
        start += count
    if not members:
        return torch.zeros(0, PARTNERS + 1, dtype=torch.long), torch.zeros(0, dtype=torch.bool)
    return torch.as_tensor(np.concatenate(members)), torch.as_tensor(np.concatenate(fitted))


def _fit(photons, light, frame, xy, n, b, s, members, k, iterations, width_prior):
    """The joint fit of windows ``k``: (xy (k, 2) frame px, photons, background, psf sigma, sigma (k, 2))."""
    size = 2 * RADIUS + 1
    height, width = photons.shape[1:]
    f = frame[k]
    top = (xy[k, 1].round().long() - RADIUS).clamp(0, height - size)
    left = (xy[k, 0].round().long() - RADIUS).clamp(0, width - size)
    offsets = torch.arange(size)
    rows, cols = (top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :]
    windows, others = photons[f[:, None, None], rows, cols], light[f[:, None, None], rows, cols]
    corner = torch.stack([left, top], dim=1).to(torch.float64)
    group = members[k][:, :int((members[k] >= 0).sum(dim=1).max())]
    active = group >= 0
    g = group.clamp(min=0)
    local = xy[g] - corner[:, None]
    guess = torch.stack([local[..., 0], local[..., 1], n[g], s[g]], dim=2)
    # the members' light as the network guessed it leaves the window's fixed light: what they are fitted to
    own = expected_counts(local.reshape(-1, 2), n[g].reshape(-1), 0.0, s[g].reshape(-1), size, size)
    own = (own.view(len(k), group.shape[1], size, size) * active[:, :, None, None]).sum(dim=1)
    extra = (others - own).clamp(min=0.0)
    lower = torch.stack([(local[..., 0] - STEP_PX).clamp(min=-0.5), (local[..., 1] - STEP_PX).clamp(min=-0.5),
                         0.1 * n[g], torch.full_like(s[g], SIGMA_RANGE[0])], dim=2)
    upper = torch.stack([(local[..., 0] + STEP_PX).clamp(max=size - 0.5),
                         (local[..., 1] + STEP_PX).clamp(max=size - 0.5), 10 * n[g] + 10,
                         torch.full_like(s[g], SIGMA_RANGE[1])], dim=2)
    fit = fit_ml_group(windows, guess, b[k], lower, upper, active, iterations=iterations, extra=extra,
                       width_prior=width_prior)
    spot = fit.spots[:, 0]
    sigma = torch.stack([fit.covariance[:, 0, 0], fit.covariance[:, 1, 1]], dim=1).clamp(min=1e-8).sqrt()
    return spot[:, :2] + corner, spot[:, 2], fit.background, spot[:, 3], sigma


def refine(photons: torch.Tensor, found: list[dict], iterations: int, beyond: float = 0.0,
           width_prior: float = 0.0) -> list[dict]:
    """Every frame's localizations refined (those with no other within ``beyond`` px; the others keep the
    network's answer): ``photons`` (B, H, W), ``found`` one dict per frame (``FrameLocalizer.localize``'s);
    ``width_prior`` (px): the standard deviation of the prior on each PSF width around the network's (0: none)."""
    photons = photons.detach().to("cpu", torch.float64)
    size = 2 * RADIUS + 1
    as_they_were = [{**f, "refined": np.zeros(len(f["xy"]), dtype=bool)} for f in found]
    if photons.shape[1] < size or photons.shape[2] < size or not math.isfinite(float(photons.sum())):
        return as_they_were
    if not sum(len(f["xy"]) for f in found):
        return as_they_were
    frame, xy, n, b, s = _gather(found)
    members, fitted = _groups(found, beyond)
    if not fitted.any():
        return as_they_were
    height, width = photons.shape[1:]
    light = summed_counts_per_frame(xy, n, s, frame, len(found), height, width)  # as guessed, per frame
    out = {"xy": xy.clone(), "photons": n.clone(), "background": b.clone(), "psf_sigma": s.clone()}
    sigma = torch.as_tensor(np.concatenate([np.asarray(f["sigma"], dtype=np.float64).reshape(-1, 2)
                                            for f in found]))
    network_sigma = sigma.clone()
    refined = torch.zeros(len(xy), dtype=torch.bool)  # whose sigma is its fit's
    size_of = (members >= 0).sum(dim=1)  # the partners come nearest first, the -1s last: fit each group size apart
    chunks = [k.split(CHUNK) for g in range(1, PARTNERS + 2) for k in [(fitted & (size_of == g)).nonzero()[:, 0]]]
    for k in (c for group in chunks for c in group if len(c)):
        new_xy, new_n, new_b, new_s, new_sigma = _fit(photons, light, frame, xy, n, b, s, members, k, iterations,
                                                      width_prior)
        good = torch.isfinite(torch.cat([new_xy, new_n[:, None], new_b[:, None], new_s[:, None]], 1)).all(1)
        good &= ((new_xy - xy[k]).abs() <= GATE_SIGMAS * network_sigma[k]).all(dim=1)  # NaN sigma: not kept
        k, fine = k[good], torch.isfinite(new_sigma[good]).all(dim=1)
        out["xy"][k], out["photons"][k] = new_xy[good], new_n[good]
        out["background"][k], out["psf_sigma"][k] = new_b[good], new_s[good]
        sigma[k[fine]] = new_sigma[good][fine]
        refined[k[fine]] = True
    result, start = [], 0
    for f in found:
        end = start + len(f["xy"])
        result.append({**f, **{name: value[start:end].numpy() for name, value in out.items()},
                       "sigma": sigma[start:end].numpy(), "refined": refined[start:end].numpy()})
        start = end
    return result
