"""SpotPatch: detect, cut out a patch, regress the sub-pixel offset (``model=spot_patch``, made for ``data=spot``).

1. detect: the argmax of the image smoothed by a ``smooth`` x ``smooth`` box (a box sum resists single noisy
   pixels), pixel (r, c);
2. patch: the ``patch`` x ``patch`` pixels around (r, c), gathered by index for the whole batch at once; the image
   is zero-padded so a spot on the border pixels gets a full patch, with a validity mask saying which pixels
   are real; the patch is mirrored so that (r, c) lies in the image's top-left quarter (any border is then
   above or left of the centre: half the border cases to learn), and the offset mirrored back at the end;
3. normalize: background = the image's median, amplitude = the smoothed peak minus it; the patch becomes
   (patch - background) / amplitude (0 outside the image), so the MLP sees the spot's shape at one scale
   whatever its photons, plus log(amplitude) and log(background) (the signal-to-noise it needs to weight the
   pixels as a maximum-likelihood fit would: the input is photon counts / a fixed scale, nothing is hidden);
4. an MLP maps (patch, mask, log amplitude, log background) to the offset (dx, dy) in pixels from (r, c); its
   last layer starts at zero, so an untrained net answers the detected pixel. With ``estimates`` (default) two
   classical offsets join the input, the patch's centroid of max(z, 0) and the three-point Gaussian
   interpolation ((ln z_-1 - ln z_+1) / (2 (ln z_-1 - 2 ln z_0 + ln z_+1)) per axis, clipped to +-1 px), and
   the MLP answers a correction to the latter: a bright spot is then nearly solved before the MLP starts,
   which the MLP alone reaches only slowly (its error is a fraction of a percent of a pixel there). With
   ``symmetric`` (default) the answer is the mean of the MLP on the patch and on its transpose (x and y
   swapped back): symmetric by construction, and the MLP's own approximation errors partly average out.

Output: normalized (c + dx) / (W - 1), (r + dy) / (H - 1), as every network here; train with MSE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixel_spotter.models import require_bool, require_int

_TINY = 1e-6  # floor of the background and amplitude (input units) before their log


class SpotPatch(nn.Module):
    min_input_size = 3
    weights_used = "random init"

    def __init__(self, height: int = 32, width: int = 32, patch: int = 7, hidden: int = 256, layers: int = 3,
                 smooth: int = 3, estimates: bool = True, symmetric: bool = True):
        super().__init__()
        require_bool("estimates", estimates)
        require_bool("symmetric", symmetric)
        self.estimates, self.symmetric = estimates, symmetric
        require_int("patch", patch, 7, minimum=3, odd=True)
        require_int("hidden", hidden, 256)
        require_int("layers", layers, 3)
        require_int("smooth", smooth, 3, odd=True)
        self.height, self.width, self.patch, self.smooth = int(height), int(width), int(patch), int(smooth)
        sizes = [2 * patch * patch + 2 + (4 if estimates else 0)] + [hidden] * (layers - 1)
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
        """The canonical (mirrored) normalized patch z (B, K, K) and its validity mask, [log amplitude, log
        background] (B,) each, the detected (row, column) (B,), and the sign (B, 2) of the patch's x and y."""
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
        # canonical orientation: mirrored so the detected pixel lies in the image's top-left quarter, so a border
        # is always above or left of the patch centre (half the border cases to learn); forward mirrors back
        flip_x, flip_y = col > (width - 1) / 2, row > (height - 1) / 2
        cut = torch.where(flip_x[:, None, None], cut.flip(2), cut)
        cut = torch.where(flip_y[:, None, None], cut.flip(1), cut)
        mask = torch.where(flip_x[:, None, None], mask.flip(2), mask)
        mask = torch.where(flip_y[:, None, None], mask.flip(1), mask)
        z = (cut - background[:, None, None]) / amplitude[:, None, None] * mask
        logs = [amplitude.log(), background.clamp(min=_TINY).log()]
        sign = torch.stack([1.0 - 2.0 * flip_x.to(z.dtype), 1.0 - 2.0 * flip_y.to(z.dtype)], dim=1)
        return z, mask, logs, row, col, sign

    def _offset(self, z: torch.Tensor, mask: torch.Tensor, logs: list) -> torch.Tensor:
        """(dx, dy) (B, 2) of canonical patches z (B, K, K): the MLP, plus the three-point offset it corrects."""
        k = self.patch // 2
        scalars, base = list(logs), None
        if self.estimates:
            weight = z.clamp(min=0)
            total = weight.sum(dim=(1, 2)).clamp(min=_TINY)
            steps = torch.arange(-k, k + 1, device=z.device, dtype=z.dtype)
            scalars += [(weight.sum(dim=1) * steps).sum(dim=1) / total, (weight.sum(dim=2) * steps).sum(dim=1) / total]
            log_z = z[:, k - 1: k + 2, k - 1: k + 2].clamp(min=1e-3).log()
            base = torch.stack([_three_point(log_z[:, 1, 0], log_z[:, 1, 1], log_z[:, 1, 2]),
                                _three_point(log_z[:, 0, 1], log_z[:, 1, 1], log_z[:, 2, 1])], dim=1)
            scalars += [base[:, 0], base[:, 1]]
        feats = torch.cat([z.flatten(1), mask.flatten(1).to(z.dtype), torch.stack(scalars, dim=1)], dim=1)
        offset = self.mlp(feats)
        return offset if base is None else offset + base

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z, mask, logs, row, col, sign = self.features(images)
        offset = self._offset(z, mask, logs)
        if self.symmetric:  # the mean with the transposed patch's answer (x and y swapped back)
            offset = 0.5 * (offset + self._offset(z.transpose(1, 2), mask.transpose(1, 2), logs).flip(1))
        offset = offset * sign  # the mirrored patch's offset, back in image coordinates
        height, width = images.shape[-2:]
        x = (col.to(offset.dtype) + offset[:, 0]) / (width - 1)
        y = (row.to(offset.dtype) + offset[:, 1]) / (height - 1)
        return torch.stack([x, y], dim=1)


def _three_point(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """The vertex of the parabola through three log intensities at -1, 0, +1 (a Gaussian's exact centre),
    clipped to [-1, 1] (noise can flatten or invert the parabola)."""
    curvature = left - 2 * centre + right
    safe = torch.where(curvature < -1e-3, curvature, torch.full_like(curvature, -1e-3))
    return ((left - right) / (2 * safe)).clamp(-1.0, 1.0)
