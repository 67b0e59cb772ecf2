"""The many-pixels task (``data=pixels``): a set of K bright pixels per image (``rendering.py``), K from
``data.count``, with the corruptions of ``data.augment``. A frame model answers the set; it is scored by matching
within ``data.tolerance_px`` (0.5 px: the very pixel) as the localization-microscopy challenge matches
(``evaluation.localizations``): F1, the share of frames whose set is found exactly, and the rest."""

from __future__ import annotations

import torch

from pixel_spotter.checks import is_int, plain, require
from pixel_spotter.data.augment import Augment, augment_from_config
from pixel_spotter.errors import UserError
from pixel_spotter.tasks.base import Task, from_run_section
from pixel_spotter.tasks.pixel.task import check_corruptions
from pixel_spotter.tasks.pixels.rendering import PixelSetSynthesizer

MAX_COUNT = 1000  # bright pixels per frame: beyond it a config's count is a typo


def count_range(value, key: str = "data.count") -> tuple[int, int]:
    value = plain(value)
    ok = (isinstance(value, (list, tuple)) and len(value) == 2 and all(is_int(v) for v in value)
          and 0 <= value[0] <= value[1] <= MAX_COUNT)
    require(ok, f"{key} must be [low, high] bright pixels per frame, integers with 0 <= low <= high <= "
                f"{MAX_COUNT}, got {value!r}; e.g. {key}=[0,10]")
    return int(value[0]), int(value[1])


def tolerance(value, key: str = "data.tolerance_px") -> float:
    require(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 10,
            f"{key} must be a number of pixels in (0, 10], got {value!r}; e.g. {key}=0.5")
    return float(value)


class PixelsTask(Task):
    name = "pixels"
    frames = True
    settings = {"augment": None, "augment_eval": True, "count": (0, 10), "tolerance_px": 0.5}

    def __init__(self, height: int, width: int, augment: Augment | None = None, augment_eval: bool = True,
                 count=(0, 10), tolerance_px: float = 0.5):
        super().__init__(height, width)
        self.count, self.tolerance_px = count_range(count), tolerance(tolerance_px)
        self.renderers = {"train": PixelSetSynthesizer(self.height, self.width, self.count, augment)}
        for split in ("val", "test"):
            self.renderers[split] = PixelSetSynthesizer(self.height, self.width, self.count,
                                                        augment if augment_eval else None)
        self.positions: dict[str, torch.Tensor] = {}

    @classmethod
    def check_config(cls, data, model) -> None:
        check_corruptions(data)
        count_range(data.get("count", (0, 10)))
        tolerance(data.get("tolerance_px", 0.5))

    def bind(self, positions: dict[str, torch.Tensor]) -> None:
        self.positions = positions

    def tally(self):
        from pixel_spotter.evaluation.localizations import Tally

        # pixel units throughout: a "nanometre" of the tally is a pixel here
        return Tally(tolerance_nm=self.tolerance_px, pixel_size_nm=1.0)

    def render(self, split: str, xy: torch.Tensor, seeds: list[int]):
        if not self.positions:
            raise UserError("the pixels task renders from its split's positions; the datamodule was not set up")
        images, truth = self.renderers[split](self.positions[split], seeds, xy.device)
        return images, truth, None

    def contract(self) -> dict:
        raise UserError("a data=pixels run answers a set of pixels per image; export and predict answer one "
                        "(x, y) per image and do not take it")

    @classmethod
    def from_run_config(cls, data, height: int, width: int, where: str) -> PixelsTask:
        augment = from_run_section(where, "augment", lambda: augment_from_config(data.get("augment")))
        count = from_run_section(where, "count", lambda: count_range(data.get("count", (0, 10))))
        tol = from_run_section(where, "tolerance_px", lambda: tolerance(data.get("tolerance_px", 0.5)))
        return cls(height, width, augment=augment, count=count, tolerance_px=tol)


TASK = PixelsTask
