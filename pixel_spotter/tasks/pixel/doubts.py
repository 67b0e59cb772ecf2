"""When a clean-pixel image has no single clear brightest pixel, when its values lie far outside those the model
was trained on, and when an answer misses the brightest pixel it clearly has."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from pixel_spotter.data.augment import Augment

# Training images are a 0 background with one 1.0 pixel. Below a tenth of the full range between the
# brightest pixel and the background (median), no pixel stands out and any answer is a guess.
MIN_CONTRAST = 0.1
# Pixels this close to the maximum count as equally bright: below one step of a 16-bit image (1/65535,
# ~1.5e-5), so distinct 8- and 16-bit levels are never merged, while float round-off is.
TIE_TOLERANCE = 1e-6
# How many of several equally bright candidates a warning lists (the count is always given).
MAX_LISTED = 3
# Training noise is taken to reach this many of its largest sigma: one pixel in 1.7 million lies beyond.
NOISE_SIGMAS = 5.0
# "Far outside": more than this beyond the values of the training images (half the clean spot's brightness),
# so that a clean image, any 8- or 16-bit file and the noise of the training images themselves never warn.
FAR_MARGIN = 0.5
# An export, whose contract does not record the values its model was trained on: noise up to sigma 1 on a
# background of -1 to 1 (twice the noise of the widest presets, mix and sensor, and Augment's whole background
# range), so -6 to 7; generous: it catches a float image in 0..255, not a noisy one.
UNKNOWN_VALUES = (-1.0 - NOISE_SIGMAS * 1.0, 2.0 + NOISE_SIGMAS * 1.0)
# In a noisy image the brightest pixel is surely the spot only when it stands this many noise sigmas (robust
# estimate) above the next brightest: else a noise peak may outshine the spot and a right answer is no miss.
CLEAR_SIGMAS = 4.0


class TrainedValues(NamedTuple):
    """The pixel values a model's training images span: from its run's augment config (``known``), or the
    generous ``UNKNOWN_VALUES`` for an export, whose contract does not say."""

    low: float
    high: float
    known: bool = True


def trained_values(augment: Augment | None) -> TrainedValues:
    """The values the images of ``augment`` span, about: a clean image's 0 and 1 (decoys, blobs and blur stay
    within), times its largest intensity, plus its background, plus or minus NOISE_SIGMAS of its largest noise;
    then clipped to [0, 1] by its sensor stage."""
    if augment is None:
        return TrainedValues(0.0, 1.0)
    noise = NOISE_SIGMAS * augment.noise_std[1]
    low = min(0.0, augment.background[0]) - noise
    high = max(1.0, augment.intensity[1]) + max(0.0, augment.background[1]) + noise
    if augment.sensor_clip:
        low, high = max(low, 0.0), min(high, 1.0)
    return TrainedValues(low, high)


def value_doubts(image: np.ndarray, trained: TrainedValues) -> str | None:
    """One sentence when ``image``'s values lie more than FAR_MARGIN beyond the ``trained`` ones, else None."""
    low, high = float(image.min()), float(image.max())
    if trained.low - FAR_MARGIN <= low and high <= trained.high + FAR_MARGIN:
        return None
    if trained.known:
        seen = "the range of the images the model was trained on"
    else:
        seen = ("a generous bound, since an export's contract does not record the values its model was trained "
                "on (predict on the run folder checks against the run's own)")
    hint = ""
    if low >= 0 and 1 < high <= 65535:
        bits, top = (8, 255) if high <= 255 else (16, 65535)
        hint = f" (if it holds {bits}-bit values 0..{top}, divide it by {top})"
    return (f"its values run from {low:.3g} to {high:.3g}, more than {FAR_MARGIN:g} beyond {trained.low:.3g} to "
            f"{trained.high:.3g}, {seen}, so the answer may be wrong{hint}")


def _positions(mask: np.ndarray) -> list[tuple[int, int]]:
    """(x, y) of the true pixels, row by row."""
    return [(int(col), int(row)) for row, col in np.argwhere(mask)]


def doubts(image: np.ndarray) -> str | None:
    """One sentence when ``image`` has no single clear brightest pixel, else None."""
    peak, background = float(image.max()), float(np.median(image))
    if peak - background < MIN_CONTRAST:
        return (f"no pixel is clearly brighter than the rest (max {peak:.3f}, background {background:.3f}), "
                "so the answer is a guess")
    ties = _positions(image >= peak - TIE_TOLERANCE)
    if len(ties) > 1:
        listed = ", ".join(f"({x}, {y})" for x, y in ties[:MAX_LISTED])
        more = ", ..." if len(ties) > MAX_LISTED else ""
        return (f"{len(ties)} pixels are equally bright ({peak:.3f}) at {listed}{more}, so there is no single "
                "answer")
    return None


def noise_sigma(image: np.ndarray) -> float:
    """The image's noise sigma, robustly: 1.4826 x the median absolute deviation (0 for a clean image, whose
    pixels are mostly one background value)."""
    return 1.4826 * float(np.median(np.abs(image - np.median(image))))


def missed_brightest(answer: tuple[float, float], image: np.ndarray) -> str | None:
    """One sentence when ``image`` has a clear brightest pixel (above the next brightest by more than its noise
    explains) and the rounded ``answer`` is not it."""
    if doubts(image) is not None:
        return None  # a doubtful image is not judged: its warning says so already
    peak, second = np.partition(image.ravel(), -2)[-2:][::-1]
    if peak - second <= CLEAR_SIGMAS * noise_sigma(image):
        return None  # the brightest pixel may be noise: nothing to hold the answer against
    row, col = np.unravel_index(int(np.argmax(image)), image.shape)
    rounded = tuple(math.floor(a + 0.5) for a in answer)
    if rounded != (int(col), int(row)):
        return (f"the model's answer ({answer[0]:.3f}, {answer[1]:.3f}) is not the brightest pixel "
                f"({int(col)}, {int(row)})")
    return None
