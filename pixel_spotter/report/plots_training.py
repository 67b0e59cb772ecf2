"""Plots of how a model's runs trained: learning curves and the lr x epochs error grid (one figure per model).

Each function takes the model's runs (analysis Entries), draws one figure and saves it; None when the
runs call for none. Every axis says what it shows and in which unit.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from pixel_spotter.report.plot_style import label, plain_log_ticks, save

CURVES = [("train/loss", "train loss"), ("val/loss", "validation loss"),
          ("train/rmse_px", "train RMSE (px)"), ("val/rmse_px", "validation RMSE (px)")]


def _sort_runs(runs):
    return sorted(runs, key=lambda r: (r.group, r.record.get("lr") or 0, r.record.get("max_epochs") or 0))


def learning_curves(runs, model: str, path: Path) -> Path | None:
    """Train/val loss and RMSE against epoch, one line (same colour in every panel) per run."""
    runs = [r for r in _sort_runs(runs) if any(tag in r.curves for tag, _ in CURVES)]
    if not runs:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True, layout="constrained")
    colors = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")(np.arange(len(runs)) % 20)
    longest = max(len(run.curves.get(tag, ((),))[0]) for run in runs for tag, _ in CURVES)
    for ax, (tag, heading) in zip(axes.flat, CURVES):
        for run, color in zip(runs, colors):
            if tag in run.curves:
                epochs, values = run.curves[tag]
                # Runs that differ only in epochs retrace each other (same seed); longer runs are drawn
                # thicker and underneath, so a shorter run stays visible on top of its longer twin.
                width = 1.2 + 2.5 * len(epochs) / longest
                ax.plot(epochs, values, color=color, lw=width, zorder=3 - len(epochs) / longest,
                        marker="o" if len(epochs) <= 20 else None, markersize=2 + 2 * width,
                        markerfacecolor="none")
        ax.set_title(heading)
        ax.set_ylabel("loss (normalized coords)" if "loss" in tag else "RMSE (px)")
        values = np.concatenate([r.curves[tag][1] for r in runs if tag in r.curves] or [np.ones(1)])
        # log scale only when the loss spans a decade or more; otherwise it just hides the tick labels
        if "loss" in tag and values.min() > 0 and values.max() / values.min() > 10:
            ax.set_yscale("log")
            ax.set_ylabel("loss (normalized coords, log scale)")
            plain_log_ticks(ax)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    labels = [label(run) + ("" if run.ok else f" [{run.status}]") for run in runs]
    handles = [matplotlib.lines.Line2D([], [], color=c, lw=2, marker="o", markerfacecolor="none")
               for c in colors]
    longest_label = max(len(text) for text in labels)
    ncol = 1 if longest_label > 55 else 2 if longest_label > 35 else 3  # never wider than the figure
    fig.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(labels)), fontsize=8)
    fig.suptitle(f"{model}: learning curves (one line per run)")
    return save(fig, path)


def _cell_values(runs, lrs, epochs):
    """Mean test error per (lr, epochs) cell (NaN if none finished) and the text to print in each cell."""
    grid = np.full((len(lrs), len(epochs)), np.nan)
    notes = {}
    for i, lr in enumerate(lrs):
        for j, ep in enumerate(epochs):
            cell = [r for r in runs if r.record.get("lr") == lr and r.record.get("max_epochs") == ep]
            done = [r.test() for r in cell if r.ok]
            if done:
                grid[i, j] = np.mean(done)
                notes[i, j] = f"{grid[i, j]:.2f}" + (f"\n(mean of {len(done)})" if len(done) > 1 else "")
            elif cell:
                notes[i, j] = cell[0].status
    return grid, notes


def _grid_panel(ax, runs, heading: str, norm):
    """Heatmap of one group's runs: numbers in the cells, failed cells named, untried cells blank."""
    lrs = sorted({r.record["lr"] for r in runs})
    epochs = sorted({r.record["max_epochs"] for r in runs})
    grid, notes = _cell_values(runs, lrs, epochs)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#eeeeee")  # as the error map: dark = low error
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    for (i, j), text in notes.items():
        dark = np.isfinite(grid[i, j]) and norm(grid[i, j]) < 0.5
        ax.text(j, i, text, ha="center", va="center", fontsize=10, color="white" if dark else "black")
    ax.set_xticks(range(len(epochs)), [str(e) for e in epochs])
    ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_xlabel("max epochs")
    ax.set_ylabel("learning rate")
    ax.set_title(textwrap.fill(heading, 45), fontsize=9)
    return image


def error_grid(runs, model: str, path: Path) -> Path | None:
    """Test mean Euclidean error as an lr x epochs grid; one panel per group of comparable runs
    (data setting, weights), all on one colour scale."""
    runs = [r for r in runs if r.record.get("lr") is not None and r.record.get("max_epochs") is not None]
    groups = sorted({r.group for r in runs if r.ok})
    if not groups or len({(r.record["lr"], r.record["max_epochs"]) for r in runs}) < 2:
        return None  # one lr and one epoch count: a 1x1 grid would say nothing the table does not
    group_setting = {g: next(r.setting for r in runs if r.ok and r.group == g) for g in groups}
    # a failed run has no weight source, so it joins every panel with its data setting (as "failed")
    panels = [(g, [r for r in runs if r.group == g or (not r.ok and r.setting == group_setting[g])])
              for g in groups]
    errors = [r.test() for r in runs if r.ok]
    norm = matplotlib.colors.Normalize(min(errors), max(max(errors), min(errors) + 1e-9))
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 1.2, 3.6 * rows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (group, members) in zip(axes.flat, panels):
        image = _grid_panel(ax, members, group or "all runs", norm)
    fig.colorbar(image, ax=axes.ravel().tolist(), label="test mean Euclidean error (px)")
    fig.suptitle(f"{model}: test error by learning rate × epochs (lower is better)")
    return save(fig, path)
