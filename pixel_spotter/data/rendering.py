"""Images rendered on the fly from (position, per-image seed), on whatever device the batch is on.

Nothing is materialized: a batch of positions becomes a batch of images right before the network sees it,
so memory is O(batch x H x W) whatever the image size. Each image's randomness (its corruption strengths,
distractor pixels and noise field) comes from its own generator seeded by ``sample_seed(seed, stream, draw)``,
so an image depends on nothing but its seed: not on its batch, the batch size or the device count, and a
resumed run renders the very images an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from pixel_spotter.data import corruptions
from pixel_spotter.errors import ConfigError

MASK64 = (1 << 64) - 1
COMBINE = ("all", "one")
STREAMS = {"train": 0, "val": 1, "test": 2}  # separate seed streams: val/test noise never repeats training's
ROBUSTNESS_STREAM = 3  # `pixel-spotter robustness` renders its test images from this stream (robustness.py)


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def sample_seed(seed: int, stream: int, draw: int) -> int:
    """The seed of one image: a hash of (run seed, split stream, draw number), < 2**63."""
    return _splitmix64(_splitmix64(_splitmix64(seed) ^ stream) ^ draw) >> 1


def one_hot_images(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Images (N, 1, H, W) in [0, 1] with a single 1.0 (= 255) pixel at column xy[i, 0], row xy[i, 1]."""
    images = torch.zeros(len(xy), 1, height, width, device=xy.device)
    images[torch.arange(len(xy), device=xy.device), 0, xy[:, 1], xy[:, 0]] = 1.0
    return images


def config_range(key: str, value, low: float, high: float | None, integer: bool = False) -> tuple[float, float]:
    """A checked [lo, hi] config range (a single number means exactly that value); ``key`` is the user's name
    for it (``data.augment.noise_std``). Shared by every per-image range (also spot_synthesis.SpotParams)."""
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


@dataclass(frozen=True)
class Augment:
    """Per-image corruption ranges; each image draws every strength uniformly from its [lo, hi] range.

    Applied in the order a camera would: distractor pixels (scene), blob, blur (optics), intensity (exposure),
    background, noise (sensor). ``p`` is the chance that each corruption is applied at all to an image, so a
    training mix also holds images with only some (or none) of them. ``combine="one"`` instead gives an image
    (with chance p) exactly one corruption, picked uniformly among those with a range: the distribution of a
    one-corruption-at-a-time benchmark, where the best detector differs per corruption."""

    noise_std: tuple[float, float] = (0.0, 0.0)  # Gaussian noise sigma, image range [0, 1]
    blur_sigma: tuple[float, float] = (0.0, 0.0)  # Gaussian blur sigma (px), energy preserving
    blob_sigma: tuple[float, float] = (0.0, 0.0)  # spot spread into a blob (px), peak kept at its value
    background: tuple[float, float] = (0.0, 0.0)  # constant offset
    intensity: tuple[float, float] = (1.0, 1.0)  # multiplies the image (dimming < 1)
    distractors: tuple[float, float] = (0, 0)  # number of decoy pixels (integers)
    distractor_intensity: float = 0.5  # decoys' value relative to the spot's 1.0
    p: float = 1.0
    combine: str = "all"  # all: each corruption applied independently (chance p); one: at most one per image

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("noise_std", config_range("data.augment.noise_std", self.noise_std, 0.0, None))
        set_("blur_sigma", config_range("data.augment.blur_sigma", self.blur_sigma, 0.0, 20.0))
        set_("blob_sigma", config_range("data.augment.blob_sigma", self.blob_sigma, 0.0, 20.0))
        set_("background", config_range("data.augment.background", self.background, -1.0, 1.0))
        set_("intensity", config_range("data.augment.intensity", self.intensity, 0.001, 100.0))
        set_("distractors", config_range("data.augment.distractors", self.distractors, 0, 1000, integer=True))
        if self.combine not in COMBINE:
            raise ConfigError(f"data.augment.combine={self.combine!r} is unknown; choose one of {', '.join(COMBINE)}")
        for key, low, high in (("distractor_intensity", 0.0, 1.0), ("p", 0.0, 1.0)):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high):
                raise ConfigError(f"data.augment.{key} must be a number in [{low:g}, {high:g}], got {value!r}; "
                                  f"e.g. data.augment.{key}=0.5")

    @property
    def identity(self) -> bool:
        """True when every image comes out clean (then no generator is needed at all)."""
        neutral = Augment.__dataclass_fields__
        return self.p == 0 or all(getattr(self, f.name) == neutral[f.name].default
                                  for f in fields(self) if f.name not in ("distractor_intensity", "p"))


CLEAN = Augment()
_ORDER = ("distractors", "blob_sigma", "blur_sigma", "intensity", "background", "noise_std")  # draw order: fixed


class Synthesizer:
    """Renders (B, 2) pixel positions + B image seeds into (B, 1, H, W) images under an ``Augment``."""

    def __init__(self, height: int, width: int, augment: Augment | None = None):
        self.height, self.width = int(height), int(width)
        self.augment = augment or CLEAN
        self.radius = {k: corruptions.kernel_radius(getattr(self.augment, k)[1]) for k in ("blur_sigma", "blob_sigma")}

    def _draws(self, xy: torch.Tensor, seeds: Sequence[int]) -> dict[str, torch.Tensor]:
        """Each image's strengths, decoys and unit noise, from its own generator (same numbers on any device)."""
        aug, n_pix = self.augment, self.height * self.width
        max_decoys = min(int(aug.distractors[1]), n_pix - 1)  # a tiny image has fewer free pixels than asked
        out = {k: [] for k in (*_ORDER, "decoy_xy", "decoy_keep", "noise")}
        flat = (xy[:, 1] * self.width + xy[:, 0]).tolist()
        active = [k for k in _ORDER if getattr(aug, k) != getattr(CLEAN, k)]  # corruptions with a range
        for seed, spot in zip(seeds, flat):
            gen = torch.Generator().manual_seed(int(seed))  # CPU draws: identical numbers on CPU and GPU
            u = torch.rand(2 * len(_ORDER) + 1, generator=gen, dtype=torch.float64)
            chosen = active[min(int(u[-1] * len(active)), len(active) - 1)] if active else None
            for i, key in enumerate(_ORDER):
                lo, hi = getattr(aug, key)
                if key == "distractors":
                    value = min(math.floor(lo + (hi - lo + 1) * u[i]), hi)
                else:
                    value = lo + (hi - lo) * float(u[i])
                applied = float(u[len(_ORDER) + i]) < aug.p
                if aug.combine == "one":  # one coin for the image, then only the chosen corruption
                    applied = float(u[len(_ORDER)]) < aug.p and key == chosen
                out[key].append(value if applied else getattr(CLEAN, key)[0])
            if max_decoys:  # distinct pixels, never the spot's own
                others = torch.randperm(n_pix - 1, generator=gen)[:max_decoys]
                others = (spot + 1 + others) % n_pix
                out["decoy_xy"].append(torch.stack([others % self.width, others // self.width], dim=1))
                out["decoy_keep"].append(torch.arange(max_decoys) < out["distractors"][-1])
            if aug.noise_std[1] > 0:
                out["noise"].append(torch.randn(1, self.height, self.width, generator=gen))
        device = xy.device
        draws = {k: torch.tensor(out[k], dtype=torch.float32, device=device) for k in _ORDER}
        for key in ("decoy_xy", "decoy_keep", "noise"):
            if out[key]:
                draws[key] = torch.stack(out[key]).to(device)
        return draws

    def __call__(self, xy: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        images = one_hot_images(xy, self.height, self.width)
        if self.augment.identity:
            return images
        d = self._draws(xy, seeds)
        if "decoy_xy" in d:
            images = corruptions.add_distractors(images, d["decoy_xy"], d["decoy_keep"],
                                                 self.augment.distractor_intensity)
        if self.augment.blob_sigma[1] > 0:
            images = corruptions.blob(images, d["blob_sigma"], self.radius["blob_sigma"])
        if self.augment.blur_sigma[1] > 0:
            images = corruptions.blur(images, d["blur_sigma"], self.radius["blur_sigma"])
        images = corruptions.offset(corruptions.scale(images, d["intensity"]), d["background"])
        if "noise" in d:
            images = corruptions.add_noise(images, d["noise_std"], d["noise"])
        return images
