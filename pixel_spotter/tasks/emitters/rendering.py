"""The many-emitters task's frames: ``spots/frames.py``'s emitters (a Poisson count at a density, uniform
positions, photons and PSF widths from ranges, one background per frame), recorded by ``spots/camera.py``'s camera
and read back in photons, as a localizer reads a movie. The network sees photons / ``input_scale``.

Each frame is a function of its seed: the density it is drawn at (log-uniform in the range, from its own stream
``DENSITY_STREAM``), then its emitters and the camera's noise from one generator of the seed. Train, validation and
test frames come from different seed streams, so no test frame was ever trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch

from pixel_spotter.data.seeds import sample_seed
from pixel_spotter.spots.camera import Camera
from pixel_spotter.spots.frames import EmitterRanges, Frame, draw_frame
from pixel_spotter.tasks.frame_sets import FrameSets

DENSITY_STREAM = 12


def frame_density(seed: int, density: tuple[float, float]) -> float:
    low, high = density
    if low == high or low <= 0:
        return low if low == high else low + (high - low) * _unit(seed)
    return math.exp(math.log(low) + (math.log(high) - math.log(low)) * _unit(seed))


def _unit(seed: int) -> float:
    gen = torch.Generator().manual_seed(sample_seed(int(seed), DENSITY_STREAM, 0))
    return float(torch.rand(1, generator=gen, dtype=torch.float64))


class EmitterSynthesizer:
    """Renders frame seeds into network inputs (B, 1, H, W), their true sets and the frames in photons."""

    def __init__(self, height: int, width: int, ranges: EmitterRanges, density: tuple[float, float],
                 camera: Camera, input_scale: float):
        self.height, self.width = height, width
        self.ranges, self.density, self.camera, self.input_scale = ranges, density, camera, input_scale

    def recorded(self, seeds: Sequence[int]) -> tuple[list[Frame], torch.Tensor]:
        """Each seed's emitters, and the (B, H, W) float64 numbers the camera recorded of them (ADU; counts for the
        ideal camera)."""
        frames, recorded = [], []
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            ranges = replace(self.ranges, density_per_um2=frame_density(seed, self.density))
            frame = draw_frame(gen, self.height, self.width, ranges)
            frames.append(frame)
            recorded.append(self.camera.record(frame.expected(self.height, self.width), gen))
        return frames, torch.stack(recorded) if recorded else torch.zeros(0, self.height, self.width)

    def frames(self, seeds: Sequence[int]) -> tuple[list[Frame], torch.Tensor]:
        """Each seed's emitters, and the (B, H, W) float64 photons the camera's numbers read back as."""
        frames, recorded = self.recorded(seeds)
        return frames, self.camera.to_photons(recorded)

    def __call__(self, seeds: Sequence[int], device, bounds: bool = False, joint_bounds: bool = False):
        """(network input, FrameSets, photons) of ``seeds``; ``bounds``: each emitter's single-emitter CRLB too;
        ``joint_bounds``: also its CRLB with the whole frame unknown at once (``Frame.joint_bounds``)."""
        frames, photons = self.frames(seeds)
        images = (photons / self.input_scale).to(torch.float32)[:, None].to(device)
        truth = FrameSets.pad([f.xy for f in frames], [f.photons for f in frames],
                              torch.tensor([f.background for f in frames]),
                              [f.bounds(self.height, self.width) for f in frames] if bounds else None,
                              [f.sigma_psf for f in frames], device=device,
                              joint_bounds=[f.joint_bounds(self.height, self.width) for f in frames]
                              if joint_bounds else None)
        return images, truth, photons
