"""Figures shared by TensorBoard logging and the report: sample overlays of true vs predicted pixels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: runs write files, they never open windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pixel_spotter.evaluation.distances import euclidean  # noqa: E402


def overlay_figure(true_xy, pred_xy, height: int, width: int, n: int = 8, title: str = ""):
    """Grid of images: the bright pixel, a green circle at the truth, a red cross at the prediction.

    Shows the ``n`` examples spread over the error range (best to worst), so failures are visible.
    """
    true_xy, pred_xy = np.asarray(true_xy), np.asarray(pred_xy, dtype=float)
    err = euclidean(true_xy, pred_xy)
    order = np.argsort(err)
    picks = order[np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int)]
    cols = min(4, len(picks))
    rows = int(np.ceil(len(picks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, picks):
        image = np.zeros((height, width))
        image[true_xy[i, 1], true_xy[i, 0]] = 1.0
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
        ax.scatter([true_xy[i, 0]], [true_xy[i, 1]], s=120, facecolors="none", edgecolors="lime", linewidths=1.5,
                   label="true")
        ax.scatter([pred_xy[i, 0]], [pred_xy[i, 1]], s=60, marker="x", color="red", linewidths=1.5, label="predicted")
        ax.set_title(f"true ({true_xy[i, 0]}, {true_xy[i, 1]})\nerr {err[i]:.2f} px", fontsize=8)
        ax.axis("on")
        ax.set_xticks([]), ax.set_yticks([])
    axes.flat[0].legend(loc="lower left", fontsize=6, framealpha=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
