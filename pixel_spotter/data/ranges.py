"""Checked [lo, hi] config ranges, the one way every per-image range is read (corruptions, spot parameters)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pixel_spotter.errors import ConfigError


def config_range(key: str, value, low: float, high: float | None, integer: bool = False) -> tuple[float, float]:
    """A checked [lo, hi] config range (a single number means exactly that value); ``key`` is the user's name
    for it (``data.augment.noise_std``). Shared by every per-image range (also tasks.spot.rendering.SpotParams)."""
    example = f"{key}=[{low:g},{low + 0.5 if high is None else high:g}]"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value, value]
    ok = (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    if ok:
        lo, hi = (float(v) for v in value)
        ok = low <= lo <= hi and (high is None or hi <= high) and (not integer or (lo.is_integer() and hi.is_integer()))
    if not ok:
        bounds = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        kind = "integers" if integer else "numbers"
        raise ConfigError(f"{key} must be a range [lo, hi] of {kind} {bounds} with lo <= hi, "
                          f"got {value!r}; e.g. {example}")
    return lo, hi
