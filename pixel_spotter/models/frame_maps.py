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

import math
from dataclasses import dataclass

import numpy as np
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
        """Map ``name`` at the pixels (frame, row, col) (each (M,) long): the full map's numbers there, in float64 on
        the CPU. In float64 because a vectorized activation and its scalar tail may differ in the last bit, and in
        float32 that bit showed in a localization table's sixth digit: a pixel's numbers must not depend on how many
        others are decoded with it (a movie's frames a pass). On the CPU because not every device has float64
        (Apple's MPS has none), and the decode's few candidates go there next anyway."""
        channel, activation = ACTIVATIONS[name]
        return activation(self.raw[frame, channel, row, col].to("cpu", torch.float64))


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
        # the candidates come frame by frame (``nonzero``'s order): each frame's kept ones are one slice
        ends = np.cumsum(np.bincount(self.frame[keep].numpy(), minlength=self.frames)[:self.frames])[:-1]
        columns = {name: None if getattr(self, name) is None else np.split(getattr(self, name)[keep].numpy(), ends)
                   for name in ("xy", "score", "sigma", "photons", "background", "psf_sigma")}
        return [{name: None if parts is None else parts[i] for name, parts in columns.items()}
                for i in range(self.frames)]


NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]  # a pixel's 3x3 neighbourhood, itself included


def _neighbourhoods(logit: torch.Tensor, frame, row, col) -> torch.Tensor:
    """(M, 9) the logits of the 3x3 neighbourhood of each pixel (frame, row, col) of the (B, H, W) ``logit``
    (-inf, a probability of 0, beyond the frame's border, as the pools pad)."""
    B, H, W = logit.shape
    padded = F.pad(logit.float(), (1, 1, 1, 1), value=-math.inf).reshape(-1)
    base = (frame * (H + 2) + row + 1) * (W + 2) + col + 1
    offsets = torch.tensor([dr * (W + 2) + dc for dr, dc in NEIGHBOURS], device=logit.device)
    return padded[base[:, None] + offsets]


def _local_max(maps: Maps, floor: float, split_floor: float):
    """(frame, row, col, score, peak, own) of every pixel that is a local maximum whose 3x3 sum of probabilities
    is at least ``floor`` or whose own probability is above ``split_floor``. Only pixels whose probability reaches
    floor / 9 can be either (a maximum's sum is at most 9 times its own), so only theirs are summed: on a frame of a
    few emitters that is a few dozen pixels, not every one (on 2 cores the decode cost a third of the network's
    time with full-frame pools). The maximum is the logits' (two probabilities rounded to 1 are not a tie)."""
    logit = maps.logit
    lowest = min(floor / len(NEIGHBOURS), split_floor)
    bound = math.log(lowest / (1 - lowest)) - 1e-3 if 0 < lowest < 1 else -math.inf  # a little below: rounding
    frame, row, col = (logit >= bound).nonzero(as_tuple=True)
    near = _neighbourhoods(logit, frame, row, col)
    centre = near[:, len(NEIGHBOURS) // 2]
    peak, near = centre == near.max(dim=1).values, torch.sigmoid(near)
    own, score = near[:, len(NEIGHBOURS) // 2], near.sum(dim=1)
    where = (peak & (score >= floor)) | (~peak & (own > split_floor))
    return frame[where], row[where], col[where], score[where], peak[where], own[where]


def candidates(maps: Maps, decode: str, photon_scale: float = 1.0, floor: float = 0.05,
               split_floor: float = SPLITS[-1]) -> Candidates:
    """The candidates of a batch's maps (CPU tensors out): for ``local_max`` the maxima whose sum is at least
    ``floor`` and the other pixels whose own probability is above ``split_floor``."""
    extra = {}
    if decode == "threshold":
        p = maps.probability.float()
        frame, row, col = (p >= floor).nonzero(as_tuple=True)
        score = p[frame, row, col]
    else:
        frame, row, col, score, peak, own = _local_max(maps, floor, split_floor)
        extra.update(peak=peak.cpu(), own=own.cpu())
    xy = torch.stack([col, row], dim=1).to("cpu", torch.float64)  # on the CPU: not every device has float64
    if maps.emitters:
        at = lambda name: maps.at(name, frame, row, col)  # noqa: E731
        xy += torch.stack([at("dx"), at("dy")], dim=1)
        extra.update(sigma=torch.stack([at("sigma_x"), at("sigma_y")], dim=1),
                     photons=at("photons") * photon_scale, background=at("background") * photon_scale,
                     psf_sigma=at("psf_sigma"))
    return Candidates(frame=frame.cpu(), xy=xy.cpu(), score=score.cpu(), frames=len(maps.raw),
                      **{"sigma": None, "photons": None, **extra})
