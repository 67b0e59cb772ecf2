"""The classical pipeline for many emitters per frame, the reference a learned model has to beat: find
candidates as local maxima of the matched filter above a threshold, then fit each one's maximum-likelihood
position in a window around it (``fit.fit_ml``, the single-spot Poisson fit with the PSF width known).

A window holds whatever else is near: in a crowded frame a neighbour's light biases the fit, and two emitters
closer than about the PSF width make one maximum. That is the weakness the learned model is meant to show up;
the threshold is the pipeline's one setting, chosen on validation frames (``tune_threshold``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixel_spotter.spots.detect import lower_median, matched_filter, matched_photons
from pixel_spotter.spots.fit import MIN_BACKGROUND, MIN_PHOTONS, fit_ml

STRAY_PX = 2.0  # a fit that ends further than this from its candidate fitted a neighbour: dropped


@dataclass(frozen=True)
class Localizations:
    """One frame's localizations, in pixel coordinates."""

    xy: torch.Tensor  # (K, 2) float64 (x, y)
    photons: torch.Tensor  # (K,)
    background: torch.Tensor  # (K,) photons per pixel, the window's
    snr: torch.Tensor  # (K,) the matched filter's value at the candidate


def window_radius(sigma_psf: float) -> int:
    return max(2, math.ceil(3 * sigma_psf))


def candidates(frames: torch.Tensor, sigma_psf: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, 3) long (frame, row, column) of every local maximum (3x3) of the matched filter's signal-to-noise
    value above ``threshold``, and (K,) that value. The filter's noise is about sqrt(b) under a background of b
    photons per pixel (Poisson), so its map is divided by the square root of each frame's median: a threshold
    then means the same at any background."""
    frames32 = frames[:, None].float()
    noise = lower_median(frames32.flatten(1)).clamp(min=1.0).sqrt()[:, None, None]
    snr = matched_filter(frames32, sigma_psf)[:, 0] / noise
    peaks = (snr == F.max_pool2d(snr[:, None], 3, stride=1, padding=1)[:, 0]) & (snr > threshold)
    where = peaks.nonzero()
    return where, snr[peaks]


def localize(frames: torch.Tensor, sigma_psf: float, threshold: float) -> list[Localizations]:
    """Every frame's localizations: ``frames`` (B, H, W) in photons (``camera.Camera.to_photons`` of what a
    camera recorded), ``sigma_psf`` px (the PSF width the filter and the fit assume), ``threshold`` on the
    matched filter's signal-to-noise value."""
    frames = torch.as_tensor(frames, dtype=torch.float64)
    if frames.dim() != 3:
        raise ValueError(f"frames must be (frames, height, width), got shape {tuple(frames.shape)}")
    if not torch.isfinite(frames).all():
        raise ValueError("frames hold a value that is not a finite number (NaN or inf); a frame must be photons")
    batch, height, width = frames.shape
    radius = window_radius(sigma_psf)
    size = 2 * radius + 1
    if height < size or width < size:
        raise ValueError(f"frames of {height}x{width} px are smaller than the fit's {size}x{size} window "
                         f"(sigma_psf {sigma_psf:g} px)")
    where, snr = candidates(frames, sigma_psf, threshold)
    empty = Localizations(torch.zeros(0, 2, dtype=torch.float64), *(torch.zeros(0, dtype=torch.float64),) * 3)
    if not len(where):
        return [empty] * batch
    f, r, c = where.unbind(dim=1)
    top = (r - radius).clamp(0, height - size)  # windows shifted to stay inside the frame
    left = (c - radius).clamp(0, width - size)
    offsets = torch.arange(size)
    windows = frames[f[:, None, None], (top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :]]
    border = torch.cat([windows[:, 0], windows[:, -1], windows[:, 1:-1, 0], windows[:, 1:-1, -1]], dim=1)
    background = border.median(dim=1).values.clamp(min=MIN_BACKGROUND)
    row, col = (r - top).to(torch.float64), (c - left).to(torch.float64)
    photons = matched_photons(windows, sigma_psf, row, col, background).clamp(min=MIN_PHOTONS)
    init = torch.stack([col, row, photons, background], dim=1)
    fit = fit_ml(windows, sigma_psf, init=init)
    xy = fit.xy + torch.stack([left, top], dim=1).to(torch.float64)
    keep = (xy - torch.stack([c, r], dim=1).to(torch.float64)).norm(dim=1) <= STRAY_PX
    out = []
    for frame in range(batch):
        mine = keep & (f == frame)
        out.append(Localizations(xy[mine], fit.photons[mine], fit.background[mine], snr[mine].to(torch.float64)))
    return out


def tune_threshold(frames: torch.Tensor, truths: list, sigma_psf: float, thresholds, pixel_size_nm: float = 100.0,
                   tolerance_nm: float = 250.0) -> tuple[float, float]:
    """The threshold (of ``thresholds``) whose localizations of validation ``frames`` have the highest
    efficiency against ``truths`` (per frame, (K, 2) true pixel positions), and that efficiency."""
    from pixel_spotter.evaluation.localizations import score

    best = None
    for threshold in thresholds:
        found = [loc.xy.numpy() for loc in localize(frames, sigma_psf, float(threshold))]
        e = score(found, [torch.as_tensor(t).numpy() for t in truths], tolerance_nm, pixel_size_nm).efficiency
        if math.isfinite(e) and (best is None or e > best[1]):
            best = (float(threshold), e)
    if best is None:
        raise ValueError("no threshold found any emitter in the validation frames; try lower thresholds")
    return best
