"""Reference detectors for the robustness benchmark: no learning, (N, 1, H, W) images -> (N, 2) pixel (x, y).

- ``argmax``: the brightest pixel. Exact on any image whose spot is its strictly brightest pixel: clean,
  dimmed (a scale > 0 keeps the order), offset by a background (a constant keeps the order), or with
  decoys dimmer than the spot.
- ``matched_filter``: correlate the image with the blur kernel the spot went through (a Gaussian of the
  severity's sigma, ``corruptions.blur`` itself, which is symmetric, so convolution = correlation), divide by
  that kernel's energy inside the image, sqrt(sum K^2), then take the argmax. For a known blur in additive
  white Gaussian noise this is the optimal detector: with s_k the blurred spot at k and its amplitude A
  unknown (dimming), the maximum-likelihood location maximizes <image, s_k> / |s_k|. Away from the border
  |s_k| is the same for every k and this is the textbook matched filter (correlate, then argmax); at the
  border the image cuts the kernel off, and without the division the answers drift inward (noise-free
  16x16 images blurred with sigma 2: 56 % exact instead of 100 %). With sigma 0 the kernel is the identity
  and the matched filter is ``argmax``.

Ties (a flat image) go to the first pixel in row-major order, as ``torch.argmax`` does.
"""

from __future__ import annotations

import math

import torch

from pixel_spotter.data import corruptions

DETECTORS = ("argmax", "matched_filter")


def argmax(images: torch.Tensor) -> torch.Tensor:
    """(N, 2) integer (x, y) of each image's brightest pixel (x = column, y = row)."""
    n, _, _, width = images.shape
    flat = images.reshape(n, -1).argmax(dim=1)
    return torch.stack([flat % width, flat // width], dim=1)


def matched_filter(images: torch.Tensor, blur_sigma: float = 0.0) -> torch.Tensor:
    """(N, 2) integer (x, y): argmax of the images correlated with a Gaussian kernel of ``blur_sigma`` px (the
    blur the images went through; 0 = none, then this is ``argmax``), normalized by the kernel's energy
    inside the image at each position."""
    if blur_sigma <= 0:
        return argmax(images)
    n, _, height, width = images.shape
    radius = corruptions.kernel_radius(blur_sigma)
    sigma = torch.full((n,), float(blur_sigma), device=images.device)
    correlation = corruptions.blur(images.float(), sigma, radius)
    # sum over the image of K(q - k)^2: K^2 is the Gaussian of sigma / sqrt(2), up to a constant factor
    inside = torch.ones(1, 1, height, width, device=images.device)
    energy = corruptions.blur(inside, sigma[:1] / math.sqrt(2), radius)
    return argmax(correlation / energy.sqrt())


def detect(name: str, images: torch.Tensor, blur_sigma: float = 0.0) -> torch.Tensor:
    """The detector called ``name`` (one of DETECTORS) on ``images``; ``blur_sigma`` is what the matched
    filter is matched to (argmax ignores it)."""
    if name == "argmax":
        return argmax(images)
    if name == "matched_filter":
        return matched_filter(images, blur_sigma)
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
