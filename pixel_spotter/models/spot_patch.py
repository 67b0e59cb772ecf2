"""SpotPatch: detect, cut out a patch, regress the sub-pixel offset (``model=spot_patch``, made for ``data=spot``).

1. detect: the argmax of the image smoothed by a ``smooth`` x ``smooth`` box (a box sum resists single noisy
   pixels), or with ``detect_sigma`` of a border-normalized Gaussian matched filter of that width, pixel (r, c);
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

With ``refine`` > 0 (``model=spot_fit``) a physics step joins in between 3. and 4.: ``refine`` Levenberg–Marquardt
steps of the maximum-likelihood fit of a pixelated Gaussian to the patch's photon counts (input x ``input_scale``),
with x, y, photons, background AND sigma_psf free (``spots.fit.fit_ml_free_sigma``: the model is never told the
PSF's width), started from the three-point estimate. The fitted offset replaces the three-point one as the answer
the MLP corrects, and the fit's (log) photons, background, width and likelihood gain join its input, with the
detected pixel's position in the image (``position``): where the fit is sure (bright spots) the MLP has little to
add; where it is not (dim spots in high background, where a detection can be a noise peak) the MLP learns from
the data how far to trust it and where to pull the answer instead. The fit has no weights and no gradient.

Output: normalized (c + dx) / (W - 1), (r + dy) / (H - 1), as every network here; train with MSE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import ListConfig
from torch import nn

from pixel_spotter.errors import ConfigError
from pixel_spotter.models import require_bool, require_int
from pixel_spotter.spots.detect import lower_median, matched_filter
from pixel_spotter.spots.fit import fit_ml_free_sigma

_TINY = 1e-6  # floor of the background and amplitude (input units) before their log


class SpotPatch(nn.Module):
    min_input_size = 3
    weights_used = "random init"

    def __init__(self, height: int = 32, width: int = 32, patch: int = 7, hidden: int = 256, layers: int = 3,
                 smooth: int = 3, estimates: bool = True, symmetric: bool = True, refine: int = 0,
                 input_scale: float = 1.0, sigma_bounds=(0.5, 3.0), position: bool = False,
                 detect_sigma: float | None = None, shrink: bool = False):
        super().__init__()
        require_bool("estimates", estimates)
        require_bool("symmetric", symmetric)
        require_bool("position", position)
        require_bool("shrink", shrink)
        numeric = isinstance(detect_sigma, (int, float)) and not isinstance(detect_sigma, bool)
        if detect_sigma is not None and not (numeric and 0.3 <= detect_sigma <= 10):
            raise ConfigError(f"model.net.detect_sigma must be null (box detection) or a PSF width in px in [0.3, 10], "
                              f"got {detect_sigma!r}; e.g. model.net.detect_sigma=1.5")
        self.detect_sigma = None if detect_sigma is None else float(detect_sigma)
        self.shrink = shrink
        if shrink and detect_sigma is None:
            raise ConfigError("model.net.shrink needs model.net.detect_sigma (the detection's signal-to-noise "
                              "decides how far to pull); e.g. model.net.detect_sigma=1.5")
        # the pull toward the image centre: sigmoid(slope (snr0 - snr)), at first half-way at snr 3 and 3e-4 at 7
        self.shrink_snr = nn.Parameter(torch.tensor(3.0)) if shrink else None
        self.shrink_log_slope = nn.Parameter(torch.tensor(0.7)) if shrink else None
        self.estimates, self.symmetric, self.position = estimates, symmetric, position
        largest = 2 * max(int(height), int(width)) + 1  # a patch or box beyond this is only padding
        require_int("patch", patch, 7, minimum=3, odd=True, maximum=largest)
        require_int("hidden", hidden, 256)
        require_int("layers", layers, 3)
        require_int("smooth", smooth, 3, odd=True, maximum=largest)
        require_int("refine", refine, 10, minimum=0, maximum=100)
        if refine and not estimates:
            raise ConfigError("model.net.refine needs model.net.estimates=true (the fit starts from the three-point "
                              "estimate); e.g. model.net.estimates=true")
        if not (isinstance(input_scale, (int, float)) and not isinstance(input_scale, bool) and input_scale > 0):
            raise ConfigError(f"model.net.input_scale must be a number > 0 (photons per unit of input), got "
                              f"{input_scale!r}; e.g. model.net.input_scale=${{data.spot.input_scale}}")
        bounds = list(sigma_bounds) if isinstance(sigma_bounds, (list, tuple, ListConfig)) else None
        if not (bounds and len(bounds) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                                    for b in bounds) and 0 < bounds[0] < bounds[1]):
            raise ConfigError(f"model.net.sigma_bounds must be [lo, hi] px with 0 < lo < hi, got {sigma_bounds!r}; "
                              "e.g. model.net.sigma_bounds=[0.5,3.0]")
        self.refine, self.input_scale, self.sigma_bounds = int(refine), float(input_scale), tuple(map(float, bounds))
        self.height, self.width, self.patch, self.smooth = int(height), int(width), int(patch), int(smooth)
        extra = (4 if estimates else 0) + (6 if refine else 0) + (2 if position else 0)  # see forward's scalars
        sizes = [2 * patch * patch + 2 + extra] + [hidden] * (layers - 1)
        blocks = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            blocks += [nn.Linear(fan_in, fan_out), nn.GELU()]
        last = nn.Linear(sizes[-1], 2)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*blocks, last)

    def detect(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(row, column, smoothed peak value) (B,) of each image's brightest ``smooth`` x ``smooth`` box; with
        ``detect_sigma`` the position is instead the maximum of a matched filter's signal-to-noise map
        (``spots.detect.matched_filter``), the peak value still the box's there."""
        return self._detect(images)[:3]

    def _detect(self, images: torch.Tensor):
        """``detect`` plus the detection score at the chosen pixel (B,)."""
        box = F.avg_pool2d(images, self.smooth, stride=1, padding=self.smooth // 2, count_include_pad=False)
        score = box if self.detect_sigma is None else matched_filter(images, self.detect_sigma)
        best, flat = score.flatten(1).max(dim=1)
        peak = box.flatten(1).gather(1, flat[:, None])[:, 0]
        width = images.shape[-1]
        return flat // width, flat % width, peak, best

    def features(self, images: torch.Tensor):
        """The canonical (mirrored) normalized patch z (B, K, K) and its validity mask, [log amplitude, log
        background] (B,) each, the detected (row, column) (B,), and the sign (B, 2) of the patch's x and y."""
        batch, _, height, width = images.shape
        im = images[:, 0]
        row, col, peak, best = self._detect(images)
        background = lower_median(im.flatten(1))
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
        # (and/or, not torch.where: onnxruntime has no Where on bool tensors)
        fx, fy = flip_x[:, None, None], flip_y[:, None, None]
        mask = (fx & mask.flip(2)) | (~fx & mask)
        mask = (fy & mask.flip(1)) | (~fy & mask)
        z = (cut - background[:, None, None]) / amplitude[:, None, None] * mask
        logs = [amplitude.log(), background.clamp(min=_TINY).log()]
        if self.position:  # where the detection is (canonical: 0 at the near border, 0.5 at the centre)
            logs += [torch.minimum(col, width - 1 - col) / (width - 1),
                     torch.minimum(row, height - 1 - row) / (height - 1)]
        sign = torch.stack([1.0 - 2.0 * flip_x.to(z.dtype), 1.0 - 2.0 * flip_y.to(z.dtype)], dim=1)
        # the matched filter's signal-to-noise, score / sqrt(b) in counts (Poisson noise ~ b): ``shrink``'s input
        snr = best / (background.clamp(min=_TINY) / self.input_scale).sqrt()
        return z, mask, logs, row, col, sign, (cut, background, snr)

    def _estimates(self, z: torch.Tensor) -> tuple[list, torch.Tensor]:
        """The patch's centroid offset of max(z, 0) and three-point Gaussian offset (dx, dy) each (B,)."""
        k = self.patch // 2
        weight = z.clamp(min=0)
        total = weight.sum(dim=(1, 2)).clamp(min=_TINY)
        steps = torch.arange(-k, k + 1, device=z.device, dtype=z.dtype)
        centroid = [(weight.sum(dim=1) * steps).sum(dim=1) / total, (weight.sum(dim=2) * steps).sum(dim=1) / total]
        log_z = z[:, k - 1: k + 2, k - 1: k + 2].clamp(min=1e-3).log()
        three = torch.stack([_three_point(log_z[:, 1, 0], log_z[:, 1, 1], log_z[:, 1, 2]),
                             _three_point(log_z[:, 0, 1], log_z[:, 1, 1], log_z[:, 2, 1])], dim=1)
        return centroid, three

    def fit(self, cut: torch.Tensor, mask: torch.Tensor, background: torch.Tensor, start: torch.Tensor):
        """The sigma-free ML fit of the canonical patches (counts = cut x input_scale), started at the offset
        ``start`` (B, 2): (fitted offset (B, 2), its 4 features (B, 4)), in float32 like the input."""
        k = self.patch // 2
        counts = (cut.double() * self.input_scale).clamp(min=0)
        keep = mask.double()
        bg = (background.double() * self.input_scale).clamp(min=1e-3)
        photons = ((counts - bg[:, None, None]) * keep).sum(dim=(1, 2)).clamp(min=1.0)
        sigma0 = sum(self.sigma_bounds) / 2
        init = torch.stack([k + start[:, 0].double(), k + start[:, 1].double(), photons, bg,
                            torch.full_like(bg, sigma0)], dim=1)
        # the spot stays within 2 px of the detected pixel and inside the image: in the canonical frame the
        # missing rows/columns are at the top/left, so the first real one is the count of missing ones
        first_col = (~mask[:, k, :]).sum(dim=1).double() - 0.5
        first_row = (~mask[:, :, k]).sum(dim=1).double() - 0.5
        lower = torch.stack([torch.clamp(first_col, min=k - 2.0), torch.clamp(first_row, min=k - 2.0),
                             torch.full_like(bg, 1e-3), torch.full_like(bg, 1e-3),
                             torch.full_like(bg, self.sigma_bounds[0])], dim=1)
        upper = torch.stack([torch.full_like(bg, k + 2.0), torch.full_like(bg, k + 2.0), torch.full_like(bg, 1e9),
                             torch.full_like(bg, 1e9), torch.full_like(bg, self.sigma_bounds[1])], dim=1)
        result = fit_ml_free_sigma(counts, init, lower, upper, mask, self.refine)
        theta = result.theta
        gain = (result.log_likelihood - result.start_log_likelihood).clamp(min=0)
        feats = torch.stack([theta[:, 2].log(), theta[:, 3].log(), theta[:, 4].log(), gain.log1p()], dim=1)
        offset = torch.stack([theta[:, 0] - k, theta[:, 1] - k], dim=1)
        return offset.to(cut.dtype), feats.to(cut.dtype)

    def _offset(self, z: torch.Tensor, mask: torch.Tensor, scalars: list, base: torch.Tensor | None) -> torch.Tensor:
        """(dx, dy) (B, 2) of canonical patches z (B, K, K): the MLP, plus the offset ``base`` it corrects."""
        feats = torch.cat([z.flatten(1), mask.flatten(1).to(z.dtype), torch.stack(scalars, dim=1)], dim=1)
        offset = self.mlp(feats)
        return offset if base is None else offset + base

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z, mask, logs, row, col, sign, (cut, background, snr) = self.features(images)
        scalars, base, fitted = list(logs), None, []
        if self.estimates:
            centroid, base = self._estimates(z)
            scalars += [*centroid, base[:, 0], base[:, 1]]
            if self.refine:
                base, fitted = self.fit(cut * mask, mask, background, base)
                fitted = list(fitted.unbind(dim=1))
        # the transposed patch's scalars: every (x, y) pair swapped (logs' position pair too)
        swapped = list(scalars)
        pairs = [(2, 3)] if self.position else []
        if self.estimates:
            first = len(logs)
            pairs += [(first, first + 1), (first + 2, first + 3)]
        for i, j in pairs:
            swapped[i], swapped[j] = scalars[j], scalars[i]
        offset = self._offset(z, mask, scalars + fitted + ([base[:, 0], base[:, 1]] if self.refine else []), base)
        if self.symmetric:  # the mean with the transposed patch's answer (x and y swapped back)
            t_scalars = swapped + fitted + ([base[:, 1], base[:, 0]] if self.refine else [])
            t_base = None if base is None else base.flip(1)
            offset = 0.5 * (offset + self._offset(z.transpose(1, 2), mask.transpose(1, 2), t_scalars, t_base).flip(1))
        offset = offset * sign  # the mirrored patch's offset, back in image coordinates
        height, width = images.shape[-2:]
        x = (col.to(offset.dtype) + offset[:, 0]) / (width - 1)
        y = (row.to(offset.dtype) + offset[:, 1]) / (height - 1)
        xy = torch.stack([x, y], dim=1)
        if self.shrink:  # an unsure detection pulled toward the centre, the mean-squared-error guess for a miss
            pull = torch.sigmoid(self.shrink_log_slope.exp() * (self.shrink_snr - snr))
            xy = xy + pull[:, None] * (0.5 - xy)
        return xy


def _three_point(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """The vertex of the parabola through three log intensities at -1, 0, +1 (a Gaussian's exact centre),
    clipped to [-1, 1] (noise can flatten or invert the parabola)."""
    curvature = left - 2 * centre + right
    safe = torch.where(curvature < -1e-3, curvature, torch.full_like(curvature, -1e-3))
    return ((left - right) / (2 * safe)).clamp(-1.0, 1.0)
