"""FrameLocalizer: the LightningModule of the frame tasks (data=pixels, data=emitters), where an image holds a set.

It wraps a fully convolutional network (``frame_net.FrameNet``) whose maps ``frame_maps`` reads, trains it with one
of ``frame_losses``, and scores its decoded localizations against the true sets with the task's tally (the
localization-microscopy challenge's matching, ``evaluation/localizations.py``), logged per validation and test
epoch as ``val/<metric>``. The decode has two settings, the detection threshold and (``local_max``) the split
threshold of a second emitter beside a maximum (``frame_maps``): before the test both are chosen on the validation
frames (``tune_threshold``), the threshold first, then the split with it, each the value that maximizes the metric
the checkpoint watches (``monitor``), and the test is scored with them. An emitter model's predicted sigmas are
then calibrated on the same frames (``frame_calibration.py``): one factor per crowding class, each making the
errors of its class one sigma RMS, and when it refines, the width of the refinement's PSF width prior and the
refined sigmas' own factors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pixel_spotter.models.frame_calibration import (
    CROWDING,
    MIN_WIDTH_ERROR,
    crowding_of_frames,
    psf_width_error,
    sigma_factors,
)
from pixel_spotter.models.frame_losses import LOSSES
from pixel_spotter.models.frame_maps import SPLITS, candidates, read_maps
from pixel_spotter.models.optimizing import Optimized

THRESHOLDS = tuple(np.round(np.arange(0.1, 0.96, 0.05), 2))  # what tune_threshold tries


class FrameLocalizer(Optimized):
    frames = True

    def __init__(self, net: nn.Module, lr: float = 1e-3, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, loss: str = "detection", decode: str = "threshold",
                 threshold: float = 0.5, split: float = 1.0, tune_threshold: bool = True, photon_scale: float = 1.0,
                 refine: int = 0, refine_beyond: float = 0.0, input_scale: float = 1.0,
                 monitor: str = "val/f1", monitor_mode: str = "max", height: int = 50, width: int = 50):
        """``monitor``/``monitor_mode``: the validation metric the best checkpoint is chosen by (the callbacks'
        config reads them from here) and that the threshold is tuned for. ``photon_scale``: photons per unit of
        the photon and background maps. ``refine``: steps of the maximum-likelihood refinement of every
        localization (``frame_refine.py``; 0: the network's answers as they are), of those whose nearest other
        localization is more than ``refine_beyond`` px away (0: every one), on the photons the input is
        ``input_scale`` times (the emitter task's ``data.input_scale``)."""
        super().__init__(net, lr, optimizer, scheduler)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.loss_name, self.loss_fn = loss, LOSSES[loss]
        self.decode = decode
        self.tune_threshold = tune_threshold
        self.photon_scale = float(photon_scale)
        self.refine, self.refine_beyond, self.input_scale = int(refine), float(refine_beyond), float(input_scale)
        self.monitor = monitor
        # buffers: the threshold, and the factor on the predicted sigmas that calibrates them (both chosen on the
        # validation frames before the test; a run's record keeps what its test used, results.json decode.*)
        self.register_buffer("threshold", torch.tensor(float(threshold)))
        self.register_buffer("split", torch.tensor(float(split), dtype=torch.float64))  # exact in the record
        self.register_buffer("sigma_scale", torch.ones(len(CROWDING)))  # one per crowding class
        # the same for a refined localization's sigma (its fit's bound), chosen with the refinement on
        self.register_buffer("refined_sigma_scale", torch.ones(len(CROWDING)))
        # the RMS error (px) of the network's PSF widths: the width of the refinement's prior on each (0: none)
        self.register_buffer("psf_width_error", torch.tensor(0.0, dtype=torch.float64))
        self._tally = None
        self.test_calibration: list[dict] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The raw maps (N, C, H, W)."""
        return self.net(images)

    def candidates(self, images: torch.Tensor):
        return candidates(read_maps(self(images)), self.decode, self.photon_scale)

    @torch.no_grad()
    def localize(self, images: torch.Tensor) -> list[dict]:
        """Per image {xy (K, 2) pixel (x, y), score (K,), and for an emitter model sigma (K, 2) px, photons,
        background, psf_sigma (K,)}, refined by maximum likelihood when ``refine`` > 0 (then also refined (K,) bool:
        whose position and sigma are the fit's; a refined sigma has its own factors, ``refined_sigma_scale``)."""
        found = self.candidates(images).select(float(self.threshold), float(self.split))
        scales = self.sigma_scale.double().cpu().numpy()  # calibrate the network's sigmas
        if (scales != 1.0).any():
            found = [{**f, "sigma": None if f["sigma"] is None else f["sigma"] * scales[c][:, None]}
                     for f, c in zip(found, crowding_of_frames([f["xy"] for f in found]))]
        if self.refine:
            from pixel_spotter.models.frame_refine import refine

            found = refine(images[:, 0] * self.input_scale, found, self.refine, self.refine_beyond,
                           float(self.psf_width_error))
            scales = self.refined_sigma_scale.double().cpu().numpy()
            if (scales != 1.0).any():
                found = [{**f, "sigma": np.where(f["refined"][:, None], f["sigma"] * scales[c][:, None], f["sigma"])}
                         if "refined" in f else f for f, c in zip(found, crowding_of_frames([f["xy"] for f in found]))]
        return found

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # a checkpoint written before the sigmas were calibrated has no factor (theirs is 1), one written before
        # the crowding classes has a single factor (every class's), and one written before the split decode none
        if "threshold" in state_dict:
            old = state_dict.get("sigma_scale", torch.tensor(1.0))
            if old.dim() == 0:
                state_dict = {**state_dict, "sigma_scale": old.repeat(len(CROWDING))}
            if "split" not in state_dict:
                state_dict = {**state_dict, "split": torch.tensor(1.0, dtype=torch.float64)}
            if "refined_sigma_scale" not in state_dict:  # written before refined sigmas had their own factors
                state_dict = {**state_dict, "refined_sigma_scale": torch.ones(len(CROWDING))}
            if "psf_width_error" not in state_dict:  # written before the width prior: the fit without one
                state_dict = {**state_dict, "psf_width_error": torch.tensor(0.0, dtype=torch.float64)}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def apply_decode(self, decode: dict) -> None:
        """Use a run record's ``decode`` values (what its test was scored with), each checked: untrusted. A record
        from before the crowding classes has one ``sigma_scale``, every class's."""
        decode = decode if isinstance(decode, dict) else {}
        threshold, split = decode.get("threshold"), decode.get("split", 1.0)
        if isinstance(threshold, (int, float)) and 0 < threshold < 1:
            self.threshold.fill_(float(threshold))
        if isinstance(split, (int, float)) and 0 < split <= 1:
            self.split.fill_(float(split))
        scales = [decode.get(f"sigma_scale_{name}", decode.get("sigma_scale")) for name, _ in CROWDING]
        if all(isinstance(v, (int, float)) and 0.01 <= v <= 100 for v in scales):
            self.sigma_scale.copy_(torch.tensor(scales, dtype=self.sigma_scale.dtype))
        refined = [decode.get(f"refined_sigma_scale_{name}") for name, _ in CROWDING]
        if all(isinstance(v, (int, float)) and 0.01 <= v <= 100 for v in refined):
            self.refined_sigma_scale.copy_(torch.tensor(refined, dtype=self.refined_sigma_scale.dtype))
        width = decode.get("psf_width_error")
        if isinstance(width, (int, float)) and (width == 0 or MIN_WIDTH_ERROR <= width <= 10):
            self.psf_width_error.fill_(float(width))

    def decode_record(self) -> dict:
        """What a run's record keeps of the decode its test used (``apply_decode`` reads it back)."""
        return {"threshold": float(self.threshold), "split": float(self.split),
                **{f"sigma_scale_{name}": float(v) for (name, _), v in zip(CROWDING, self.sigma_scale)},
                **{f"refined_sigma_scale_{name}": float(v) for (name, _), v in zip(CROWDING, self.refined_sigma_scale)},
                "psf_width_error": float(self.psf_width_error)}

    def calibrate(self, batches, tally, refined: bool = False) -> torch.Tensor:
        """The network's sigma factors (or with ``refined`` the refined sigmas') on ``batches``:
        ``frame_calibration.sigma_factors``."""
        return sigma_factors(self, batches, tally, refined)

    # -- training and scoring
    def _loss(self, images, sets) -> torch.Tensor:
        return self.loss_fn(read_maps(self(images)), sets, self.photon_scale)

    def _score(self, tally, images, sets) -> None:
        for i, found in enumerate(self.localize(images)):
            tally.add(found["xy"], sets.frame(i), sets.frame_bounds(i), found["sigma"])

    def _step(self, batch, stage: str) -> torch.Tensor:
        images, sets = batch[0], batch[1]
        loss = self._loss(images, sets)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=stage != "test",
                 batch_size=len(images))
        if stage != "train" and self._tally is not None:
            self._score(self._tally, images, sets)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return {"loss": self._step(batch, "test")}

    def _task(self):
        return self.trainer.datamodule.task

    def on_validation_epoch_start(self) -> None:
        self._tally = self._task().tally()

    def on_validation_epoch_end(self) -> None:
        self._log_tally("val")

    def on_test_epoch_start(self) -> None:
        self._tally = self._task().tally()

    def on_test_epoch_end(self) -> None:
        self._log_tally("test")

    def _log_tally(self, stage: str) -> None:
        summary = self._tally.summary()
        if stage == "test":  # the test's calibration curve, for the run's record (the task's record_results)
            self.test_calibration = self._tally.calibration()
        self.log_dict({f"{stage}/{k}": v for k, v in summary.items()}, on_step=False, on_epoch=True)
        self._tally = None

    def on_test_start(self) -> None:
        if self.tune_threshold:
            self.tune_decode(self.trainer.datamodule.batches("val", self.device), self._task().tally)
        if self.loss_name == "mixture":  # a model with its own uncertainties: calibrated on the same frames
            self.calibrate_sigmas(lambda: self.trainer.datamodule.batches("val", self.device), self._task().tally)

    def calibrate_sigmas(self, batches: Callable, tally) -> None:
        """Set the network's sigma factors (``sigma_scale``) and, when the model refines, the refinement's
        settings (``calibrate_refinement``) on the frames ``batches()`` yields (each call a fresh pass)."""
        self.sigma_scale.copy_(self.calibrate(batches(), tally))
        if self.refine:
            self.calibrate_refinement(batches, tally)

    def calibrate_refinement(self, batches: Callable, tally) -> None:
        """Set the refinement's PSF width prior (``psf_width_error``), then with it the refined sigmas' factors
        (``refined_sigma_scale``), on the frames ``batches()`` yields."""
        self.psf_width_error.fill_(psf_width_error(self, batches(), tally))
        self.refined_sigma_scale.copy_(self.calibrate(batches(), tally, refined=True))

    @torch.inference_mode()
    def tune_decode(self, batches, tally) -> tuple[float, float]:
        """Choose and set the decode's (threshold, split) on ``batches`` ((images, FrameSets, ...) of validation
        frames), each scored by a fresh ``tally()`` and the monitored metric: the threshold (of ``THRESHOLDS``)
        without a split, then for ``local_max`` the split (of ``SPLITS``) with that threshold."""
        was_training = self.training
        self.eval()
        found, truth = [], []
        for images, sets, *_ in batches:
            found.append(self.candidates(images))
            truth.append(sets)
        self.train(was_training)
        threshold = self._best(found, truth, tally, [(t, 1.0) for t in THRESHOLDS], float(self.threshold))
        split = 1.0
        if self.decode == "local_max":  # the order of SPLITS: of equal scores, the least splitting
            split = self._best(found, truth, tally, [(threshold, s) for s in SPLITS], 1.0, middle=False, index=1)
        self.threshold.fill_(threshold)
        self.split.fill_(split)
        return threshold, split

    def _best(self, found, truth, tally, settings, fallback: float, middle: bool = True, index: int = 0) -> float:
        """Of ``settings`` ((threshold, split) pairs), element ``index`` of the one that scores best by the
        monitored metric; of several equally good ones the middle one (``middle``) or the first;
        ``fallback`` when none scores."""
        name = self.monitor.removeprefix("val/")
        sign = 1.0 if self.hparams.monitor_mode == "max" else -1.0
        values = []
        for threshold, split in settings:
            scores = tally()
            for cands, sets in zip(found, truth):
                for i, frame in enumerate(cands.select(threshold, split)):
                    scores.add(frame["xy"], sets.frame(i), sets.frame_bounds(i))
            value = scores.summary().get(name, math.nan)
            values.append(sign * value if math.isfinite(value) else -math.inf)
        if max(values) == -math.inf:
            return fallback
        tied = [s[index] for s, v in zip(settings, values) if v == max(values)]
        return float(tied[len(tied) // 2] if middle else tied[0])  # the middle of a plateau: farthest from its edges

    @torch.inference_mode()
    def measure(self, datamodule, stage: str) -> dict:
        """The loss and every localization score of the ``stage`` split, outside any trainer (run.evaluate)."""
        tally, loss, frames = datamodule.task.tally(), 0.0, 0
        for images, sets, *_ in datamodule.batches(stage, self.device):
            loss += float(self._loss(images, sets)) * len(images)
            frames += len(images)
            self._score(tally, images, sets)
        return {"loss": loss / max(frames, 1), **tally.summary()}

