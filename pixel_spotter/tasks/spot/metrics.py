"""``data=spot`` against the Cramér–Rao bound: a trained model and the reference estimators on the same images.

Errors are 2D: ``rmse2d_px`` = sqrt(mean over images of dx^2 + dy^2), and the bound ``crlb_rmse_px`` =
sqrt(mean over images of CRLB_xx + CRLB_yy), each image's CRLB from ``spots.crlb`` at its true (x, y, photons,
background, sigma_psf, read noise) with x, y, photons and background unknown (sigma_psf known, as the ML fit
knows it: a model that is not told sigma_psf faces a slightly harder task than the bound assumes).
``rmse_over_crlb`` = rmse2d_px / crlb_rmse_px (1.0: at the bound; a biased estimator, e.g. a posterior mean,
can go a little below it). ``crlb_sigma_unknown_px``: the same bound with sigma_psf a fifth unknown, the limit of
an unbiased estimator that is not told the PSF's width (per_photons' ``sigma_unknown``: it over the bound).
``rmse_px`` keeps metrics.py's convention, the RMSE per coordinate (sqrt(mean of dx^2 and dy^2) = rmse2d_px /
sqrt 2), so it matches ``test.rmse_px``.

References: ``centroid`` (``spots.fit.centroid``, background the border median, window radius
max(2, ceil(3 sigma_psf_max))) and ``ml_fit`` (``spots.fit.fit_ml``, per image, told each image's sigma_psf and
read noise); images/s are measured on the model's device with the threads torch has, rendering excluded.
"""

from __future__ import annotations

import math
import time

import torch

from pixel_spotter.data.seeds import STREAMS, sample_seed
from pixel_spotter.spots.crlb import crlb_xy
from pixel_spotter.spots.fit import centroid, fit_ml
from pixel_spotter.tasks.spot.rendering import SpotParams, SpotSynthesizer

ESTIMATORS = ("model", "centroid", "ml_fit")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(datamodule, params: SpotParams, split: str, repeats: int, batch_size: int, device):
    """(images, truth) of ``split``'s positions, ``repeats`` times round (new draws each time) under ``params``."""
    datamodule.setup()
    positions = datamodule.positions[split]
    synth = SpotSynthesizer(datamodule.height, datamodule.width, params)
    count = len(positions) * repeats
    for start in range(0, count, batch_size):
        keys = range(start, min(start + batch_size, count))
        xy = positions[torch.tensor([k % len(positions) for k in keys], dtype=torch.long)].to(device)
        yield synth(xy, [sample_seed(datamodule.seed, STREAMS[split], k) for k in keys])


@torch.inference_mode()
def evaluate_spots(model, datamodule, split: str = "test", repeats: int = 1, params: SpotParams | None = None,
                   batch_size: int = 1024, references: bool = True) -> dict:
    """{"crlb_rmse_px", "images", and per estimator (``ESTIMATORS``) {rmse_px, rmse2d_px, rmse_over_crlb,
    images_per_s}} on ``split``'s images (repeats=1, params=None: exactly the images the trainer tested)."""
    params = params or datamodule.task.params
    device = model.device
    model.eval()
    radius = max(2, math.ceil(3 * params.sigma_psf[1]))
    names = ESTIMATORS if references else ESTIMATORS[:1]
    sq = {name: [] for name in names}
    seconds = dict.fromkeys(names, 0.0)
    bounds, blind, converged = [], [], []
    height, width = datamodule.height, datamodule.width
    for images, truth in _batches(datamodule, params, split, repeats, batch_size, device):
        _sync(device)
        start = time.perf_counter()
        pred = model.predict_pixels(images).double()
        _sync(device)
        seconds["model"] += time.perf_counter() - start
        estimates = {"model": pred}
        if references:
            counts = images[:, 0].double() * params.input_scale
            start = time.perf_counter()
            estimates["centroid"] = centroid(counts, radius=radius)
            _sync(device)
            seconds["centroid"] += time.perf_counter() - start
            start = time.perf_counter()
            fit = fit_ml(counts, truth.sigma_psf, read_noise=truth.read_noise)
            _sync(device)
            seconds["ml_fit"] += time.perf_counter() - start
            estimates["ml_fit"] = fit.xy
            converged.append(fit.converged.double())
        for name, xy in estimates.items():
            sq[name].append(((xy - truth.xy) ** 2).sum(dim=1))
        var_x, var_y = crlb_xy(truth.xy, truth.photons, truth.background, truth.sigma_psf, height, width,
                               truth.read_noise)
        bounds.append(var_x + var_y)
        var_x, var_y = crlb_xy(truth.xy, truth.photons, truth.background, truth.sigma_psf, height, width,
                               truth.read_noise, free_sigma=True)
        blind.append(var_x + var_y)
    bound = math.sqrt(float(torch.cat(bounds).mean()))
    n = int(sum(len(b) for b in bounds))
    out: dict = {"crlb_rmse_px": bound, "crlb_sigma_unknown_px": math.sqrt(float(torch.cat(blind).mean())), "images": n}
    for name in names:
        mse2d = float(torch.cat(sq[name]).mean())
        out[name] = {"rmse_px": math.sqrt(mse2d / 2), "rmse2d_px": math.sqrt(mse2d),
                     "rmse_over_crlb": math.sqrt(mse2d) / bound,
                     "images_per_s": n / seconds[name] if seconds[name] > 0 else None}
    if references:
        out["ml_fit"]["converged"] = float(torch.cat(converged).mean())
    return out


def per_photons(model, datamodule, photons, repeats: int = 10, split: str = "test", references: bool = True,
                **fixed: float) -> list[dict]:
    """RMSE/CRLB against photon count: one row per N (the data's other ranges, or ``fixed`` values, e.g.
    background=10, sigma_psf=1), each on ``repeats`` draws at every ``split`` position, the same draws (offsets,
    backgrounds, noise seeds) at every N."""
    rows = []
    for n in photons:
        result = evaluate_spots(model, datamodule, split, repeats, datamodule.task.params.fixed(photons=n, **fixed),
                                references=references)
        row = {"photons": float(n), "crlb_rmse_px": result["crlb_rmse_px"], "images": result["images"],
               "sigma_unknown": result["crlb_sigma_unknown_px"] / result["crlb_rmse_px"]}
        for name in ESTIMATORS if references else ESTIMATORS[:1]:
            row[name] = result[name]["rmse_over_crlb"]
        rows.append(row)
    return rows
