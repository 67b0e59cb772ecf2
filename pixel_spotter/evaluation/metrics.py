"""Localization metrics in pixels, as torchmetrics objects (one collection per stage).

All metrics take predictions and targets as (N, 2) tensors of (x, y) in *pixels*:
- ``mse_px``: mean over images and both coordinates of the squared error (px^2)
- ``mae_px``: mean absolute error per coordinate (px)
- ``rmse_px``: sqrt(mse_px) (px)
- ``euclid_px``: mean Euclidean distance between predicted and true position (px)
- ``exact_acc``: fraction of images whose *rounded* prediction equals the true pixel in both x and y
- ``within1_acc``: fraction of images whose prediction lies within 1 px (Euclidean) of the truth
"""

from __future__ import annotations

import torch
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection

from pixel_spotter.evaluation.metric_names import HIGHER_IS_BETTER, METRIC_NAMES  # noqa: F401  (re-exported)


class _PerImageMean(MeanMetric):
    """Mean of a per-image quantity computed from (preds, target)."""

    def per_image(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        super().update(self.per_image(preds, target))


class EuclideanError(_PerImageMean):
    def per_image(self, preds, target):
        return torch.linalg.vector_norm(preds - target, dim=1)


class ExactPixelAccuracy(_PerImageMean):
    def per_image(self, preds, target):
        return (torch.round(preds) == torch.round(target)).all(dim=1).float()


class WithinOnePixelAccuracy(_PerImageMean):
    def per_image(self, preds, target):
        return (torch.linalg.vector_norm(preds - target, dim=1) <= 1.0).float()


def pixel_metrics(prefix: str) -> MetricCollection:
    """A fresh metric collection whose keys are ``{prefix}/{name}``, e.g. ``val/rmse_px``."""
    return MetricCollection(
        {
            "mse_px": MeanSquaredError(),
            "mae_px": MeanAbsoluteError(),
            "rmse_px": MeanSquaredError(squared=False),
            "euclid_px": EuclideanError(),
            "exact_acc": ExactPixelAccuracy(),
            "within1_acc": WithinOnePixelAccuracy(),
        },
        prefix=f"{prefix}/",
    )
