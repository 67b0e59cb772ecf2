"""A batch's true emitters when a frame holds many (the frame tasks: data=pixels, data=emitters): a padded set per
frame, the truth a frame model's loss and the localization scores take. Pixel coordinates throughout: x the
column, y the row, pixel centres at integers (a frame spans -0.5 ... W - 0.5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class FrameSets:
    xy: torch.Tensor  # (B, K, 2) float32 (x, y) in pixels; padding rows are 0
    mask: torch.Tensor  # (B, K) bool: which rows are emitters
    photons: torch.Tensor  # (B, K) float32 expected photons of each (1 for a bright pixel)
    background: torch.Tensor  # (B,) float32 expected background per pixel, in the network input's unit
    bounds: torch.Tensor | None = None  # (B, K) float64 var_x + var_y of each emitter's single-emitter CRLB (px^2)
    psf_sigma: torch.Tensor | None = None  # (B, K) float32 each emitter's PSF width (px), where the task has one
    joint_bounds: torch.Tensor | None = None  # (B, K) float64 the same with the whole frame unknown at once (px^2)

    def __len__(self) -> int:
        return len(self.mask)

    def frame(self, i: int) -> np.ndarray:
        """Frame i's true positions, (K_i, 2) float64."""
        return self.xy[i][self.mask[i]].double().cpu().numpy()

    def frame_bounds(self, i: int) -> np.ndarray | None:
        return None if self.bounds is None else self.bounds[i][self.mask[i]].cpu().numpy()

    def frame_joint_bounds(self, i: int) -> np.ndarray | None:
        return None if self.joint_bounds is None else self.joint_bounds[i][self.mask[i]].cpu().numpy()

    @property
    def counts(self) -> torch.Tensor:
        return self.mask.sum(dim=1)

    @classmethod
    def pad(cls, xy: Sequence[torch.Tensor], photons: Sequence[torch.Tensor], background: torch.Tensor,
            bounds: Sequence[torch.Tensor] | None = None, psf_sigma: Sequence[torch.Tensor] | None = None,
            device=None, joint_bounds: Sequence[torch.Tensor] | None = None) -> FrameSets:
        """Per-frame (K_i, 2) positions and (K_i,) photons (and bounds, PSF widths) padded to the batch's largest
        K (at least 1, so a batch of empty frames still has a set dimension)."""
        size = max([1, *(len(p) for p in xy)])
        out_xy = torch.zeros(len(xy), size, 2)
        mask = torch.zeros(len(xy), size, dtype=torch.bool)
        for i, points in enumerate(xy):
            out_xy[i, :len(points)] = points.float()
            mask[i, :len(points)] = True

        def padded(values, dtype):
            if values is None:
                return None
            out = torch.zeros(len(xy), size, dtype=dtype)
            for i, v in enumerate(values):
                out[i, :len(v)] = v.to(dtype)
            return out.to(device)

        device = device if device is not None else background.device
        return cls(out_xy.to(device), mask.to(device), padded(photons, torch.float32), background.float().to(device),
                   padded(bounds, torch.float64), padded(psf_sigma, torch.float32), padded(joint_bounds, torch.float64))
