"""CoordinateRegressor: the one LightningModule; it wraps any network given by config.

The network predicts normalized (x, y) in [0, 1]; the loss is computed there, metrics in pixels.
Nothing model-specific lives here: a new model is a new ``net`` (see ``pixel_spotter/models``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pixel_spotter.evaluation.metrics import pixel_metrics
from pixel_spotter.models.optimizing import Optimized

LOSSES: dict[str, Callable] = {"mse": F.mse_loss, "l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss}
# Losses on a network's per-pixel score map (``net.score_map``) rather than on its (x, y): the true pixel is
# the class. Only for networks that score every pixel (the heatmap models).
PIXEL_LOSSES = ("cross_entropy",)


class CoordinateRegressor(Optimized):
    def __init__(
        self,
        net: nn.Module,
        lr: float = 1e-3,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        loss: str = "mse",
        height: int = 50,
        width: int = 50,
        huber_bounds: float | None = None,
    ):
        """``optimizer``/``scheduler`` are partials (Hydra ``_partial_: true``) taking params/optimizer.
        ``huber_bounds`` (with per-image weights 1 / CRLB, data=spot's ``data.loss_weight=crlb``, and loss=mse):
        an image whose 2D error exceeds that many of its bound's standard deviations counts linearly beyond it
        (Huber), not squared, so a few missed dim spots, tens of bounds off, do not drown the gradient of the
        rest; null: the plain weighted MSE."""
        super().__init__(net, lr, optimizer, scheduler)
        # logger=False: the HPARAMS tab is written once, at the end, together with the final metrics.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.loss_name = loss
        self.loss_fn = LOSSES.get(loss)
        self.huber_bounds = None if huber_bounds is None else float(huber_bounds)
        self.register_buffer("px_scale", torch.tensor([width - 1.0, height - 1.0]), persistent=False)
        self.train_metrics, self.val_metrics, self.test_metrics = (pixel_metrics(s) for s in ("train", "val", "test"))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized (x, y) predictions, shape (N, 2)."""
        return self.net(images)

    def predict_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """(x, y) predictions in pixels."""
        return self(images) * self.px_scale

    def loss_and_predictions(self, images: torch.Tensor, target: torch.Tensor,
                             weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss and the normalized (x, y) predictions of one batch (the one place a loss is taken).
        ``weight`` (B,): per-image loss weights (data=spot's ``data.loss_weight=crlb``), the loss then
        sum(w loss_i) / sum(w)."""
        if self.loss_name in PIXEL_LOSSES:  # a classifier over pixels: the true pixel is the class
            scores = self.net.score_map(images)
            pixel = (target * self.px_scale).round().long()
            loss = F.cross_entropy(scores.flatten(1), pixel[:, 1] * scores.shape[-1] + pixel[:, 0])
            return loss, self.net.readout(scores)
        preds = self(images)
        if weight is None:
            return self.loss_fn(preds, target), preds
        if self.huber_bounds is not None:  # the squared error in units of the bound, Huber beyond huber_bounds
            squared = weight * (((preds - target) * self.px_scale) ** 2).sum(dim=1)
            delta = self.huber_bounds
            linear = 2 * delta * squared.clamp(min=1e-12).sqrt() - delta ** 2
            return torch.where(squared <= delta ** 2, squared, linear).mean(), preds
        per_image = self.loss_fn(preds, target, reduction="none").mean(dim=1)
        return (weight * per_image).sum() / weight.sum(), preds

    @torch.inference_mode()
    def measure(self, datamodule, stage: str) -> dict:
        """The loss and pixel metrics of the ``stage`` split's images, outside any trainer (run.evaluate). The
        loss is averaged per image, as Lightning averages the logged ``<stage>/loss`` over batches weighted by
        their size, so best_val.loss is the val/loss the best epoch logged."""
        metrics = pixel_metrics(stage).to(self.device)
        loss, images_seen = 0.0, 0
        for images, target, *weight in datamodule.batches(stage, self.device):
            batch_loss, preds = self.loss_and_predictions(images, target, *weight)
            loss += float(batch_loss) * len(images)
            images_seen += len(images)
            metrics.update(preds * self.px_scale, target * self.px_scale)  # = self.predict_pixels(images)
        values = {k.split("/", 1)[1]: float(v) for k, v in metrics.compute().items()}
        return {"loss": loss / max(images_seen, 1), **values}

    def _step(self, batch, stage: str) -> dict:
        images, target, *weight = batch  # weight: data=spot with data.loss_weight=crlb
        target_px = target * self.px_scale
        loss, preds = self.loss_and_predictions(images, target, *weight)
        preds_px = preds.detach() * self.px_scale
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(preds_px, target_px)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=stage != "test",
                 batch_size=len(images))
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=len(images))
        return {"loss": loss, "true_px": target_px.round().long(), "pred_px": preds_px}

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")["loss"]

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        """The batch's true and predicted pixels, for the callbacks that write them (training/side_outputs.py)."""
        return self._step(batch, "test")
