"""Plots of the best runs' test predictions: predicted vs true, sample overlays, error map and histogram.

Each function takes analysis Entries, draws one figure from their test predictions and saves it; None when
there are none. Per-image errors are the runs' ``errors`` (load.euclid_errors).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from pixel_spotter.evaluation.figures import overlay_figure
from pixel_spotter.report.fmt import format_px
from pixel_spotter.report.plot_style import save, title


def pred_vs_true(run, path: Path) -> Path | None:
    """Predicted against true x and y of one run's test images; the diagonal is a perfect prediction."""
    p = run.predictions
    if p is None:
        return None
    height, width = run.data.get("height"), run.data.get("width")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, (axis, t, q, size) in zip(axes, [("x = column", 0, 2, width), ("y = row", 1, 3, height)]):
        size = size or int(p[:, t].max()) + 1
        lo, hi = min(-0.5, p[:, q].min()), max(size - 0.5, p[:, q].max())
        ax.plot([lo, hi], [lo, hi], "--", color="grey", lw=1, label="perfect prediction")
        ax.scatter(p[:, t], p[:, q], s=14, alpha=0.6, label=f"test image (n={len(p)})")
        ax.set_xlim(lo, hi), ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel(f"true {axis} (px)")
        ax.set_ylabel(f"predicted {axis} (px)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{run.model} best run #{run.id}: predicted vs true position "
                 f"(mean error {format_px(run.test())} px)")
    fig.tight_layout()
    return save(fig, path)


def overlay(run, path: Path) -> Path | None:
    p = run.predictions
    if p is None:
        return None
    fig = overlay_figure(p[:, :2].astype(int), p[:, 2:], run.data["height"], run.data["width"],
                         title=f"{run.model} best run #{run.id}: test samples, best to worst "
                               "(green circle = true, red x = predicted)")
    return save(fig, path)


def _error_map(run) -> np.ndarray:
    """Mean Euclidean error at each (row, column); NaN where no test image sits."""
    p = run.predictions
    height, width = run.data["height"], run.data["width"]
    total, count = np.zeros((height, width)), np.zeros((height, width))
    xs, ys = p[:, 0].astype(int), p[:, 1].astype(int)
    np.add.at(total, (ys, xs), run.errors)
    np.add.at(count, (ys, xs), 1)
    with np.errstate(invalid="ignore"):
        return total / np.where(count > 0, count, np.nan)


def error_maps(best: list, path: Path) -> Path | None:
    """Where on the image each best run fails: one panel per run, a row per data setting (when runs
    come from several, e.g. both splits), one shared colour scale."""
    runs = [r for r in best if r.predictions is not None and r.data.get("height") and r.data.get("width")]
    if not runs:
        return None
    rows = list(dict.fromkeys(r.setting for r in runs))
    ncols = max(sum(r.setting == row for r in runs) for row in rows)
    maps = [_error_map(r) for r in runs]
    # A few failing positions can be 20x the typical error; scale colours to the 95th percentile so the
    # typical ones stay distinguishable, and let the outliers saturate (the colour bar's arrow says so).
    values = np.concatenate([m[np.isfinite(m)] for m in maps])
    vmax = max(float(np.percentile(values, 95)), 1e-6)
    clipped = values.max() > vmax
    # viridis' light end is yellow, never confused with the white "no test image here"
    cmap = plt.get_cmap("viridis").with_extremes(bad="white", over="yellow")
    fig, axes = plt.subplots(len(rows), ncols, figsize=(4.6 * ncols + 1.2, 5.0 * len(rows)), squeeze=False,
                             layout="constrained")
    slots = {row: iter(axes[i]) for i, row in enumerate(rows)}
    used = []
    for run, error in zip(runs, maps):
        ax = next(slots[run.setting])
        used.append(ax)
        height, width = error.shape
        image = ax.imshow(error, cmap=cmap, vmin=0, vmax=vmax,
                          extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest")
        ax.set_facecolor("white")
        ax.set_title(f"{title(run)}\n{int(np.isfinite(error).sum())} of {height * width} "
                     "positions tested", fontsize=10)
        ax.set_xlabel("x (column, px)")
        ax.set_ylabel("y (row, px)")
    for ax in axes.flat:
        if ax not in used:
            ax.set_visible(False)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.9, extend="max" if clipped else "neither",
                 label="mean Euclidean error at that position (px)" + (
                     f"\n(scale ends at the 95th percentile; max {values.max():.1f} px)" if clipped else ""))
    fig.suptitle("Test error by position (white = no test image at that position)")
    return save(fig, path)


def error_histograms(best: list, path: Path) -> Path | None:
    """Distribution of per-image test error of each best run, on shared bins; a panel per data setting."""
    runs = [r for r in best if r.errors is not None]
    if not runs:
        return None
    top = max(float(r.errors.max()) for r in runs)
    bins = np.linspace(0, top if top > 0 else 1, 61)
    settings = list(dict.fromkeys(r.setting for r in runs))
    fig, axes = plt.subplots(len(settings), 1, figsize=(8, 4.5 * len(settings)), squeeze=False, sharex=True)
    for ax, setting in zip(axes[:, 0], settings):
        for run in (r for r in runs if r.setting == setting):
            ax.hist(run.errors, bins=bins, histtype="step", linewidth=2,
                    label=f"{run.model} #{run.id} (mean {format_px(run.errors.mean())} px, n={len(run.errors)})")
        ax.axvline(1.0, color="grey", linestyle=":", label="1 px")
        ax.set_yscale("log")  # so a handful of large failures in the tail stay visible next to the bulk
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_ylabel("test images (log scale)")
        ax.set_title("Test error distribution of each model's best run" + (f" ({setting})" if setting else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    axes[-1, 0].set_xlabel("Euclidean error per test image (px)")
    fig.tight_layout()
    return save(fig, path)
