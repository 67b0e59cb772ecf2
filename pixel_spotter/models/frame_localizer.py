"""FrameLocalizer: the LightningModule of the frame tasks (data=pixels, data=emitters), where an image holds a set.

It wraps a fully convolutional network (``frame_net.FrameNet``) whose maps ``frame_maps`` reads, trains it with one
of ``frame_losses``, and scores its decoded localizations against the true sets with the task's tally (the
localization-microscopy challenge's matching, ``evaluation/localizations.py``), logged per validation and test
epoch as ``val/<metric>``. The detection threshold is the decode's one setting: before the test it is chosen on
the validation frames (``tune_threshold``), the value that maximizes the metric the checkpoint watches
(``monitor``), and the test is scored with it. An emitter model's predicted sigmas are then calibrated on the same
frames: one factor (``sigma_scale``) that makes their errors one sigma RMS.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pixel_spotter.models.frame_losses import CHANNELS_OF_LOSS, LOSSES
from pixel_spotter.models.frame_maps import CHANNELS, DECODES, candidates, read_maps
from pixel_spotter.models.optimizing import Optimized

THRESHOLDS = tuple(np.round(np.arange(0.1, 0.96, 0.05), 2))  # what tune_threshold tries


class FrameLocalizer(Optimized):
    frames = True

    def __init__(self, net: nn.Module, lr: float = 1e-3, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, loss: str = "detection", decode: str = "threshold",
                 threshold: float = 0.5, tune_threshold: bool = True, photon_scale: float = 1.0,
                 refine: int = 0, input_scale: float = 1.0,
                 monitor: str = "val/f1", monitor_mode: str = "max", height: int = 50, width: int = 50):
        """``monitor``/``monitor_mode``: the validation metric the best checkpoint is chosen by (the callbacks'
        config reads them from here) and that the threshold is tuned for. ``photon_scale``: photons per unit of
        the photon and background maps. ``refine``: steps of the maximum-likelihood refinement of every
        localization (``frame_refine.py``; 0: the network's answers as they are), on the photons the input is
        ``input_scale`` times (the emitter task's ``data.input_scale``)."""
        super().__init__(net, lr, optimizer, scheduler)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.loss_name, self.loss_fn = loss, LOSSES[loss]
        self.decode = decode
        self.tune_threshold = tune_threshold
        self.photon_scale = float(photon_scale)
        self.refine, self.input_scale = int(refine), float(input_scale)
        self.monitor = monitor
        # buffers: the threshold, and the factor on the predicted sigmas that calibrates them (both chosen on the
        # validation frames before the test; a run's record keeps what its test used, results.json decode.*)
        self.register_buffer("threshold", torch.tensor(float(threshold)))
        self.register_buffer("sigma_scale", torch.tensor(1.0))
        self._tally = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The raw maps (N, C, H, W)."""
        return self.net(images)

    def candidates(self, images: torch.Tensor):
        return candidates(read_maps(self(images)), self.decode, self.photon_scale)

    @torch.no_grad()
    def localize(self, images: torch.Tensor) -> list[dict]:
        """Per image {xy (K, 2) pixel (x, y), score (K,), and for an emitter model sigma (K, 2) px, photons,
        background, psf_sigma (K,)}, refined by maximum likelihood when ``refine`` > 0."""
        found = self.candidates(images).select(float(self.threshold))
        scale = float(self.sigma_scale)  # calibrates the network's sigmas (a refined one is the fit's own)
        if scale != 1.0:
            found = [{**f, "sigma": None if f["sigma"] is None else f["sigma"] * scale} for f in found]
        if self.refine:
            from pixel_spotter.models.frame_refine import refine

            found = refine(images[:, 0] * self.input_scale, found, self.refine)
        return found

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # a checkpoint written before the sigmas were calibrated has no factor: theirs is 1
        if "sigma_scale" not in state_dict and "threshold" in state_dict:
            state_dict = {**state_dict, "sigma_scale": torch.tensor(1.0)}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def apply_decode(self, decode: dict) -> None:
        """Use a run record's ``decode`` values (what its test was scored with), each checked: untrusted."""
        threshold, scale = (decode or {}).get("threshold"), (decode or {}).get("sigma_scale")
        if isinstance(threshold, (int, float)) and 0 < threshold < 1:
            self.threshold.fill_(float(threshold))
        if isinstance(scale, (int, float)) and 0.01 <= scale <= 100:
            self.sigma_scale.fill_(float(scale))

    @torch.inference_mode()
    def calibrate(self, batches, tally) -> float:
        """The factor on the predicted sigmas that makes the errors of the localizations of ``batches``
        (validation frames) one sigma RMS (their z RMS at factor 1); 1 when there is nothing to calibrate."""
        was_training, before, refine = self.training, float(self.sigma_scale), self.refine
        self.eval()
        self.sigma_scale.fill_(1.0)
        self.refine = 0  # the factor is the network's: a refined localization's sigma is its fit's own
        scores = tally()
        for images, sets, *_ in batches:
            for i, found in enumerate(self.localize(images)):
                scores.add(found["xy"], sets.frame(i), None, found["sigma"])
        self.train(was_training)
        self.refine = refine
        z = scores.summary().get("z_rms")
        self.sigma_scale.fill_(before)
        return float(z) if z is not None and 0.01 <= z <= 100 else 1.0

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
        self.log_dict({f"{stage}/{k}": v for k, v in summary.items()}, on_step=False, on_epoch=True)
        self._tally = None

    def on_test_start(self) -> None:
        if self.tune_threshold:
            self.threshold.fill_(self.best_threshold(self.trainer.datamodule.batches("val", self.device),
                                                     self._task().tally))
        if self.loss_name == "mixture":  # a model with its own uncertainties: calibrated on the same frames
            self.sigma_scale.fill_(self.calibrate(self.trainer.datamodule.batches("val", self.device),
                                                  self._task().tally))

    @torch.inference_mode()
    def best_threshold(self, batches, tally) -> float:
        """The threshold (of ``THRESHOLDS``) whose localizations on ``batches`` ((images, FrameSets, ...) of
        validation frames) score best by the monitored metric, each scored by a fresh ``tally()``; of several
        equally good ones, the middle one."""
        was_training = self.training
        self.eval()
        found, truth = [], []
        for images, sets, *_ in batches:
            found.append(self.candidates(images))
            truth.append(sets)
        self.train(was_training)
        name = self.monitor.removeprefix("val/")
        sign = 1.0 if self.hparams.monitor_mode == "max" else -1.0
        values = []
        for threshold in THRESHOLDS:
            scores = tally()
            for cands, sets in zip(found, truth):
                for i, frame in enumerate(cands.select(threshold)):
                    scores.add(frame["xy"], sets.frame(i), sets.frame_bounds(i))
            value = scores.summary().get(name, math.nan)
            values.append(sign * value if math.isfinite(value) else -math.inf)
        if max(values) == -math.inf:
            return float(self.threshold)
        tied = [t for t, v in zip(THRESHOLDS, values) if v == max(values)]
        return float(tied[len(tied) // 2])  # the middle of the best plateau: the farthest from either edge

    @torch.inference_mode()
    def measure(self, datamodule, stage: str) -> dict:
        """The loss and every localization score of the ``stage`` split, outside any trainer (run.evaluate)."""
        tally, loss, frames = datamodule.task.tally(), 0.0, 0
        for images, sets, *_ in datamodule.batches(stage, self.device):
            loss += float(self._loss(images, sets)) * len(images)
            frames += len(images)
            self._score(tally, images, sets)
        return {"loss": loss / max(frames, 1), **tally.summary()}


def check_frame_model(model) -> None:
    """ConfigError lines for a frame model's own settings (training/validation.py calls it)."""
    from pixel_spotter.checks import is_number, require

    loss, decode = model.get("loss", "detection"), model.get("decode", "threshold")
    require(loss in LOSSES, f"model.loss={loss!r} is not a frame model's loss; choose one of {', '.join(LOSSES)}")
    require(decode in DECODES, f"model.decode={decode!r} is unknown; choose one of {', '.join(DECODES)}")
    threshold = model.get("threshold", 0.5)
    require(is_number(threshold) and 0 < threshold < 1,
            f"model.threshold must be a number in (0, 1), got {threshold!r}; e.g. model.threshold=0.5")
    require(isinstance(model.get("tune_threshold", True), bool),
            f"model.tune_threshold must be true or false, got {model.get('tune_threshold')!r}")
    scale = model.get("photon_scale", 1.0)
    require(is_number(scale) and scale > 0,
            f"model.photon_scale must be a number > 0, got {scale!r}; e.g. model.photon_scale=1000")
    refine = model.get("refine", 0)
    require(isinstance(refine, int) and not isinstance(refine, bool) and 0 <= refine <= 50,
            f"model.refine must be an integer of fit steps in [0, 50], got {refine!r}; e.g. model.refine=10 (0: off)")
    require(not refine or loss == "mixture",
            "model.refine fits each emitter from the network's photons, background and PSF width, which only "
            "model.loss=mixture answers; use model.refine=0")
    input_scale = model.get("input_scale", 1.0)
    require(is_number(input_scale) and input_scale > 0,
            f"data.input_scale must be a number > 0 (model.input_scale takes it), got {input_scale!r}; e.g. "
            "data.input_scale=100")
    outputs, wanted = model.net.get("outputs"), CHANNELS[CHANNELS_OF_LOSS[loss]]
    require(outputs == wanted, f"model.loss={loss} reads {wanted} maps per pixel, but model.net.outputs={outputs!r}; "
                               f"use model.net.outputs={wanted}")
