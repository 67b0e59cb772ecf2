"""The sub-pixel spot task (``data=spot``): one Gaussian spot in photon counts per image (``rendering.py``),
its truth the continuous position plus photons, background, sigma_psf and read noise; the bound is the
Cramér–Rao bound of each image, the references the centroid and the maximum-likelihood fit (``metrics.py``)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import torch

from pixel_spotter.checks import is_number, plain, require, require_int
from pixel_spotter.errors import UserError
from pixel_spotter.spots.crlb import crlb_xy
from pixel_spotter.tasks.base import Task, from_run_section
from pixel_spotter.tasks.spot.doubts import spot_doubts
from pixel_spotter.tasks.spot.rendering import SpotParams, SpotSynthesizer

LOSS_WEIGHTS = (None, "crlb")
RANGES = ("photons", "background", "sigma_psf", "read_noise")  # an export contract's trained_ranges
PROBE_LIMIT = 1024  # spot images an export is checked on
OUTPUT_MEANING = ("(N, 2) float32: x = column, y = row of the spot's centre, in pixels, origin top-left (pixel "
                  "centres 0..W-1, 0..H-1; a spot in a border pixel may lie up to half a pixel outside them, "
                  "to the outer pixel edges -0.5..W-0.5, -0.5..H-0.5)")

def scaling(input_scale: float) -> str:
    return (f"files hold photon counts: integer arrays and 8-/16-bit PNGs are counts as they are (no scaling by "
            f"their type), float arrays any finite counts (read noise can make them negative); the network input "
            f"is counts / input_scale = counts / {input_scale:g}, float32")


def spot_params(spot, where: str = "data.spot") -> SpotParams:
    """``data.spot`` as SpotParams, built field by field (never by its _target_), each key checked."""
    known = [f.name for f in fields(SpotParams)]
    unknown = sorted(set(spot) - {*known, "_target_"})
    require(not unknown, f"{where}.{unknown[0] if unknown else ''} is not a spot setting; use {', '.join(known)}")
    return SpotParams(**{k: plain(v) for k, v in spot.items() if k != "_target_"})


def trained_params(ranges, input_scale: float) -> SpotParams:
    """An export contract's ``trained_ranges`` ({photons, background, sigma_psf, read_noise: [lo, hi]}, or
    None: SpotParams' defaults) as SpotParams, each range checked."""
    if ranges is None:
        return SpotParams(input_scale=input_scale)
    wrong = UserError(f"the spot task's trained_ranges must give {', '.join(RANGES)} as [lo, hi] ranges, as "
                      "pixel-spotter export writes them")
    if not (isinstance(ranges, dict) and set(ranges) == set(RANGES)):
        raise wrong
    try:
        return SpotParams(**{k: ranges[k] for k in RANGES}, input_scale=input_scale)
    except UserError:  # config_range's sentence names data.spot.*, not the contract's fields
        raise wrong from None


class SpotTask(Task):
    name = "spot"
    counts = True
    answer_low = -0.5
    settings = {"spot": None, "eval_photons": None, "eval_repeats": 10, "loss_weight": None}

    def __init__(self, height: int, width: int, spot: SpotParams | None = None, eval_photons: list | None = None,
                 eval_repeats: int = 10, loss_weight: str | None = None):
        super().__init__(height, width)
        self.params = spot if spot is not None else SpotParams()
        # the photon counts of results.json's per_photons (RMSE/CRLB per N), each on eval_repeats draws at every
        # test position (metrics.per_photons)
        self.eval_photons = [float(n) for n in eval_photons] if eval_photons else []
        self.eval_repeats = int(eval_repeats)
        # loss_weight=crlb weights each image's loss by 1 / (CRLB_xx + CRLB_yy) of its true parameters, so the loss
        # measures error in units of the bound and bright spots count as much as dim ones
        require(loss_weight in LOSS_WEIGHTS, f"data.loss_weight={loss_weight!r}: choose null or crlb")
        self.loss_weight = loss_weight
        self.renderer = SpotSynthesizer(self.height, self.width, self.params)  # every split: its seed stream differs
        # the ranges the model was trained on, which predict warns far outside of; None: unknown (an export
        # whose contract was written before contracts carried them)
        self.trained: SpotParams | None = self.params

    @classmethod
    def check_config(cls, data, model) -> None:
        photons = plain(data.get("eval_photons"))
        require(photons is None or (isinstance(photons, list) and all(is_number(n) and n > 0 for n in photons)),
                f"data.eval_photons must be a list of photon counts > 0 or null, got {photons!r}; "
                "e.g. data.eval_photons=[200,1000,5000]")
        require_int("data.eval_repeats", data.get("eval_repeats", 1), 1, 10)
        weight = data.get("loss_weight")
        require(weight in LOSS_WEIGHTS, f"data.loss_weight={weight!r}: choose null or crlb")
        spot_params(data.get("spot") or {})

    @classmethod
    def weights_images(cls, data) -> bool:
        return data.get("loss_weight") == "crlb"

    def render(self, split: str, xy: torch.Tensor, seeds: list[int]):
        images, truth = self.renderer(xy, seeds)
        scale = truth.xy.new_tensor([self.width - 1.0, self.height - 1.0])
        return images, (truth.xy / scale).to(torch.float32), truth

    def step_batch(self, images: torch.Tensor, target: torch.Tensor, truth) -> tuple:
        if self.loss_weight != "crlb":
            return images, target
        var_x, var_y = crlb_xy(truth.xy, truth.photons, truth.background, truth.sigma_psf, self.height, self.width,
                               truth.read_noise)
        return images, target, (1.0 / (var_x + var_y)).to(torch.float32)

    def record_results(self, record, datamodule, model) -> None:
        """The test images against the Cramér–Rao bound, the reference estimators on the same images, and
        (``data.eval_photons``) RMSE/CRLB per photon count (metrics.py)."""
        from pixel_spotter.tasks.spot.metrics import evaluate_spots, per_photons

        spot = evaluate_spots(model, datamodule, "test")
        mine = spot["model"]
        record.test = {**record.test, "crlb_rmse_px": spot["crlb_rmse_px"], "rmse2d_px": mine["rmse2d_px"],
                       "rmse_over_crlb": mine["rmse_over_crlb"],
                       "crlb_sigma_unknown_px": spot["crlb_sigma_unknown_px"]}
        record.references = {name: spot[name] for name in ("centroid", "ml_fit")}
        batched = record.inference_ms_per_image.get("batched")
        record.images_per_s = 1000.0 / batched if batched else None
        if self.eval_photons:
            record.per_photons = per_photons(model, datamodule, self.eval_photons, self.eval_repeats)

    def network_input(self, batch: np.ndarray) -> np.ndarray:
        return (batch.astype(np.float64) / self.params.input_scale).astype(np.float32)  # as training fed it

    def image_doubts(self, image: np.ndarray) -> str | None:
        return spot_doubts(image, self.trained)

    def probe_images(self, limit: int = PROBE_LIMIT) -> tuple[np.ndarray, str]:
        """Network inputs (counts / input_scale) of spots rendered with the run's own ``data.spot``, at every
        pixel (row by row) or ``limit`` evenly spaced ones, image i drawn from seed i."""
        count, p = self.height * self.width, self.params
        positions = np.unique(np.linspace(0, count - 1, min(count, limit)).round().astype(np.int64))
        xy = torch.from_numpy(np.stack([positions % self.width, positions // self.width], axis=1))
        images, _ = SpotSynthesizer(self.height, self.width, p)(xy, range(len(positions)))
        return images.numpy(), (
            f"{len(positions)} spot images of {self.height}x{self.width} rendered by SpotSynthesizer with the run's "
            f"data.spot (photons {p.photons[0]:g}..{p.photons[1]:g}, background {p.background[0]:g}.."
            f"{p.background[1]:g}, sigma_psf {p.sigma_psf[0]:g}..{p.sigma_psf[1]:g}), seeds 0..")

    def contract(self) -> dict:
        scale = self.params.input_scale
        fields = {"value_range": None, "input_scale": scale, "scaling": scaling(scale),
                  "output_meaning": OUTPUT_MEANING,
                  "input_values": f"float32 photon counts / {scale:g} (photon counts / input_scale), any finite "
                                  "values; not an image in [0, 1]"}
        if self.trained is not None:  # advisory (only warnings depend on it), so not part of the export's identity
            fields["trained_ranges"] = {k: list(getattr(self.trained, k)) for k in RANGES}
        return fields

    @classmethod
    def from_contract(cls, contract: dict) -> SpotTask:
        scale = contract.get("input_scale")
        if not is_number(scale) or scale <= 0:
            raise UserError(f"the spot task's input_scale must be a finite number > 0 (photons per unit of network "
                            f"input), got {scale!r}")
        ranges = contract.get("trained_ranges")
        task = cls(contract["height"], contract["width"], spot=trained_params(ranges, float(scale)))
        task.trained = task.params if ranges is not None else None  # an older contract: ranges unknown
        return task

    @classmethod
    def from_run_config(cls, data, height: int, width: int, where: str) -> SpotTask:
        spot = data.get("spot")
        if not hasattr(spot, "items"):
            raise UserError(f"{where} has a data.spot that is not a mapping; the run folder is corrupt: retrain")
        return cls(height, width, spot=from_run_section(where, "spot", lambda: spot_params(spot)))


TASK = SpotTask
