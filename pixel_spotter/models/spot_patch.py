"""SpotPatch: detect, cut out a patch, regress the sub-pixel offset (``model=spot_patch``, made for ``data=spot``).

1. detect: the argmax of the image smoothed by a ``smooth`` x ``smooth`` box (a box sum resists single noisy
   pixels), pixel (r, c);
2. patch: the ``patch`` x ``patch`` pixels around (r, c), gathered by index for the whole batch at once; the image
   is zero-padded so a spot on the border pixels gets a full patch, with a validity mask saying which pixels
   are real;
3. normalize: background = the image's median, amplitude = the smoothed peak minus it; the patch becomes
   (patch - background) / amplitude (0 outside the image), so the MLP sees the spot's shape at one scale
   whatever its photons, plus log(amplitude) and log(background) (the signal-to-noise it needs to weight the
   pixels as a maximum-likelihood fit would: the input is photon counts / a fixed scale, nothing is hidden);
4. an MLP maps (patch, mask, log amplitude, log background) to the offset (dx, dy) in pixels from (r, c); its
   last layer starts at zero, so an untrained net answers the detected pixel.

Output: normalized (c + dx) / (W - 1), (r + dy) / (H - 1), as every network here; train with MSE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixel_spotter.models import require_int

_TINY = 1e-6  # floor of the background and amplitude (input units) before their log


class SpotPatch(nn.Module):
    min_input_size = 3
    weights_used = "random init"

    def __init__(self, height: int = 32, width: int = 32, patch: int = 7, hidden: int = 256, layers: int = 3,
                 smooth: int = 3):
        super().__init__()
        require_int("patch", patch, 7, minimum=3, odd=True)
        require_int("hidden", hidden, 256)
        require_int("layers", layers, 3)
        require_int("smooth", smooth, 3, odd=True)
        self.height, self.width, self.patch, self.smooth = int(height), int(width), int(patch), int(smooth)
        sizes = [2 * patch * patch + 2] + [hidden] * (layers - 1)
        blocks = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            blocks += [nn.Linear(fan_in, fan_out), nn.GELU()]
        last = nn.Linear(sizes[-1], 2)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*blocks, last)

    def detect(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(row, column, smoothed peak value) (B,) of each image's brightest ``smooth`` x ``smooth`` box."""
        box = F.avg_pool2d(images, self.smooth, stride=1, padding=self.smooth // 2, count_include_pad=False)
        peak, flat = box.flatten(1).max(dim=1)
        width = images.shape[-1]
        return flat // width, flat % width, peak

    def features(self, images: torch.Tensor):
        """The MLP's input (B, 2 K^2 + 2) and the detected (row, column) (B,)."""
        batch, _, height, width = images.shape
        im = images[:, 0]
        row, col, peak = self.detect(images)
        background = im.flatten(1).median(dim=1).values
        amplitude = (peak - background).clamp(min=_TINY)
        k = self.patch // 2
        offsets = torch.arange(-k, k + 1, device=images.device)
        rows, cols = row[:, None] + offsets, col[:, None] + offsets  # (B, K) in image coordinates
        padded = F.pad(im, (k, k, k, k))
        index = torch.arange(batch, device=images.device)[:, None, None]
        cut = padded[index, rows[:, :, None] + k, cols[:, None, :] + k]  # (B, K, K)
        mask = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
        z = (cut - background[:, None, None]) / amplitude[:, None, None] * mask
        scalars = torch.stack([amplitude.log(), background.clamp(min=_TINY).log()], dim=1)
        return torch.cat([z.flatten(1), mask.flatten(1).to(z.dtype), scalars], dim=1), row, col

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats, row, col = self.features(images)
        offset = self.mlp(feats)
        height, width = images.shape[-2:]
        x = (col.to(offset.dtype) + offset[:, 0]) / (width - 1)
        y = (row.to(offset.dtype) + offset[:, 1]) / (height - 1)
        return torch.stack([x, y], dim=1)
