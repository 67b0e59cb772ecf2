"""Frames with many emitters: how many, where and how bright, and the expected photons per pixel they make.

The physics of one spot (a pixelated Gaussian, ``spots/psf.py``) summed over every emitter of a frame. A frame's
emitter count is Poisson with mean density x the frame's area (``EmitterRanges.density_per_um2``, the area from
``pixel_size_nm``), positions uniform over the frame (pixel coordinates: it spans -0.5 ... W - 0.5), each
emitter's photons and PSF sigma uniform in their ranges, one background level per frame. What a camera records of
the expected counts is ``spots/camera.py``. Every draw comes from the generator passed in, so a frame is a
function of its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pixel_spotter.spots.psf import expected_counts, summed_counts

# spots x pixels up to which a frame's spots are summed one by one (2**24 float64: 128 MiB), as every training and
# benchmark frame is (so their numbers stay bit for bit what they were); beyond, summed_counts' matrix product
DIRECT_SUM_MAX = 2**24
# unknowns x pixels up to which a frame's joint bound is computed (2**25 float64: 256 MiB), and 2**6 times that
# multiply-adds for its Fisher information (a few seconds)
JOINT_BOUND_MAX = 2**25
MAX_EXPECTED_EMITTERS = 10_000  # per frame: beyond it a config's density is a typo, not a microscope


def _range(name: str, value, low: float) -> tuple[float, float]:
    pair = tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value), float(value))
    if not (len(pair) == 2 and all(math.isfinite(v) for v in pair) and low <= pair[0] <= pair[1]):
        raise ValueError(f"{name} must be [low, high] with {low:g} <= low <= high, got {value!r}")
    return pair


@dataclass(frozen=True)
class EmitterRanges:
    """What a frame's emitters are drawn from."""

    density_per_um2: float = 0.5
    photons: tuple[float, float] = (500.0, 5000.0)
    background: tuple[float, float] = (10.0, 100.0)  # expected photons per pixel
    sigma_psf: tuple[float, float] = (1.0, 1.6)  # px
    pixel_size_nm: float = 100.0

    def __post_init__(self):
        if not (math.isfinite(self.density_per_um2) and self.density_per_um2 >= 0):
            raise ValueError(f"the emitter density must be a number >= 0 per um^2, got {self.density_per_um2!r}")
        if not (math.isfinite(self.pixel_size_nm) and self.pixel_size_nm > 0):
            raise ValueError(f"the pixel size must be a number > 0 nm, got {self.pixel_size_nm!r}")
        object.__setattr__(self, "photons", _range("photons", self.photons, 0.0))
        object.__setattr__(self, "background", _range("background", self.background, 0.0))
        object.__setattr__(self, "sigma_psf", _range("sigma_psf", self.sigma_psf, 0.05))

    def mean_count(self, height: int, width: int) -> float:
        """The expected number of emitters in a height x width frame."""
        return self.density_per_um2 * height * width * (self.pixel_size_nm / 1000.0) ** 2


@dataclass(frozen=True)
class Frame:
    """One frame's emitters (K of them) and background."""

    xy: torch.Tensor  # (K, 2) float64, pixel (x, y)
    photons: torch.Tensor  # (K,)
    sigma_psf: torch.Tensor  # (K,)
    background: float

    def bounds(self, height: int, width: int) -> torch.Tensor:
        """(K,) var_x + var_y (px^2) of each emitter's Cramér–Rao bound as if it were alone in the frame (position,
        photons and background unknown; ``crlb.crlb_xy``): a lower bound for a crowded frame."""
        if not len(self.xy):
            return torch.zeros(0, dtype=torch.float64)
        from pixel_spotter.spots.crlb import crlb_xy

        var_x, var_y = crlb_xy(self.xy, self.photons, self.background, self.sigma_psf, height, width)
        return var_x + var_y

    def joint_bounds(self, height: int, width: int) -> torch.Tensor:
        """(K,) var_x + var_y (px^2) of each emitter's Cramér–Rao bound with every emitter of the frame unknown at
        once (x, y and photons of each, the frame's one background; PSF widths known, as in ``bounds``): what
        overlapping spots cost any unbiased estimator, so never below ``bounds``. The frame's Fisher information is
        (3K + 1)^2: for a 64x64 frame of 160 emitters, a 481 x 4096 Jacobian. NaN for a frame too large for that
        (``JOINT_BOUND_MAX``): a score then leaves the ratio out."""
        count = len(self.xy)
        if not count:
            return torch.zeros(0, dtype=torch.float64)
        unknowns, pixels = 3 * count + 1, height * width
        if unknowns * pixels > JOINT_BOUND_MAX or unknowns ** 2 * pixels > 2**6 * JOINT_BOUND_MAX:
            return torch.full((count,), math.nan, dtype=torch.float64)
        from pixel_spotter.spots.crlb import joint_crlb_xy

        var_x, var_y = joint_crlb_xy(self.xy, self.photons, self.background, self.sigma_psf, height, width)
        return var_x + var_y

    def expected(self, height: int, width: int) -> torch.Tensor:
        """(H, W) float64 expected photons per pixel: every emitter's spot plus the background."""
        mu = torch.full((height, width), float(self.background), dtype=torch.float64)
        if len(self.xy) * height * width <= DIRECT_SUM_MAX:
            mu += expected_counts(self.xy, self.photons, 0.0, self.sigma_psf, height, width).sum(dim=0)
        elif len(self.xy):  # a large crowded frame: the same sum without a (K, H, W) array (to rounding)
            mu += summed_counts(self.xy, self.photons, self.sigma_psf, height, width)
        return mu


def _uniform(gen: torch.Generator, n: int, pair: tuple[float, float]) -> torch.Tensor:
    low, high = pair
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


def too_crowded(ranges: EmitterRanges, height: int, width: int) -> str | None:
    """Why frames of ``ranges`` at this size cannot be drawn (more emitters than ``MAX_EXPECTED_EMITTERS``), or None.
    Commands check it before they render, so that the reason is their one line."""
    mean = ranges.mean_count(height, width)
    if mean <= MAX_EXPECTED_EMITTERS:
        return None
    return (f"{ranges.density_per_um2:g} emitters per um^2 is {mean:,.0f} per {height}x{width} frame, more than "
            f"{MAX_EXPECTED_EMITTERS:,}; lower the density or the frame size")


def draw_frame(gen: torch.Generator, height: int, width: int, ranges: EmitterRanges) -> Frame:
    """A frame's emitters: a Poisson count, then per emitter a position, photons and sigma (in that order, from
    ``gen``), then the frame's background."""
    why = too_crowded(ranges, height, width)
    if why:
        raise ValueError(why)
    mean = ranges.mean_count(height, width)
    count = int(torch.poisson(torch.tensor([mean], dtype=torch.float64), generator=gen).item())
    xy = torch.rand(count, 2, generator=gen, dtype=torch.float64) * torch.tensor([width, height]) - 0.5
    photons = _uniform(gen, count, ranges.photons)
    sigma = _uniform(gen, count, ranges.sigma_psf)
    background = float(_uniform(gen, 1, ranges.background)[0])
    return Frame(xy=xy, photons=photons, sigma_psf=sigma, background=background)
