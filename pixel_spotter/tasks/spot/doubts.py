"""When a photon-count image holds no spot clearly above its Poisson noise (its answer may be a noise peak)."""

from __future__ import annotations

import math

import numpy as np

MIN_SPOT_SNR = 5.0  # below this matched-filter signal-to-noise a spot is as likely a noise peak (data=spot)


def spot_doubts(counts: np.ndarray) -> str | None:
    """One sentence when a photon-count image (data=spot) has no spot clearly above its Poisson noise: the
    largest signal-to-noise of a 1.5 px matched filter (``spots.detect``; background the image's median, noise
    its square root, at least 1 photon) is below ``MIN_SPOT_SNR``, where detections are often noise peaks."""
    import torch

    from pixel_spotter.spots.detect import matched_filter

    image = torch.from_numpy(np.asarray(counts, dtype=np.float64))[None, None]
    background = float(np.median(counts))
    snr = float(matched_filter(image, 1.5).max()) / math.sqrt(max(background, 1.0))
    if snr < MIN_SPOT_SNR:
        return (f"no spot clearly above the noise (matched-filter signal-to-noise {snr:.1f} < {MIN_SPOT_SNR:g}), "
                "so the answer may be a noise peak or a guess")
    return None
