"""When a clean-pixel image has no single clear brightest pixel, and when an answer misses the one it has."""

from __future__ import annotations

import math

import numpy as np

# Training images are a 0 background with one 1.0 pixel. Below a tenth of the full range between the
# brightest pixel and the background (median), no pixel stands out and any answer is a guess.
MIN_CONTRAST = 0.1
# Pixels this close to the maximum count as equally bright: below one step of a 16-bit image (1/65535,
# ~1.5e-5), so distinct 8- and 16-bit levels are never merged, while float round-off is.
TIE_TOLERANCE = 1e-6
# How many of several equally bright candidates a warning lists (the count is always given).
MAX_LISTED = 3


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


def missed_brightest(answer: tuple[float, float], image: np.ndarray) -> str | None:
    """One sentence when ``image`` has a clear brightest pixel and the rounded ``answer`` is not it."""
    if doubts(image) is not None:
        return None  # a doubtful image is not judged: its warning says so already
    row, col = np.unravel_index(int(np.argmax(image)), image.shape)
    rounded = tuple(math.floor(a + 0.5) for a in answer)
    if rounded != (int(col), int(row)):
        return (f"the model's answer ({answer[0]:.3f}, {answer[1]:.3f}) is not the brightest pixel "
                f"({int(col)}, {int(row)})")
    return None
