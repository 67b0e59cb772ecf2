"""The clean-pixel task: one bright pixel (1.0, = 255 in an 8-bit file) per image, with the corruptions of
``data.augment`` drawn per image; the truth is the pixel itself, the bound 0 px, the reference the argmax."""

from __future__ import annotations

import numpy as np
import torch

from pixel_spotter.checks import require
from pixel_spotter.data.augment import Augment, augment_from_config
from pixel_spotter.data.splits import normalize_xy
from pixel_spotter.tasks.base import Task, from_run_section
from pixel_spotter.tasks.pixel.doubts import (
    UNKNOWN_VALUES,
    TrainedValues,
    doubts,
    missed_brightest,
    trained_values,
    value_doubts,
)
from pixel_spotter.tasks.pixel.rendering import Synthesizer

PROBE_LIMIT = 4096  # one-pixel images an export is checked on (all of them up to 64x64)
SCALING = ("files are scaled by their type's range, never by their content: 8-bit PNG/JPEG / 255, 16-bit PNG "
           "/ 65535, integer arrays / their dtype's maximum, float arrays as they are (any finite values: noise "
           "takes images below 0 and above 1, as in training); colour is converted to grey (Pillow convert('L'))")
OUTPUT_MEANING = ("(N, 2) float32: x = column, y = row of the bright pixel, in pixels, origin top-left "
                  "(0..W-1, 0..H-1; an answer may lie a hair outside and should be clamped)")


def probe_images(height: int, width: int, limit: int = PROBE_LIMIT) -> np.ndarray:
    """(N, 1, H, W) float32 one-pixel images: every position (row by row), or ``limit`` evenly spaced ones."""
    count = height * width
    positions = np.unique(np.linspace(0, count - 1, min(count, limit)).round().astype(np.int64))
    images = np.zeros((len(positions), 1, height * width), dtype=np.float32)
    images[np.arange(len(positions)), 0, positions] = 1.0
    return images.reshape(len(positions), 1, height, width)


def check_corruptions(data) -> None:
    """``data.augment`` and ``data.augment_eval``, checked (the tasks that take the corruptions share them)."""
    require(isinstance(data.get("augment_eval", True), bool),
            f"data.augment_eval must be true or false, got {data.get('augment_eval')!r}; e.g. data.augment_eval=true")
    augment_from_config(data.get("augment"))


class PixelTask(Task):
    name = "pixel"
    robustness = True
    settings = {"augment": None, "augment_eval": True}

    def __init__(self, height: int, width: int, augment: Augment | None = None, augment_eval: bool = True):
        super().__init__(height, width)
        self.augment = augment
        self.trained = trained_values(augment)  # the values predict warns far outside of
        self.renderers = {"train": Synthesizer(self.height, self.width, augment)}
        for split in ("val", "test"):  # val/test: the training distribution, or clean images
            self.renderers[split] = Synthesizer(self.height, self.width, augment if augment_eval else None)

    @classmethod
    def check_config(cls, data, model) -> None:
        check_corruptions(data)

    def render(self, split: str, xy: torch.Tensor, seeds: list[int]):
        images = self.renderers[split](xy, seeds)
        return images, normalize_xy(xy[:, 0], xy[:, 1], self.height, self.width), None

    def image_doubts(self, image: np.ndarray) -> str | None:
        return "; ".join(d for d in (doubts(image), value_doubts(image, self.trained)) if d) or None

    def answer_doubts(self, answer, image: np.ndarray) -> str | None:
        return missed_brightest(answer, image)

    def probe_images(self, limit: int = PROBE_LIMIT) -> tuple[np.ndarray, str]:
        probes = probe_images(self.height, self.width, limit)
        return probes, f"{len(probes)} one-pixel images of {self.height}x{self.width}"

    def contract(self) -> dict:
        # value_range: what files are scaled into (a clean image's); float arrays may go beyond it
        return {"value_range": [0.0, 1.0], "scaling": SCALING, "output_meaning": OUTPUT_MEANING,
                "input_values": "float32 in [0, 1] for a clean image; any finite values"}

    @classmethod
    def from_contract(cls, contract: dict) -> PixelTask:
        # The contract does not record the training values (see UNKNOWN_VALUES): warnings use a generous bound
        task = cls(contract["height"], contract["width"])
        task.trained = TrainedValues(*UNKNOWN_VALUES, known=False)
        return task

    @classmethod
    def from_run_config(cls, data, height: int, width: int, where: str) -> PixelTask:
        augment = from_run_section(where, "augment", lambda: augment_from_config(data.get("augment")))
        return cls(height, width, augment=augment)


TASK = PixelTask
