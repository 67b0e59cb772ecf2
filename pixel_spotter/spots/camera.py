"""What a camera records of expected photons per pixel, and the way back from its numbers to photons.

- ``ideal``: photon counts, Poisson (the spot task's images).
- ``emccd``: photons become electrons with the quantum efficiency (Poisson), the electron-multiplying register
  multiplies them (a Gamma with shape = electrons and scale = the gain: the usual model, which gives the excess
  noise factor of 2 at high gain), the read-out adds Gaussian read noise (electrons), and the converter turns
  electrons into ADU (``e_per_adu``) above a ``baseline``, rounded and clipped to 16 bits.
- ``scmos``: photoelectrons (Poisson) plus each pixel's own Gaussian read noise (a map drawn once per camera from
  ``read_noise_seed``: sCMOS pixels differ), then ADU as above; no gain.

``to_photons`` inverts the mean: (ADU - baseline) x e_per_adu / gain / QE, which is what a localizer reads a
movie in. Its noise is not Poisson (EMCCD: twice the variance at high gain), which a model trained on what a
camera records can learn and a Poisson fit cannot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

KINDS = ("ideal", "emccd", "scmos")
ADU_MAX = 65535  # a 16-bit converter


@dataclass(frozen=True)
class Camera:
    kind: str = "ideal"
    quantum_efficiency: float = 0.9
    em_gain: float = 100.0  # emccd only
    e_per_adu: float = 1.0  # electrons per ADU (after the gain, for an EMCCD)
    baseline: float = 100.0  # ADU of a pixel that saw nothing
    read_noise_e: float = 1.0  # electrons, sigma (sCMOS: the median of the per-pixel map)
    read_noise_seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"camera kind {self.kind!r} is unknown; choose one of {', '.join(KINDS)}")
        checks = (("quantum_efficiency", 0.0, 1.0, False), ("em_gain", 1.0, 1e4, True),
                  ("e_per_adu", 1e-6, 1e6, True), ("baseline", 0.0, ADU_MAX, True),
                  ("read_noise_e", 0.0, 1e4, True))
        for key, low, high, low_ok in checks:
            value = getattr(self, key)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and (low <= value if low_ok else low < value) and value <= high
            if not ok:
                bound = f"[{low:g}, {high:g}]" if low_ok else f"({low:g}, {high:g}]"
                raise ValueError(f"camera {key} must be a number in {bound}, got {value!r}")

    @property
    def gain(self) -> float:
        return self.em_gain if self.kind == "emccd" else 1.0

    def read_noise_map(self, height: int, width: int) -> torch.Tensor:
        """(H, W) read noise sigma (electrons) per pixel: constant, except an sCMOS's own map (log-normal around
        ``read_noise_e``, fixed by ``read_noise_seed``)."""
        if self.kind != "scmos":
            return torch.full((height, width), float(self.read_noise_e), dtype=torch.float64)
        gen = torch.Generator().manual_seed(int(self.read_noise_seed))
        spread = torch.randn(height, width, generator=gen, dtype=torch.float64) * 0.3
        return self.read_noise_e * spread.exp()

    def record(self, expected: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """What the camera records of ``expected`` photons per pixel (H, W), float64: photon counts (ideal) or
        ADU (rounded, within 0 ... 65535)."""
        expected = expected.to(torch.float64)
        if not (torch.isfinite(expected).all() and (expected >= 0).all()):
            raise ValueError("expected photons per pixel must be finite numbers >= 0 (a NaN, inf or negative one "
                             "is no light a camera can record)")
        if self.kind == "ideal":
            return torch.poisson(expected, generator=gen)
        electrons = torch.poisson(self.quantum_efficiency * expected, generator=gen)
        if self.kind == "emccd":
            # Gamma(shape = n, scale = gain), drawn from gen (torch's public Gamma takes no generator); no
            # electrons in, none out
            gamma = torch._standard_gamma(electrons.clamp(min=1e-12), generator=gen)
            electrons = torch.where(electrons > 0, gamma * self.em_gain, torch.zeros_like(electrons))
        read = self.read_noise_map(*expected.shape[-2:]) * torch.randn(expected.shape, generator=gen,
                                                                      dtype=torch.float64)
        adu = (electrons + read) / self.e_per_adu + self.baseline
        return adu.round().clamp(0, ADU_MAX)

    def to_photons(self, recorded: torch.Tensor) -> torch.Tensor:
        """Expected photons back from what ``record`` gives (its mean; the noise stays the camera's)."""
        if self.kind == "ideal":
            return recorded.to(torch.float64)
        return (recorded.to(torch.float64) - self.baseline) * self.e_per_adu / self.gain / self.quantum_efficiency
