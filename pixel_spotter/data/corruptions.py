"""Image corruptions, batched with one parameter per image: the write-ups' Gaussian noise, Gaussian blur and blob
spots, plus background offset, dimming and distractor pixels.

Every function takes images (B, 1, H, W) and a (B,) tensor of per-image parameters and returns new images;
nothing here draws random numbers (``tasks/pixel/rendering.py`` draws them, seeded per image) so the robustness
benchmark can apply one exact severity to every image. Images are not clipped unless a config asks for the
sensor stage (``clip``, ``quantize``: ``data.augment.sensor_clip`` / ``sensor_bits``, off by default): unclipped,
noise stays white and Gaussian, which is what makes the matched filter (``tasks/pixel/references.py``) the
optimal detector.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def kernel_radius(max_sigma: float) -> int:
    """Half-width of a Gaussian kernel: 4 sigma keeps 99.99 % of its mass (and its variance within 0.2 %).
    Taken from the largest sigma a config can draw, never from a batch, so an image's blur does not depend on
    the other images in its batch."""
    return max(1, math.ceil(4 * max_sigma))


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, 2r+1) normalized 1-D Gaussian kernels; sigma 0 gives the identity kernel (a 1 at the centre)."""
    offsets = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    sigma = sigma.float().clamp_min(1e-6)[:, None]
    kernels = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernels / kernels.sum(dim=1, keepdim=True)


def blur(images: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Energy-preserving Gaussian blur, a separable convolution with each image's own sigma (zero outside)."""
    b, c, h, w = images.shape
    kernels = gaussian_kernels(sigma, radius).to(images.dtype)
    x = images.reshape(1, b * c, h, w)  # one group per image: each image gets its own kernel
    k = kernels.repeat_interleave(c, dim=0)
    x = F.conv2d(x, k[:, None, None, :], padding=(0, radius), groups=b * c)
    x = F.conv2d(x, k[:, None, :, None], padding=(radius, 0), groups=b * c)
    return x.reshape(b, c, h, w)


def blob(images: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """The write-ups' blob spots: each bright pixel spread into a Gaussian blob whose peak keeps its value
    (a blur rescaled by 1 / centre weight squared), so the spot stays the brightest pixel."""
    centre = gaussian_kernels(sigma, radius)[:, radius].to(images.dtype)
    return blur(images, sigma, radius) / (centre**2)[:, None, None, None]


def scale(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Dimming (factor < 1) or brightening of the whole image."""
    return images * factor.to(images.dtype)[:, None, None, None]


def offset(images: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """A constant background level added to every pixel."""
    return images + background.to(images.dtype)[:, None, None, None]


def add_noise(images: torch.Tensor, std: torch.Tensor, unit_noise: torch.Tensor) -> torch.Tensor:
    """White Gaussian noise: ``unit_noise`` (B, 1, H, W) of standard normal draws, scaled per image."""
    return images + std.to(images.dtype)[:, None, None, None] * unit_noise


def add_distractors(images: torch.Tensor, xy: torch.Tensor, keep: torch.Tensor, intensity: float) -> torch.Tensor:
    """Raise the pixels at ``xy`` (B, K, 2) to ``intensity`` where ``keep`` (B, K) is true: dimmer decoys that
    a detector must not take for the spot (callers draw them off the spot's own pixel)."""
    out = images.clone()
    b, k = keep.shape
    rows = torch.arange(b, device=images.device)[:, None].expand(b, k)[keep]
    pts = xy[keep]
    out[rows, 0, pts[:, 1], pts[:, 0]] = torch.maximum(out[rows, 0, pts[:, 1], pts[:, 0]],
                                                       torch.tensor(intensity, dtype=images.dtype,
                                                                    device=images.device))
    return out


def clip(images: torch.Tensor) -> torch.Tensor:
    """A saturating sensor: below 0 reads as 0 (no light), above 1 as 1 (full well)."""
    return images.clamp(0.0, 1.0)


def quantize(images: torch.Tensor, bits: int) -> torch.Tensor:
    """Images in [0, 1] rounded to the 2**bits levels an image file of ``bits`` bits holds, as read back
    (level / (2**bits - 1)): what ``pixel-spotter predict`` gets from an 8- or 16-bit PNG."""
    top = float(2**bits - 1)
    return torch.round(images * top) / top
