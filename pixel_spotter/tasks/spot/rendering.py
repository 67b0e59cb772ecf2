"""``data=spot``: sub-pixel Gaussian spots in photon counts, rendered on the fly like ``tasks/pixel/rendering.py``.

Each image starts from an integer pixel of its split (``PixelDataModule``'s honest splits: a test spot lies in a
pixel never used in training) and its own generator, seeded by ``sample_seed`` (so the image depends on its
seed alone), draws in a fixed order: the sub-pixel offset (x, y) uniform in [-0.5, 0.5), then the photons N,
the background b (photons/pixel) and sigma_psf (px) from their ``SpotParams`` ranges, then the Poisson shot
noise and the Gaussian read noise. The expected counts are the Gaussian integrated over each pixel exactly
(``spots.psf``), so the Cramér–Rao bound of ``spots.crlb`` is the bound of these very images.

Network input: ``counts / input_scale`` (a fixed constant, 100 photons by default). No per-image
normalization, so nothing in an image is lost (the reference estimators get the same counts back, times
``input_scale``); the network never sees N, b or sigma_psf, only pixels, and the models meant for this task
(``models/spot_patch.py``) normalize their patch themselves. Targets are the continuous positions, normalized
as everywhere: x / (W - 1), y / (H - 1); a spot in a border pixel can lie up to half a pixel outside [0, W - 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from pixel_spotter.data.ranges import config_range
from pixel_spotter.errors import ConfigError
from pixel_spotter.spots.psf import expected_counts

_ORDER = ("photons", "background", "sigma_psf", "read_noise")  # draw order after the offset: fixed


@dataclass(frozen=True)
class SpotParams:
    """Per-image ranges of the spot model; each image draws each value from its [lo, hi] range, uniformly, or
    log-uniformly for photons and background when ``log_uniform`` (a 100-5000 photon range then holds as many
    dim spots as bright ones)."""

    photons: tuple[float, float] = (1000.0, 1000.0)  # N: the spot's expected photons (integral over the plane)
    background: tuple[float, float] = (10.0, 10.0)  # b: expected photons per pixel
    sigma_psf: tuple[float, float] = (1.0, 1.0)  # the Gaussian PSF's sigma (px)
    read_noise: tuple[float, float] = (0.0, 0.0)  # Gaussian read noise sd (photons); 0: Poisson only
    log_uniform: bool = True
    input_scale: float = 100.0  # network input = counts / input_scale

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("photons", config_range("data.spot.photons", self.photons, 1.0, 1e7))
        # b > 0: the model's mu must be positive
        set_("background", config_range("data.spot.background", self.background, 0.01, 1e5))
        set_("sigma_psf", config_range("data.spot.sigma_psf", self.sigma_psf, 0.3, 20.0))
        set_("read_noise", config_range("data.spot.read_noise", self.read_noise, 0.0, 1e4))
        if not isinstance(self.log_uniform, bool):
            raise ConfigError(f"data.spot.log_uniform must be true or false, got {self.log_uniform!r}")
        if not (isinstance(self.input_scale, (int, float)) and not isinstance(self.input_scale, bool)
                and math.isfinite(self.input_scale) and self.input_scale > 0):
            raise ConfigError(f"data.spot.input_scale must be a number > 0, got {self.input_scale!r}; "
                              "e.g. data.spot.input_scale=100")

    def fixed(self, **values: float) -> SpotParams:
        """The same model with some parameters fixed, e.g. ``fixed(photons=200)`` (per-N evaluation)."""
        return replace(self, **{k: (float(v), float(v)) for k, v in values.items()})


class SpotTruth(NamedTuple):
    """Each image's true parameters, float64 (B, 2) and (B,) on the images' device: what the CRLB needs."""

    xy: torch.Tensor  # px, x = column, y = row
    photons: torch.Tensor
    background: torch.Tensor
    sigma_psf: torch.Tensor
    read_noise: torch.Tensor


def _draw(lo: float, hi: float, u: float, log: bool) -> float:
    if log and lo > 0:
        return math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u)
    return lo + (hi - lo) * u


class SpotSynthesizer:
    """Renders (B, 2) integer pixel positions + B image seeds into (images (B, 1, H, W) float32 = counts /
    input_scale, ``SpotTruth``). Random numbers come from each image's own CPU generator (same images on any
    device, in any batch); the noisy counts are computed on the CPU and moved to ``xy``'s device."""

    def __init__(self, height: int, width: int, params: SpotParams | None = None):
        self.height, self.width = int(height), int(width)
        self.params = params or SpotParams()

    def truth(self, xy: torch.Tensor, seeds: Sequence[int]) -> tuple[SpotTruth, list[torch.Generator]]:
        """Every image's parameters and its generator (positioned after those draws, for the noise)."""
        p, rows, gens = self.params, [], []
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            u = torch.rand(2 + len(_ORDER), generator=gen, dtype=torch.float64).tolist()
            values = [_draw(*getattr(p, k), u[2 + i], p.log_uniform and k in ("photons", "background"))
                      for i, k in enumerate(_ORDER)]
            rows.append([u[0] - 0.5, u[1] - 0.5, *values])
            gens.append(gen)
        table = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), 2 + len(_ORDER))
        sub = xy.detach().to("cpu", torch.float64) + table[:, :2]
        return SpotTruth(sub, *table[:, 2:].unbind(dim=1)), gens

    def counts(self, xy: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, SpotTruth]:
        """Noisy photon counts (B, H, W) float64 and the truth, both on ``xy``'s device."""
        truth, gens = self.truth(xy, seeds)
        mu = expected_counts(truth.xy, truth.photons, truth.background, truth.sigma_psf, self.height, self.width)
        images = torch.empty_like(mu)
        read = truth.read_noise.tolist()
        for i, gen in enumerate(gens):  # each image's noise from its own generator
            images[i] = torch.poisson(mu[i], generator=gen)
            if read[i] > 0:
                images[i] += read[i] * torch.randn(mu[i].shape, generator=gen, dtype=mu.dtype)
        device = xy.device
        return images.to(device), SpotTruth(*(t.to(device) for t in truth))

    def __call__(self, xy: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, SpotTruth]:
        counts, truth = self.counts(xy, seeds)
        return (counts / self.params.input_scale).to(torch.float32)[:, None], truth
