"""The many-emitters task (``data=emitters``): frames of sub-pixel Gaussian spots at a density, as a camera records
them (``rendering.py``). A frame model answers each frame's localizations; they are scored as the SMLM Challenge
2016 scores (``evaluation.localizations``: matched within ``data.tolerance_nm``, the Jaccard index, the RMSE of
the matched pairs, the efficiency, and their RMSE over each emitter's single-emitter Cramér–Rao bound). A run's
record also holds the classical pipeline's scores on the same test frames (``references.classical``)."""

from __future__ import annotations

from dataclasses import fields

import torch

from pixel_spotter.checks import is_number, plain, require
from pixel_spotter.errors import ConfigError, UserError
from pixel_spotter.spots.camera import Camera
from pixel_spotter.spots.frames import MAX_EXPECTED_EMITTERS, EmitterRanges
from pixel_spotter.tasks.base import Task, from_run_section
from pixel_spotter.tasks.emitters.rendering import EmitterSynthesizer


def _section(value, where: str) -> dict:
    value = plain(value) if value is not None else {}
    require(isinstance(value, dict), f"{where} must be a mapping of settings, got {value!r}")
    return {k: v for k, v in value.items() if k != "_target_"}


def emitter_settings(value, height: int = 64, width: int = 64,
                     where: str = "data.emitters") -> tuple[EmitterRanges, tuple[float, float]]:
    """``data.emitters`` as (EmitterRanges, the density range drawn per frame), each key checked."""
    section = _section(value, where)
    known = [f.name for f in fields(EmitterRanges)]
    unknown = sorted(set(section) - set(known))
    require(not unknown, f"{where}.{unknown[0] if unknown else ''} is not an emitter setting; use {', '.join(known)}")
    density = section.pop("density_per_um2", EmitterRanges.density_per_um2)
    pair = density if isinstance(density, (list, tuple)) else [density, density]
    require(len(pair) == 2 and all(is_number(d) and d >= 0 for d in pair) and pair[0] <= pair[1],
            f"{where}.density_per_um2 must be emitters per um^2 >= 0, one number or [low, high], got {density!r}; "
            f"e.g. {where}.density_per_um2=[0.25,4]")
    try:
        ranges = EmitterRanges(density_per_um2=float(pair[1]), **section)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None
    mean = ranges.mean_count(height, width)
    require(mean <= MAX_EXPECTED_EMITTERS,
            f"{where}.density_per_um2={pair[1]:g} is {mean:,.0f} emitters per {height}x{width} frame, more than "
            f"{MAX_EXPECTED_EMITTERS:,}; lower the density or the frame size")
    return ranges, (float(pair[0]), float(pair[1]))


def camera_settings(value, where: str = "data.camera") -> Camera:
    section = _section(value, where)
    known = [f.name for f in fields(Camera)]
    unknown = sorted(set(section) - set(known))
    require(not unknown, f"{where}.{unknown[0] if unknown else ''} is not a camera setting; use {', '.join(known)}")
    try:
        return Camera(**section)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _positive(value, key: str, example: str, optional: bool = False) -> float | None:
    if optional and value is None:
        return None
    require(is_number(value) and value > 0, f"{key} must be a number > 0{' or null' if optional else ''}, got "
                                            f"{value!r}; e.g. {key}={example}")
    return float(value)


class EmittersTask(Task):
    name = "emitters"
    frames = True
    counts = True
    answer_low = -0.5
    settings = {"emitters": None, "camera": None, "input_scale": 100.0, "tolerance_nm": 250.0, "border_nm": None}

    def __init__(self, height: int, width: int, emitters=None, camera=None, input_scale: float = 100.0,
                 tolerance_nm: float = 250.0, border_nm: float | None = None):
        super().__init__(height, width)
        self.ranges, self.density = (emitters if isinstance(emitters, tuple)
                                     else emitter_settings(emitters, self.height, self.width))
        self.camera = camera if isinstance(camera, Camera) else camera_settings(camera)
        self.input_scale = _positive(input_scale, "data.input_scale", "100")
        self.tolerance_nm = _positive(tolerance_nm, "data.tolerance_nm", "250")
        self.border_nm = _positive(border_nm, "data.border_nm", "450", optional=True)
        self.renderer = EmitterSynthesizer(self.height, self.width, self.ranges, self.density, self.camera,
                                           self.input_scale)

    @classmethod
    def check_config(cls, data, model) -> None:
        emitter_settings(data.get("emitters"), data.height, data.width)
        camera_settings(data.get("camera"))
        _positive(data.get("input_scale", 100.0), "data.input_scale", "100")
        _positive(data.get("tolerance_nm", 250.0), "data.tolerance_nm", "250")
        _positive(data.get("border_nm"), "data.border_nm", "450", optional=True)

    def tally(self):
        from pixel_spotter.evaluation.localizations import Tally

        return Tally(self.tolerance_nm, self.ranges.pixel_size_nm, border_nm=self.border_nm,
                     frame_size=(self.width, self.height))

    def render(self, split: str, xy: torch.Tensor, seeds: list[int]):
        images, truth, _ = self.renderer(seeds, xy.device, bounds=split != "train")
        return images, truth, None

    def record_results(self, record, datamodule, model) -> None:
        """The classical pipeline on the same test frames (its threshold tuned on the validation frames), both
        sides' frames per second, decode included (``references.classical``, ``images_per_s``), and the model's
        calibration curve on its test (``calibration``)."""
        from pixel_spotter.tasks.emitters.references import classical_reference, model_frames_per_s

        record.calibration = list(getattr(model, "test_calibration", []))
        record.references = {"classical": classical_reference(self, datamodule)}
        record.images_per_s = model_frames_per_s(model, datamodule)

    def contract(self) -> dict:
        raise UserError("a data=emitters run answers a set of emitters per frame; export and predict answer one "
                        "(x, y) per image and do not take it")

    @classmethod
    def from_run_config(cls, data, height: int, width: int, where: str) -> EmittersTask:
        def build():
            return cls(height, width, emitters=data.get("emitters"), camera=data.get("camera"),
                       input_scale=data.get("input_scale", 100.0), tolerance_nm=data.get("tolerance_nm", 250.0),
                       border_nm=data.get("border_nm"))

        return from_run_section(where, "emitters", build)

    @property
    def sigma_psf(self) -> float:
        """The PSF width the classical pipeline assumes: the middle of the trained range."""
        return sum(self.ranges.sigma_psf) / 2


TASK = EmittersTask
