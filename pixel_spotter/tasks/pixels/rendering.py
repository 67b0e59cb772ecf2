"""The many-pixels task's frames: K bright pixels (1.0) at distinct positions, K drawn per frame from a range that
may include 0, then the corruptions of ``data.augment`` as the pixel task draws them (``tasks/pixel/rendering``).

Honest splits: each frame's pixels are drawn from its split's positions (``data.split``), so with the default
position split no test pixel was ever bright in training, and with ``split=quadrant`` every test pixel lies in the
held-out quadrant. Each frame is a function of its seed: its pixel set comes from a generator of its own stream
(``PIXEL_SET_STREAM``), its corruptions from the seed itself, as the pixel task's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pixel_spotter.data.augment import Augment
from pixel_spotter.data.seeds import sample_seed
from pixel_spotter.tasks.frame_sets import FrameSets
from pixel_spotter.tasks.pixel.rendering import Synthesizer

PIXEL_SET_STREAM = 11  # a frame's pixel set: its own draws, apart from the corruption draws of the same seed


def pixel_sets(positions: torch.Tensor, seeds: Sequence[int], count: tuple[int, int]) -> list[torch.Tensor]:
    """Each frame's (K, 2) long pixel positions: K uniform in ``count`` (inclusive), distinct, from ``positions``."""
    low, high = count
    high = min(high, len(positions))
    sets = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(sample_seed(int(seed), PIXEL_SET_STREAM, 0))
        k = int(torch.randint(low, high + 1, (1,), generator=gen)) if high > low else high
        pick = torch.randperm(len(positions), generator=gen)[:k] if k else torch.zeros(0, dtype=torch.long)
        sets.append(positions[pick])
    return sets


class PixelSetSynthesizer:
    """Renders B frame seeds into (B, 1, H, W) images and their true pixel sets."""

    def __init__(self, height: int, width: int, count: tuple[int, int], augment: Augment | None = None):
        self.height, self.width, self.count = height, width, count
        self.corruptions = Synthesizer(height, width, augment)

    def __call__(self, positions: torch.Tensor, seeds: Sequence[int], device) -> tuple[torch.Tensor, FrameSets]:
        sets = pixel_sets(positions.cpu(), seeds, self.count)
        images = torch.zeros(len(sets), 1, self.height, self.width, device=device)
        for i, xy in enumerate(sets):
            images[i, 0, xy[:, 1], xy[:, 0]] = 1.0
        # decoys avoid one bright pixel, as the pixel task's avoid its spot (others may, rarely, add to a pixel)
        anchor = torch.stack([s[0] if len(s) else torch.zeros(2, dtype=torch.long) for s in sets]).to(device)
        images = self.corruptions.corrupt(images, anchor, seeds)
        truth = FrameSets.pad([s.float() for s in sets], [torch.ones(len(s)) for s in sets],
                              torch.zeros(len(sets)), device=device)
        return images, truth
