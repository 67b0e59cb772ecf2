"""``data.augment``: per-image corruption ranges (conf/augment/), drawn per image by a task's renderer."""

from __future__ import annotations

from dataclasses import dataclass, fields

from pixel_spotter.checks import plain, require
from pixel_spotter.data.ranges import config_range
from pixel_spotter.errors import ConfigError

COMBINE = ("all", "one")


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


def augment_from_config(augment) -> Augment | None:
    """``data.augment`` as an Augment, each key and range checked (None when there is none)."""
    if augment is None:
        return None
    known = [f.name for f in fields(Augment)]
    unknown = sorted(set(augment) - {*known, "_target_"})
    require(not unknown, f"data.augment.{unknown[0] if unknown else ''} is not a corruption setting; "
                         f"use {', '.join(known)}")
    return Augment(**{k: plain(v) for k, v in augment.items() if k != "_target_"})
