"""What a frame model's raw maps mean, and how localizations are read from them (the decode).

Channels of ``FrameNet``'s output (``CHANNELS``): 0 the detection logit (an emitter's centre lies in this pixel
or, with offsets, near it); for the emitter model also 1-2 the sub-pixel offset of that centre from the pixel's
(tanh: within one pixel either way), 3 its photons, 4 the background per pixel, 5-6 the standard deviation of the
offset in x and y (px), 7 that of the photons, 8 the emitter's PSF width sigma (px); photons and background in
units of ``photon_scale`` (softplus).

Decode (``DECODES``): ``threshold``, every pixel whose probability clears the threshold (bright pixels may touch,
so no suppression); ``local_max``, DECODE's: local maxima (3x3) of the probability whose 3x3 neighbourhood sums to
more than the threshold (an emitter between pixels spreads its probability over two or more), at the maximum
pixel's centre plus its offset. Also DECODE's: a pixel that is no local maximum but whose own probability clears a
second, higher threshold (``split``) is a localization of its own, the second of two emitters in neighbouring
pixels (one emitter's probability spread over two pixels sums to about 1, so both halves stay below it); a split
of 1 (the default) turns this off, as no probability exceeds 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CHANNELS = {"detection": 1, "emitters": 9}
DECODES = ("threshold", "local_max")
MIN_SIGMA = 0.01  # px (or photon_scale units): a predicted uncertainty never collapses to 0
SPLITS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # the split thresholds a decode may use (1: none), lowest last


def _uncertainty(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw) + MIN_SIGMA


# each emitter map: its channel of the raw output, and what makes the raw number that map's
ACTIVATIONS = {"dx": (1, torch.tanh), "dy": (2, torch.tanh), "photons": (3, F.softplus),
               "background": (4, F.softplus), "sigma_x": (5, _uncertainty), "sigma_y": (6, _uncertainty),
               "sigma_photons": (7, _uncertainty), "psf_sigma": (8, _uncertainty)}


def _emitter_map(name: str) -> property:
    channel, activation = ACTIVATIONS[name]

    def get(self) -> torch.Tensor | None:
        if self.raw.shape[1] == 1:  # a detection model answers the logit only
            return None
        if name not in self._maps:
            self._maps[name] = activation(self.raw[:, channel])
        return self._maps[name]

    return property(get, doc=f"(B, H, W) the {name} map (None for a detection model)")


class Maps:
    """The meaning of a (B, C, H, W) output: each map (B, H, W), made from its raw channel when first used (the loss
    uses every pixel of each; the decode only its candidates' pixels, ``at``, so the full maps are never made)."""

    dx, dy, photons, background = (_emitter_map(n) for n in ("dx", "dy", "photons", "background"))
    sigma_x, sigma_y, sigma_photons, psf_sigma = (_emitter_map(n) for n in ("sigma_x", "sigma_y", "sigma_photons",
                                                                           "psf_sigma"))

    def __init__(self, raw: torch.Tensor):
        self.raw, self._maps = raw, {}

    @property
    def logit(self) -> torch.Tensor:
        return self.raw[:, 0]

    @property
    def probability(self) -> torch.Tensor:
        return torch.sigmoid(self.logit)

    @property
    def emitters(self) -> bool:
        """Whether the output has the emitter maps (``CHANNELS["emitters"]``), not the detection logit alone."""
        return self.raw.shape[1] > 1

    def at(self, name: str, frame, row, col) -> torch.Tensor:
        """Map ``name`` at the pixels (frame, row, col) (each (M,) long): the same numbers as the full map's there."""
        channel, activation = ACTIVATIONS[name]
        return activation(self.raw[frame, channel, row, col])


def read_maps(raw: torch.Tensor) -> Maps:
    return Maps(raw)


@dataclass
class Candidates:
    """Every frame's candidates before the threshold (score >= ``floor``): a threshold then only filters."""

    frame: torch.Tensor  # (M,) long
    xy: torch.Tensor  # (M, 2) float64 pixel (x, y)
    score: torch.Tensor  # (M,) what the threshold is compared with
    sigma: torch.Tensor | None  # (M, 2) predicted standard deviation of x and y (px)
    photons: torch.Tensor | None  # (M,) in photons
    frames: int
    background: torch.Tensor | None = None  # (M,) photons per pixel at the emitter
    psf_sigma: torch.Tensor | None = None  # (M,) px
    # local_max only: whether each candidate is a local maximum, and its pixel's own probability (a candidate that
    # is no maximum counts when that clears the split threshold)
    peak: torch.Tensor | None = None  # (M,) bool
    own: torch.Tensor | None = None  # (M,)

    def select(self, threshold: float, split: float = 1.0) -> list[dict]:
        """Per frame {xy (K, 2), score (K,), and (None for a detection model) sigma (K, 2), photons (K,),
        background (K,), psf_sigma (K,)} above ``threshold`` (and, when not a local maximum, above ``split``)."""
        keep = self.score > threshold
        if self.peak is not None:
            keep &= self.peak | (self.own > split)
        out = []
        for i in range(self.frames):
            k = keep & (self.frame == i)
            out.append({"xy": self.xy[k].numpy(), "score": self.score[k].numpy(),
                        **{name: None if getattr(self, name) is None else getattr(self, name)[k].numpy()
                           for name in ("sigma", "photons", "background", "psf_sigma")}})
        return out


def candidates(maps: Maps, decode: str, photon_scale: float = 1.0, floor: float = 0.05,
               split_floor: float = SPLITS[-1]) -> Candidates:
    """The candidates of a batch's maps (CPU tensors out): for ``local_max`` the maxima whose sum is at least
    ``floor`` and the other pixels whose own probability is above ``split_floor``."""
    p = maps.probability.float()
    peak = None
    if decode == "threshold":
        score, where = p, p >= floor
    else:
        peak = p == F.max_pool2d(p[:, None], 3, stride=1, padding=1)[:, 0]
        score = F.avg_pool2d(p[:, None], 3, stride=1, padding=1, divisor_override=1)[:, 0]  # 3x3 sums
        where = (peak & (score >= floor)) | (~peak & (p > split_floor))
    frame, row, col = where.nonzero(as_tuple=True)
    xy = torch.stack([col, row], dim=1).double()
    extra = {}
    if maps.emitters:
        at = lambda name: maps.at(name, frame, row, col).double().cpu()  # noqa: E731
        xy += torch.stack([at("dx"), at("dy")], dim=1).to(xy.device)
        extra = {"sigma": torch.stack([at("sigma_x"), at("sigma_y")], dim=1),
                 "photons": at("photons") * photon_scale, "background": at("background") * photon_scale,
                 "psf_sigma": at("psf_sigma")}
    if peak is not None:
        extra.update(peak=peak[frame, row, col].cpu(), own=p[frame, row, col].cpu())
    return Candidates(frame=frame.cpu(), xy=xy.cpu(), score=score[frame, row, col].cpu(), frames=len(p),
                      **{"sigma": None, "photons": None, **extra})
