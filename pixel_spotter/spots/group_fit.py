"""A maximum-likelihood fit of several overlapping spots at once in one window (``fit_ml_group``): what the frame
model's refinement (``models/frame_refine.py``) fits each localization and its close neighbours with. The same
projected Levenberg–Marquardt on Fisher scoring as the single-spot fits of ``fit.py``."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from pixel_spotter.spots.fit import MIN_BACKGROUND, _projected_step
from pixel_spotter.spots.psf import counts_and_jacobian


class GroupFit(NamedTuple):
    spots: torch.Tensor  # (B, G, 4): x, y (px, in the window's frame), photons, sigma_psf of each spot
    background: torch.Tensor  # (B,) photons per pixel, one per window
    covariance: torch.Tensor  # (B, 4G + 1, 4G + 1): the inverse Fisher information at the fit (inactive spots: 0)
    log_likelihood: torch.Tensor  # (B,) at the fit (up to a constant; with a width prior, plus its log)


def fit_ml_group(counts: torch.Tensor, spots: torch.Tensor, background: torch.Tensor, lower: torch.Tensor,
                 upper: torch.Tensor, active: torch.Tensor, iterations: int = 10,
                 extra: torch.Tensor | None = None, width_prior: float = 0.0) -> GroupFit:
    """Maximum-likelihood fit of G spots at once in each window, each with its own (x, y, photons, sigma_psf),
    over one background: what two overlapping spots need (fitted one at a time, each one's fit takes the other's
    light for its own). The Levenberg–Marquardt of ``fit_ml_free_sigma`` on the joint Poisson likelihood, dense
    Jacobian of 4G + 1 parameters, a fixed number of steps.

    ``counts`` (B, H, W) photons; ``spots``, ``lower``, ``upper`` (B, G, 4) the start and the box of each spot
    (photons' and sigma's lower bounds > 0); ``background`` (B,) its start (kept >= ``MIN_BACKGROUND``);
    ``active`` (B, G) bool: the spots that exist (a window with fewer spots pads with inactive ones, which add no
    light and never move); ``extra`` (B, H, W) fixed expected photons (spots not fitted here). float64.

    ``width_prior`` > 0 (px): a Gaussian prior of that standard deviation on each spot's PSF width, centred at its
    start (a guess that good: the frame network's, whose RMS error that is), so the fit maximizes the posterior.
    Two overlapping spots' widths and separation trade off against each other in the likelihood alone (each
    widens to take the other's light); the prior holds the widths near the guess unless the light says
    otherwise. The covariance is then the posterior's (the Fisher information plus the prior's)."""
    with torch.no_grad():
        counts = counts.to(torch.float64)
        batch, height, width = counts.shape
        groups = spots.shape[1]
        on = active.to(torch.float64)
        fixed = torch.zeros_like(counts) if extra is None else extra.to(counts)
        pack = lambda s, b: torch.cat([s.reshape(batch, 4 * groups), b[:, None]], dim=1)  # noqa: E731
        theta = pack(spots.to(counts), background.to(counts))
        lo = pack(lower.to(counts), torch.full((batch,), MIN_BACKGROUND, dtype=counts.dtype))
        hi = pack(upper.to(counts), torch.full((batch,), math.inf, dtype=counts.dtype))
        held = torch.cat([(~active)[:, :, None].expand(batch, groups, 4).reshape(batch, 4 * groups),
                          torch.zeros(batch, 1, dtype=torch.bool)], dim=1)
        theta = torch.where(held, theta, torch.maximum(torch.minimum(theta, hi), lo))
        lam = torch.full((batch,), 1e-3, dtype=torch.float64)

        def model(t):
            """(mu (B, H, W), its Jacobian (B, 4G + 1, H, W)) at ``t``."""
            s = t[:, :4 * groups].reshape(batch * groups, 4)
            args = (s[:, :2], s[:, 2], 0.0, s[:, 3], height, width)
            light, jac = counts_and_jacobian(*args, with_sigma=True)
            light = (light.view(batch, groups, height, width) * on[:, :, None, None]).sum(dim=1)
            jac = jac[:, [0, 1, 2, 4]].reshape(batch, groups, 4, height, width) * on[:, :, None, None, None]
            jac = torch.cat([jac.reshape(batch, 4 * groups, height, width),
                             torch.ones(batch, 1, height, width, dtype=counts.dtype)], dim=1)
            return light + t[:, -1, None, None] + fixed, jac

        widths = torch.arange(groups, device=counts.device) * 4 + 3  # each spot's PSF width in theta
        centre = theta[:, widths].clone()
        prior = on / width_prior ** 2 if width_prior > 0 else torch.zeros_like(on)  # (B, G) precision, 0: none

        def objective(mu, t):
            """The log-likelihood (up to a constant) plus the widths' log prior."""
            return (counts * torch.log(mu) - mu).sum(dim=(1, 2)) - 0.5 * (prior * (t[:, widths] - centre) ** 2).sum(1)

        def information(jac, mu):
            fisher = torch.einsum("bphw,bqhw->bpq", jac, jac / mu[:, None])
            fisher[:, widths, widths] += prior
            return fisher

        # each candidate is evaluated with its Jacobian: an accepted step's is the next step's, and the last one's
        # gives the Fisher information at the fit (one model evaluation per step)
        mu, jac = model(theta)
        current = objective(mu, theta)
        for _ in range(iterations):
            fisher = information(jac, mu)
            grad = torch.einsum("bphw,bhw->bp", jac, counts / mu - 1.0)
            grad[:, widths] -= prior * (theta[:, widths] - centre)
            cand = _projected_step(theta, grad, fisher, lam, lo, hi, held)
            mu_cand, jac_cand = model(cand)
            new = objective(mu_cand, cand)
            accept = torch.isfinite(new) & (new >= current)
            theta = torch.where(accept[:, None], cand, theta)
            mu = torch.where(accept[:, None, None], mu_cand, mu)
            jac = torch.where(accept[:, None, None, None], jac_cand, jac)
            current = torch.where(accept, new, current)
            lam = torch.where(accept, (lam / 10).clamp(min=1e-9), (lam * 10).clamp(max=1e12))
        fisher = information(jac, mu)
        # inactive spots' rows are 0: invert with a 1 on their diagonal, then give them 0 back
        eye = torch.diag_embed(held.to(fisher))
        inverse, info = torch.linalg.inv_ex(fisher + eye)
        inverse = torch.where((info == 0)[:, None, None], inverse, math.nan)  # not identifiable: no bound
        covariance = inverse * (~held[:, :, None] & ~held[:, None, :])
        out = theta[:, :4 * groups].reshape(batch, groups, 4)
        return GroupFit(out, theta[:, -1], covariance, current)
