"""The pixel task's images, rendered on the fly from (position, per-image seed) on whatever device the batch is on.

Nothing is materialized: a batch of positions becomes a batch of images right before the network sees it, so
memory is O(batch x H x W) whatever the image size. Each image's corruption strengths, distractor pixels and noise
field come from its own generator (``data.seeds.sample_seed``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pixel_spotter.data import corruptions
from pixel_spotter.data.augment import CLEAN, CORRUPTIONS, Augment


def one_hot_images(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Images (N, 1, H, W) in [0, 1] with a single 1.0 (= 255) pixel at column xy[i, 0], row xy[i, 1]."""
    images = torch.zeros(len(xy), 1, height, width, device=xy.device)
    images[torch.arange(len(xy), device=xy.device), 0, xy[:, 1], xy[:, 0]] = 1.0
    return images


# Each image's draws follow this order (its strengths, then one coin per corruption): never change it, or every
# config renders other images than it did. It is also the order the corruptions are applied in.
_ORDER = CORRUPTIONS


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
        groups = aug.groups  # None: a coin per corruption; else one group per image
        for seed, spot in zip(seeds, flat):
            gen = torch.Generator().manual_seed(int(seed))  # CPU draws: identical numbers on CPU and GPU
            u = torch.rand(2 * len(_ORDER) + 1, generator=gen, dtype=torch.float64)
            chosen = groups[min(int(u[-1] * len(groups)), len(groups) - 1)] if groups else ()
            for i, key in enumerate(_ORDER):
                lo, hi = getattr(aug, key)
                if key == "distractors":
                    value = min(math.floor(lo + (hi - lo + 1) * u[i]), hi)
                else:
                    value = lo + (hi - lo) * float(u[i])
                applied = float(u[len(_ORDER) + i]) < aug.p
                if groups is not None:  # one coin for the image, then only the chosen group's corruptions
                    applied = float(u[len(_ORDER)]) < aug.p and key in chosen
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
        return self.corrupt(one_hot_images(xy, self.height, self.width), xy, seeds)

    def corrupt(self, images: torch.Tensor, xy: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """``images`` (B, 1, H, W) under the corruptions each image's seed draws; ``xy`` (B, 2) is the pixel its
        decoys avoid (the spot's, or one of a frame's bright pixels)."""
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
        return self._sensor(images)

    def _sensor(self, images: torch.Tensor) -> torch.Tensor:
        """The sensor stage, after every corruption: clipping, then quantization (data.augment.sensor_*)."""
        if self.augment.sensor_clip:
            images = corruptions.clip(images)
        if self.augment.sensor_bits is not None:
            images = corruptions.quantize(images, self.augment.sensor_bits)
        return images
