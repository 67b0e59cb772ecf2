"""How sure a benchmark's numbers are: percentile bootstrap intervals of a ``localizations.Tally``'s efficiency and
RMSE over the CRLB, resampling its frames with replacement (frames are the independent draws; the localizations
of one frame are not). The RMSE over the bound is a ratio of sums that a few badly placed pairs dominate (two
emitters closer than a PSF width, found as one), so on 100 frames it moves by a tenth from one set of frames to
the next: its interval says how far.
"""

from __future__ import annotations

import math

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
CHUNK = 200  # resamples at a time: (CHUNK, frames) counts in memory


def frame_bootstrap(tally, resamples: int = RESAMPLES, level: float = LEVEL,
                    seed: int = 0) -> dict[str, tuple[float, float]]:
    """{"efficiency": (low, high), "rmse_over_bound": (low, high)}: the central ``level`` interval of each over
    ``resamples`` resamplings of the tally's frames (a number no resampling defines is left out; nothing
    without frames)."""
    sums = np.asarray(tally.frame_sums, dtype=np.float64).reshape(-1, 5)
    frames = len(sums)
    if not frames:
        return {}
    rng = np.random.default_rng(seed)
    totals = []
    for start in range(0, resamples, CHUNK):
        counts = rng.multinomial(frames, np.full(frames, 1.0 / frames), size=min(CHUNK, resamples - start))
        totals.append(counts @ sums)
    tp, fp, fn, squared, bound = np.concatenate(totals).T
    with np.errstate(divide="ignore", invalid="ignore"):
        jaccard = tp / (tp + fp + fn)
        rmse_nm = np.where(tp > 0, np.sqrt(squared / tp), tally.tolerance_px) * tally.pixel_size_nm
        found_or_missed = tp + fp + fn > 0  # a resample with nothing to find and nothing found scores 100
        values = {"efficiency": np.where(found_or_missed, 100.0 - np.hypot(100.0 * (1.0 - jaccard), rmse_nm), 100.0),
                  "rmse_over_bound": np.where((tp > 0) & (bound > 0), np.sqrt(squared / bound), np.nan)}
    tail = 100.0 * (1.0 - level) / 2
    out = {}
    for name, value in values.items():
        value = value[np.isfinite(value)]
        if len(value):
            low, high = np.percentile(value, [tail, 100.0 - tail])
            out[name] = (float(low), float(high))
    return {k: v for k, v in out.items() if all(math.isfinite(x) for x in v)}
