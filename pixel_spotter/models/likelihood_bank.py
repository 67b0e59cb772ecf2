"""The likelihood bank: score every pixel by how likely it is that the spot, blurred by some sigma, sits there.

For one spot of amplitude A blurred by kernel w at position p, in white Gaussian noise of sigma n, the log
likelihood ratio against "no spot there" is (A c_p - A^2 e_p / 2) / n^2, with c_p = <image, w shifted to p>
(the correlation) and e_p = the kernel's energy inside the image at p (smaller at the border, where the image
cuts the kernel off). This network computes that for a bank of Gaussian kernels (one per blur sigma, starting
at ``sigmas``), with A the best amplitude within a range (``amplitude``: dimmed spots are still spots,
brighter-than-trained ones are not), n estimated from the image itself (the RMS of neighbouring pixels'
differences: noise adds to it, a spot barely does), the image's median subtracted first (a background offset,
and what clipping leaves of the noise, is not a spot), and a learned log prior per kernel; the score map is
the log-sum-exp over kernels, in nats: a posterior over pixels up to a constant, trained by cross-entropy and
read out by its argmax.

Why not the plain matched-filter bank (``tasks/pixel/references.matched_filter_bank``, the generalized
likelihood ratio with the amplitude free)? With the amplitude free, every wide kernel is a licence to call a
noise blob a spot: on noisy sharp images it is 7 points below argmax (noise sigma 0.3), and a background level
moves it to the border. Bounding the amplitude and dividing by the measured noise make the wide kernels pay
for a blob that is too faint to be the spot, so the same network is argmax on sharp noisy images and the bank
on blurred ones. Everything here is a parameter (each kernel's sigma, the priors, the amplitude range, the
noise gain); training on ``augment=sensor`` adjusts them (experiments/robustness/).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pixel_spotter.data import corruptions
from pixel_spotter.errors import ConfigError
from pixel_spotter.models import require_bool
from pixel_spotter.models.heatmap import hard_argmax
from pixel_spotter.spots.detect import lower_median

DEFAULT_SIGMAS = tuple(0.25 * i for i in range(11))  # 0 ... 2.5 px: the benchmark's blurs and a little beyond


SHARPEST = 1e-3  # px: sigma 0 is learned from here; its kernel is the identity to float precision


def gaussian_rows(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """(K, 2r+1) 1-D Gaussians summing to 1, differentiable in sigma (K,): the 2-D kernel is row x column, what
    ``corruptions.blur`` spreads a pixel into."""
    offsets = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    rows = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None]) ** 2)
    return rows / rows.sum(dim=1, keepdim=True)


def separable(images: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) correlated with each of the K separable kernels rows[k] x rows[k], zero past the border:
    (N, K, H, W)."""
    k, width = rows.shape
    radius = width // 2
    out = F.conv2d(images, rows[:, None, None, :], padding=(0, radius))
    return F.conv2d(out, rows[:, None, :, None], padding=(radius, 0), groups=k)


def _check_number_list(key: str, value, low: float, high: float, example: str, length: int | None = None):
    values = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") else None
    ok = (values is not None and len(values) >= 1 and (length is None or len(values) == length)
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and low <= v <= high
                  for v in values))
    if not ok:
        what = f"{length} numbers" if length else "a non-empty list of numbers"
        raise ConfigError(f"model.net.{key} must be {what} in [{low:g}, {high:g}], got {value!r}; "
                          f"e.g. model.net.{key}={example}")
    return [float(v) for v in values]


def noise_sigma(images: torch.Tensor) -> torch.Tensor:
    """(N,) each image's noise sigma, from the RMS of its horizontal and vertical neighbour differences (each
    difference of white noise has variance 2 n^2; a spot touches a handful of the 2 H W differences)."""
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]
    return ((dx.pow(2).flatten(1).mean(1) + dy.pow(2).flatten(1).mean(1)) / 4).sqrt()


class LikelihoodBank(nn.Module):
    min_input_size = 2  # the noise estimate needs neighbours
    readout_name = "argmax"  # the only one: trained by cross-entropy (training/validation.py checks the loss)
    weights_used = "Gaussian kernel bank (no pretrained weights)"

    def __init__(self, sigmas=DEFAULT_SIGMAS, amplitude=(0.1, 1.0), noise_floor: float = 0.005,
                 learn_sigmas: bool = True):
        super().__init__()
        sigmas = _check_number_list("sigmas", sigmas, 0.0, 5.0, "[0,0.5,1,1.5,2]")
        low, high = _check_number_list("amplitude", amplitude, 1e-3, 100.0, "[0.1,1.0]", length=2)
        if not low < high:
            raise ConfigError(f"model.net.amplitude must be [low, high] with low < high, got {list(amplitude)!r}; "
                              "e.g. model.net.amplitude=[0.1,1.0]")
        if not (isinstance(noise_floor, (int, float)) and not isinstance(noise_floor, bool)
                and math.isfinite(noise_floor) and 1e-6 <= noise_floor <= 1):
            raise ConfigError(f"model.net.noise_floor must be a number in [1e-6, 1], got {noise_floor!r}; "
                              "e.g. model.net.noise_floor=0.005")
        require_bool("learn_sigmas", learn_sigmas)
        self.radius = corruptions.kernel_radius(max(sigmas)) if max(sigmas) > 0 else 0  # 4 sigma of the widest
        # Gaussian kernels, learned through their log sigma (a free 2-D kernel trained on the mix lost its tails
        # and 30 points at blur 2 in 3 epochs; a Gaussian is what the optics of this task do, and separable)
        log_sigma = torch.tensor([math.log(max(s, SHARPEST)) for s in sigmas])
        self.log_sigma = nn.Parameter(log_sigma, requires_grad=learn_sigmas)
        self.log_prior = nn.Parameter(torch.zeros(len(sigmas)))
        self.log_amplitude = nn.Parameter(torch.tensor([math.log(low), math.log(high)]))
        self.log_noise_gain = nn.Parameter(torch.tensor(0.0))
        self.noise_floor = float(noise_floor)

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H, W) log posterior scores (nats, up to a per-image constant)."""
        x = x - lower_median(x.flatten(1))[:, None, None, None]  # sort-based: exports to ONNX
        n = (noise_sigma(x) * self.log_noise_gain.exp()).clamp(min=self.noise_floor)[:, None, None, None]
        rows = gaussian_rows(self.log_sigma.exp(), self.radius)
        c = separable(x, rows)  # (N, K, H, W): <image, kernel at p>
        e = separable(torch.ones_like(x[:1]), rows * rows).clamp(min=1e-12)  # (1, K, H, W): |kernel inside|^2
        low, high = self.log_amplitude.exp().unbind()
        a = torch.minimum(torch.maximum(c / e, low), high)  # the best amplitude allowed
        llr = (a * c - a * a * e / 2) / (n * n) + self.log_prior[None, :, None, None]
        return torch.logsumexp(llr, dim=1)

    def readout(self, scores: torch.Tensor) -> torch.Tensor:
        return hard_argmax(scores)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.score_map(x))
