"""The per-image Euclidean error (px) in numpy, for files and figures: the twin of the torchmetrics
``pixel_spotter.evaluation.metrics.EuclideanError`` that training logs (a test checks they agree). Torch-free, so the
report can use it without importing torch."""

import numpy as np


def euclidean(true_xy, pred_xy) -> np.ndarray:
    """(N,) distances between (N, 2) true and predicted (x, y) pixel positions."""
    true_xy, pred_xy = np.asarray(true_xy, dtype=float), np.asarray(pred_xy, dtype=float)
    return np.hypot(pred_xy[:, 0] - true_xy[:, 0], pred_xy[:, 1] - true_xy[:, 1])
