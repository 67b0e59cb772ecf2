"""``data.augment``: per-image corruption ranges (conf/augment/), drawn per image by a task's renderer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from pixel_spotter.checks import is_int, plain, require
from pixel_spotter.data.ranges import config_range
from pixel_spotter.errors import ConfigError

# The corruptions with a range, in the order a camera applies them: the scene (decoys, the spot's spread), the
# optics (blur), the exposure (intensity), the background light, then the sensor's noise.
CORRUPTIONS = ("distractors", "blob_sigma", "blur_sigma", "intensity", "background", "noise_std")
COMBINE = ("all", "one")
SENSOR_BITS = (8, 16)
GROUPS_EXAMPLE = "data.augment.combine=[[blur_sigma,noise_std],[noise_std]]"
RANGE_EXAMPLES = {"intensity": "[0.1,1]", "distractors": "[0,5]"}  # the others: [0,0.5]


@dataclass(frozen=True)
class Augment:
    """Per-image corruption ranges; each image draws every strength uniformly from its [lo, hi] range.

    Always applied in the order a camera would (``CORRUPTIONS``): distractor pixels (scene), blob, blur
    (optics), intensity (exposure), background, noise (sensor), whatever order a config lists them in. ``combine``
    says which of them an image gets. ``"all"``: each one independently, with chance ``p``, so a training mix also
    holds images with only some (or none) of them. ``"one"``: with chance p exactly one, picked uniformly among
    those with a range (the distribution of a one-corruption-at-a-time benchmark). A list of groups, e.g.
    ``[[blur_sigma, noise_std], [noise_std]]``: with chance p one group, picked uniformly (a group listed twice is
    picked twice as often), all its corruptions together; ``"one"`` is the list of every corruption alone.

    Then the sensor stage, after everything else and off by default: ``sensor_clip`` clips to [0, 1] (what a
    saturating sensor records), ``sensor_bits`` (8 or 16, needs the clip) rounds to that many bits' levels, as
    an 8- or 16-bit image file holds them."""

    noise_std: tuple[float, float] = (0.0, 0.0)  # Gaussian noise sigma, image range [0, 1]
    blur_sigma: tuple[float, float] = (0.0, 0.0)  # Gaussian blur sigma (px), energy preserving
    blob_sigma: tuple[float, float] = (0.0, 0.0)  # spot spread into a blob (px), peak kept at its value
    background: tuple[float, float] = (0.0, 0.0)  # constant offset
    intensity: tuple[float, float] = (1.0, 1.0)  # multiplies the image (dimming < 1)
    distractors: tuple[float, float] = (0, 0)  # number of decoy pixels (integers)
    distractor_intensity: float = 0.5  # decoys' value relative to the spot's 1.0
    p: float = 1.0
    combine: str | tuple[tuple[str, ...], ...] = "all"  # all | one | groups of corruptions applied together
    sensor_clip: bool = False  # clip to [0, 1] after every corruption
    sensor_bits: int | None = None  # then round to 2**bits - 1 levels (8 or 16)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("noise_std", config_range("data.augment.noise_std", self.noise_std, 0.0, None))
        set_("blur_sigma", config_range("data.augment.blur_sigma", self.blur_sigma, 0.0, 20.0))
        set_("blob_sigma", config_range("data.augment.blob_sigma", self.blob_sigma, 0.0, 20.0))
        set_("background", config_range("data.augment.background", self.background, -1.0, 1.0))
        set_("intensity", config_range("data.augment.intensity", self.intensity, 0.001, 100.0))
        set_("distractors", config_range("data.augment.distractors", self.distractors, 0, 1000, integer=True))
        for key, low, high in (("distractor_intensity", 0.0, 1.0), ("p", 0.0, 1.0)):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high):
                raise ConfigError(f"data.augment.{key} must be a number in [{low:g}, {high:g}], got {value!r}; "
                                  f"e.g. data.augment.{key}=0.5")
        if not isinstance(self.combine, str):
            set_("combine", self._checked_groups(self.combine))
        elif self.combine not in COMBINE:
            raise ConfigError(f"data.augment.combine={self.combine!r} is unknown; choose {', '.join(COMBINE)} or a "
                              f"list of groups of corruptions applied together, e.g. {GROUPS_EXAMPLE}")
        self._check_sensor()

    def _checked_groups(self, combine) -> tuple[tuple[str, ...], ...]:
        """``combine`` as a list of groups: each a non-empty list of corruptions that have a range, put in the
        order they are applied (``CORRUPTIONS``)."""
        def is_list(value) -> bool:
            return isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0  # ListConfig too

        require(is_list(combine) and all(is_list(g) and all(isinstance(k, str) for k in g) for g in combine),
                f"data.augment.combine must be all, one or a list of groups of corruptions, got {combine!r}; "
                f"e.g. {GROUPS_EXAMPLE}")
        for name in (k for g in combine for k in g):
            require(name in CORRUPTIONS, f"data.augment.combine names {name!r}, which is not a corruption with a "
                                         f"range; use {', '.join(CORRUPTIONS)}")
            require(name in self.active, f"data.augment.combine names {name}, but data.augment.{name} is off "
                                         f"({list(neutral(name))}); give it a range, e.g. "
                                         f"data.augment.{name}={RANGE_EXAMPLES.get(name, '[0,0.5]')}")
        return tuple(tuple(k for k in CORRUPTIONS if k in group) for group in combine)

    def _check_sensor(self) -> None:
        clip, bits = self.sensor_clip, self.sensor_bits
        # the examples carry Hydra's "+": the sensor keys are in no preset made before them (conf/augment/none.yaml)
        require(isinstance(clip, bool), f"data.augment.sensor_clip must be true or false, got {clip!r}; "
                                        "e.g. +data.augment.sensor_clip=true")
        require(bits is None or (is_int(bits) and bits in SENSOR_BITS),
                f"data.augment.sensor_bits must be null, 8 or 16 (bits per pixel of the saved image), got {bits!r}; "
                "e.g. +data.augment.sensor_bits=8")
        require(bits is None or clip, f"data.augment.sensor_bits={bits} needs data.augment.sensor_clip=true: images "
                                      f"of {bits} bits hold only values in [0, 1]; set both")

    @property
    def active(self) -> tuple[str, ...]:
        """The corruptions with a range (anything but the neutral value), in the order they are applied."""
        return tuple(k for k in CORRUPTIONS if getattr(self, k) != neutral(k))

    @property
    def groups(self) -> tuple[tuple[str, ...], ...] | None:
        """What one image may get, one group picked per image; None for combine=all (independent coins)."""
        if self.combine == "all":
            return None
        return tuple((k,) for k in self.active) if self.combine == "one" else self.combine

    @property
    def identity(self) -> bool:
        """True when every image comes out clean (then no generator is needed at all). The sensor stage leaves
        a clean image as it is: 0 and 1 lie in [0, 1] and are levels of every bit depth."""
        ignored = ("distractor_intensity", "p", "sensor_clip", "sensor_bits")
        return self.p == 0 or all(getattr(self, f.name) == neutral(f.name) for f in fields(self)
                                  if f.name not in ignored)


def neutral(key: str):
    """The value of ``key`` that leaves an image as it is (Augment's default)."""
    return Augment.__dataclass_fields__[key].default


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
