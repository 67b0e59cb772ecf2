"""When predict should doubt its answer on a photon-count image (data=spot): no spot clearly above the Poisson
noise (the answer may be a noise peak), photon counts far outside those the model was trained on (it never saw
such images), or more than one spot (it was trained on one, and may answer either or neither)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from pixel_spotter.spots.detect import matched_filter
from pixel_spotter.spots.fit import fit_ml_free_sigma, initial_guess
from pixel_spotter.spots.psf import expected_counts
from pixel_spotter.tasks.spot.rendering import SpotParams

MIN_SPOT_SNR = 5.0  # below this matched-filter signal-to-noise a spot is as likely a noise peak (data=spot)
DETECT_SIGMA = 1.5  # px: the matched filter's width, wide enough for the whole data=spot mix (spots.detect)
# "far outside" the trained range: above FAR_OUTSIDE times its maximum or below its minimum / FAR_OUTSIDE.
# Generous on purpose: the fit's photons are off by up to ~2x on dim spots, and a model does fine a bit beyond
# its range; a factor 10 beyond it is an image the model has never seen anything like.
FAR_OUTSIDE = 10.0
# Too little background is only judged when the trained minimum puts this many photons into the whole image:
# below that, an image of few or no background photons happens by chance alone.
MIN_BACKGROUND_PHOTONS = 20.0
SEPARATION = 3.0  # PSF widths (at least 1 px each) between two spots: closer, they are one blurred spot
# A second spot needs more than a first one: a noise peak taken for the first spot only hides the "no clear
# spot" warning, but one taken for a second spot warns on a good image. On the data=spot mix's 32x32 single-spot
# test images a noise peak reaches MIN_SPOT_SNR in 0.08 % of them (11 of 14,265 clear ones; at a low background,
# often on the border: Poisson noise has a longer upper tail than a Gaussian); none there nor in 5,000 of the
# tiny test run's reached 6 (the highest: 5.6).
SECOND_SPOT_SNR = MIN_SPOT_SNR + 1.0
FIT_STEPS = 20  # Levenberg-Marquardt steps of the one-spot fit: enough to converge from initial_guess


class OneSpot(NamedTuple):
    """The maximum-likelihood fit of one Gaussian spot over a flat background to a whole image."""

    x: float
    y: float
    photons: float
    background: float  # photons per pixel
    sigma: float  # px


def spot_doubts(counts: np.ndarray, trained: SpotParams | None = None) -> str | None:
    """One sentence (clauses joined by "; ") when predict should doubt its answer on a photon-count image: no
    spot clearly above the noise, counts far outside the ``trained`` ranges (skipped when they are unknown), or
    a second spot. None when the image looks like those the model was trained on."""
    image = np.asarray(counts, dtype=np.float64)
    snr = peak_snr(image)
    if snr < MIN_SPOT_SNR:  # nothing to fit: the whole image is background
        no_spot = (f"no spot clearly above the noise (matched-filter signal-to-noise {snr:.1f} < {MIN_SPOT_SNR:g}), "
                   "so the answer may be a noise peak or a guess")
        return _joined(no_spot, range_doubts(None, float(image.mean()), image.size, trained))
    spot = fit_one_spot(image, trained)
    return _joined(range_doubts(spot.photons, spot.background, image.size, trained),
                   second_spot_doubts(image, spot, trained))


def peak_snr(image: np.ndarray) -> float:
    """The largest signal-to-noise of a ``DETECT_SIGMA`` matched filter (``spots.detect``; background the
    image's median, noise its square root, at least 1 photon)."""
    score = matched_filter(torch.from_numpy(image)[None, None], DETECT_SIGMA).max()
    return float(score) / math.sqrt(max(float(np.median(image)), 1.0))


def fit_one_spot(image: np.ndarray, trained: SpotParams | None) -> OneSpot:
    """The one-spot fit, its width free (within SpotParams' own limits), started at the matched filter's
    peak with the trained mean width."""
    height, width = image.shape
    sigma = float(np.mean(trained.sigma_psf)) if trained is not None else DETECT_SIGMA
    counts = torch.from_numpy(image)[None]
    start = initial_guess(counts, sigma)
    init = torch.cat([start, start.new_tensor([[sigma]])], dim=1)
    lower = start.new_tensor([[-0.5, -0.5, 1e-3, 1e-6, 0.3]])
    upper = start.new_tensor([[width - 0.5, height - 0.5, math.inf, math.inf, 20.0]])
    theta = fit_ml_free_sigma(counts, init, lower, upper, iterations=FIT_STEPS).theta[0]
    return OneSpot(*(float(v) for v in theta))


def range_doubts(photons: float | None, background: float, pixels: int, trained: SpotParams | None) -> str | None:
    """One sentence when the spot's ``photons`` (None: no clear spot) or the ``background`` (photons per pixel)
    lie more than ``FAR_OUTSIDE`` times beyond the ``trained`` ranges; None when unknown or within."""
    if trained is None:
        return None
    seen = []
    if photons is not None and _far_outside(photons, trained.photons, low_too=True):
        seen.append(f"a spot of about {_amount(photons)} photons (trained on {_shown(trained.photons)})")
    low_too = pixels * trained.background[0] >= MIN_BACKGROUND_PHOTONS
    if _far_outside(background, trained.background, low_too):
        seen.append(f"a background of about {_amount(background)} photons per pixel (trained on "
                    f"{_shown(trained.background)})")
    if not seen:
        return None
    return (f"the photon counts lie far outside the range the model was trained on (more than {FAR_OUTSIDE:g} "
            f"times beyond it): {' and '.join(seen)}, so the answer may be wrong")


def _far_outside(value: float, trained: tuple[float, float], low_too: bool) -> bool:
    return value > FAR_OUTSIDE * trained[1] or (low_too and value < trained[0] / FAR_OUTSIDE)


def second_spot_doubts(image: np.ndarray, spot: OneSpot, trained: SpotParams | None) -> str | None:
    """One sentence when a second spot stands out (``second_spot``) with at least ``SECOND_SPOT_SNR``."""
    snr, col, row = second_spot(image, spot, trained)
    if not snr >= SECOND_SPOT_SNR:
        return None
    return (f"the image seems to hold more than one spot: besides the one near ({spot.x:.1f}, {spot.y:.1f}) another "
            f"near ({col}, {row}) with signal-to-noise {snr:.1f} >= {SECOND_SPOT_SNR:g}, but the model was trained "
            "on one spot per image, so the answer may be either spot or neither")


def second_spot(image: np.ndarray, spot: OneSpot, trained: SpotParams | None) -> tuple[float, int, int]:
    """(signal-to-noise, column, row) of the clearest second spot: the largest matched filter of what is left
    with the fitted spot taken away, each pixel in units of its own noise (Poisson around the fit, at least 1
    photon, plus the trained read noise), more than ``SEPARATION`` PSF widths from the first spot (-inf when
    no pixel is). Away from the first spot this is the signal-to-noise ``peak_snr`` would give the second one
    alone; near it, the first spot's own photon noise counts too, so a bright spot's tails are no second spot."""
    height, width = image.shape
    mu = expected_counts(torch.tensor([[spot.x, spot.y]]), spot.photons, spot.background, spot.sigma,
                         height, width)[0]
    read = trained.read_noise[1] if trained is not None else 0.0
    left = (torch.from_numpy(image) - mu) / (mu.clamp(min=1.0) + read ** 2).sqrt()
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                                torch.arange(width, dtype=torch.float64), indexing="ij")
    near = (cols - spot.x).hypot(rows - spot.y) <= SEPARATION * max(spot.sigma, 1.0)
    snr = _smoothed_snr(left, DETECT_SIGMA).masked_fill(near, -math.inf)
    best = int(snr.argmax())
    row, col = divmod(best, width)
    return float(snr.flatten()[best]), col, row


def _smoothed_snr(noise_units: torch.Tensor, sigma: float) -> torch.Tensor:
    """sum g r / sqrt(sum g^2) over the pixels that exist, g a Gaussian of ``sigma`` px cut at 2.5 sigma: the
    matched filter of ``spots.detect`` without its median subtraction (``noise_units`` is already centred on
    0; at a low background the median of Poisson counts lies well below their mean)."""
    def band(n: int) -> torch.Tensor:
        steps = torch.arange(n, dtype=torch.float64)
        offset = steps[:, None] - steps[None, :]
        return torch.exp(-0.5 * (offset / sigma) ** 2) * (offset.abs() <= max(1, math.ceil(2.5 * sigma)))

    along_y, along_x = band(noise_units.shape[0]), band(noise_units.shape[1])
    energy = (along_y ** 2).sum(dim=1)[:, None] * (along_x ** 2).sum(dim=1)[None, :]
    return along_y @ noise_units @ along_x.T / energy.sqrt()


def _amount(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 0.01 else "0"


def _shown(trained: tuple[float, float]) -> str:
    return f"{trained[0]:g}" if trained[0] == trained[1] else f"{trained[0]:g} to {trained[1]:g}"


def _joined(*clauses: str | None) -> str | None:
    return "; ".join(c for c in clauses if c) or None
