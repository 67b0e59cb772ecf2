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
  and the matched filter is ``argmax``. It is told the true blur: a bound, not a detector one could deploy.
- ``matched_filter_bank``: the same statistic for an unknown blur (the generalized likelihood ratio test): for
  every sigma of a bank (``BANK_SIGMAS``: 0, 0.25, ..., 2.5 px) <image, s_k,sigma> / |s_k,sigma|, the image's
  answer the (position, sigma) with the largest score. Realizable: it is told nothing. Noise-free, Cauchy-Schwarz
  makes the true (position, sigma) the unique maximum whenever the blur is in the bank, at the border too.

Ties (a flat image) go to the first pixel in row-major order, as ``torch.argmax`` does.
"""

from __future__ import annotations

import math

import torch

from pixel_spotter.data import corruptions

DETECTORS = ("argmax", "matched_filter")  # the single-corruption grid's references
BANK = "matched_filter_bank"
BANK_SIGMAS = tuple(0.25 * i for i in range(11))  # 0, 0.25, ..., 2.5 px: the benchmark's blurs and beyond
ALL_DETECTORS = (*DETECTORS, BANK)  # the combined grid's references


def argmax(images: torch.Tensor) -> torch.Tensor:
    """(N, 2) integer (x, y) of each image's brightest pixel (x = column, y = row)."""
    n, _, _, width = images.shape
    flat = images.reshape(n, -1).argmax(dim=1)
    return torch.stack([flat % width, flat // width], dim=1)


def normalized_correlation(images: torch.Tensor, blur_sigma: float) -> torch.Tensor:
    """(N, 1, H, W): the images correlated with a Gaussian kernel of ``blur_sigma`` px, divided by
    sqrt(sum K^2 inside the image) up to a factor that depends on sigma only (``bank_factor``); sigma 0: the
    images themselves (the identity kernel's energy is 1 everywhere)."""
    if blur_sigma <= 0:
        return images.float()
    n, _, height, width = images.shape
    radius = corruptions.kernel_radius(blur_sigma)
    sigma = torch.full((n,), float(blur_sigma), device=images.device)
    correlation = corruptions.blur(images.float(), sigma, radius)
    # sum over the image of K(q - k)^2: K^2 is the Gaussian of sigma / sqrt(2), up to a constant factor
    inside = torch.ones(1, 1, height, width, device=images.device)
    energy = corruptions.blur(inside, sigma[:1] / math.sqrt(2), radius)
    return correlation / energy.sqrt()


def bank_factor(blur_sigma: float) -> float:
    """What turns ``normalized_correlation`` into <image, s> / |s| exactly: blur's K^2 kernel is normalized to
    sum 1, the true one sums to (sum_i k_i^2)^2 (k the 1-D kernel), so |s| lacks a factor sum_i k_i^2. One sigma
    alone does not need it (argmax ignores a constant); comparing scores across sigmas does."""
    if blur_sigma <= 0:
        return 1.0
    k = corruptions.gaussian_kernels(torch.tensor([float(blur_sigma)]), corruptions.kernel_radius(blur_sigma))
    return 1.0 / float((k.double() ** 2).sum())


def matched_filter(images: torch.Tensor, blur_sigma: float = 0.0) -> torch.Tensor:
    """(N, 2) integer (x, y): argmax of the images correlated with a Gaussian kernel of ``blur_sigma`` px (the
    blur the images went through; 0 = none, then this is ``argmax``), normalized by the kernel's energy
    inside the image at each position."""
    if blur_sigma <= 0:
        return argmax(images)
    return argmax(normalized_correlation(images, blur_sigma))


def bank_scores(images: torch.Tensor, sigmas=BANK_SIGMAS) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, H, W) best score over the bank at each position, and the index into ``sigmas`` that gave it
    (the first of equal ones)."""
    best, which = None, None
    for i, sigma in enumerate(sigmas):
        score = normalized_correlation(images, sigma) * bank_factor(sigma)
        if best is None:
            best, which = score, torch.zeros_like(score, dtype=torch.long)
            continue
        better = score > best
        best, which = torch.where(better, score, best), torch.where(better, i, which)
    return best, which


def matched_filter_bank(images: torch.Tensor, sigmas=BANK_SIGMAS, return_sigma: bool = False):
    """(N, 2) integer (x, y) of each image's best (position, sigma) over the bank; with ``return_sigma`` also
    (N,) the sigma it chose (the blur estimate)."""
    best, which = bank_scores(images, sigmas)
    xy = argmax(best)
    if not return_sigma:
        return xy
    chosen = which[torch.arange(len(xy), device=xy.device), 0, xy[:, 1], xy[:, 0]]
    return xy, torch.tensor(sigmas, dtype=torch.float32, device=xy.device)[chosen]


def detect(name: str, images: torch.Tensor, blur_sigma: float = 0.0) -> torch.Tensor:
    """The detector called ``name`` (one of ALL_DETECTORS) on ``images``; ``blur_sigma`` is what the matched
    filter is matched to (argmax and the bank ignore it)."""
    if name == "argmax":
        return argmax(images)
    if name == "matched_filter":
        return matched_filter(images, blur_sigma)
    if name == BANK:
        return matched_filter_bank(images)
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(ALL_DETECTORS)}")
