"""The report's plots (matplotlib, Agg, PNG). Every axis says what it shows and in which unit.

Each function draws one figure from already-loaded runs (see report.Run) and saves it; make_all
decides which figures a set of runs calls for and returns (caption, path) pairs for the report.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report writes files, it never opens windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pixel_spotter.figures import overlay_figure  # noqa: E402

DPI = 110
CURVES = [("train/loss", "train loss"), ("val/loss", "validation loss"),
          ("train/rmse_px", "train RMSE (px)"), ("val/rmse_px", "validation RMSE (px)")]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _sort_runs(runs):
    return sorted(runs, key=lambda r: (r.group, r.record.get("lr") or 0, r.record.get("max_epochs") or 0))


def _plain_log_ticks(ax) -> None:
    """Log-scale y ticks as 0.3, 1, 2 rather than 3x10^-1."""
    fmt = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(fmt)
    ax.tick_params(axis="y", which="minor", labelsize=7)


# ------------------------------------------------------------------------------------------ learning curves


def learning_curves(runs, model: str, path: Path) -> Path | None:
    """Train/val loss and RMSE against epoch, one line (same colour in every panel) per run."""
    runs = [r for r in _sort_runs(runs) if any(tag in r.scalars for tag, _ in CURVES)]
    if not runs:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    colors = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")(np.arange(len(runs)) % 20)
    longest = max(len(run.scalars.get(tag, ((),))[0]) for run in runs for tag, _ in CURVES)
    for ax, (tag, title) in zip(axes.flat, CURVES):
        for run, color in zip(runs, colors):
            if tag in run.scalars:
                epochs, values = run.scalars[tag]
                # Runs that differ only in epochs retrace each other (same seed); longer runs are drawn
                # thicker and underneath, so a shorter run stays visible on top of its longer twin.
                width = 1.2 + 2.5 * len(epochs) / longest
                ax.plot(epochs, values, color=color, lw=width, zorder=3 - len(epochs) / longest,
                        marker="o" if len(epochs) <= 20 else None, markersize=2 + 2 * width, markerfacecolor="none",
                        label=run.label + ("" if run.ok else f" [{run.status}]"))
        ax.set_title(title)
        ax.set_ylabel("loss (normalized coords, log scale)" if "loss" in tag else "RMSE (px)")
        if "loss" in tag:
            ax.set_yscale("log")
            _plain_log_ticks(ax)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8,
               bbox_to_anchor=(0.5, -0.01 - 0.025 * ((len(labels) - 1) // 3)))
    fig.suptitle(f"{model}: learning curves (one line per run)")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ lr x epochs grid


def _grid_panel(ax, runs, title: str):
    """Heatmap of mean test error for each (lr, epochs) cell; failed cells are labelled, empty ones blank."""
    lrs = sorted({r.record.get("lr") for r in runs if r.record.get("lr") is not None})
    epochs = sorted({r.record.get("max_epochs") for r in runs if r.record.get("max_epochs") is not None})
    grid = np.full((len(lrs), len(epochs)), np.nan)
    notes = {}
    for i, lr in enumerate(lrs):
        for j, ep in enumerate(epochs):
            cell = [r for r in runs if r.record.get("lr") == lr and r.record.get("max_epochs") == ep]
            done = [r.test() for r in cell if r.ok and r.test() is not None]
            if done:
                grid[i, j] = np.mean(done)
                notes[i, j] = f"{grid[i, j]:.2f}" + (f"\n(mean of {len(done)})" if len(done) > 1 else "")
            elif cell:
                notes[i, j] = cell[0].status
    cmap = plt.get_cmap("viridis").copy()  # as in the error map: dark = low error = good
    cmap.set_bad("#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    finite = grid[np.isfinite(grid)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (i, j), text in notes.items():
        dark = np.isfinite(grid[i, j]) and (grid[i, j] < mid or finite.min() == finite.max())
        ax.text(j, i, text, ha="center", va="center", fontsize=10, color="white" if dark else "black")
    ax.set_xticks(range(len(epochs)), [str(e) for e in epochs])
    ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_xlabel("max epochs")
    ax.set_ylabel("learning rate")
    ax.set_title(title, fontsize=10)
    return image


def error_grid(runs, model: str, path: Path) -> Path | None:
    """Test mean Euclidean error as an lr x epochs grid; one panel per data setting."""
    by_setting = {}
    for run in runs:
        if run.record.get("lr") is not None and run.record.get("max_epochs") is not None:
            by_setting.setdefault(run.group, []).append(run)
    if not by_setting:
        return None
    n = len(by_setting)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 1, 3.8), squeeze=False)
    for ax, (setting, group) in zip(axes[0], sorted(by_setting.items())):
        image = _grid_panel(ax, group, setting or "test mean Euclidean error (px)")
        fig.colorbar(image, ax=ax, label="test mean Euclidean error (px)")
    fig.suptitle(f"{model}: test error by learning rate × epochs (lower is better)")
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ best-run plots


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
                 f"(mean error {run.test():.2f} px)")
    fig.tight_layout()
    return _save(fig, path)


def overlay(run, path: Path) -> Path | None:
    p = run.predictions
    if p is None:
        return None
    fig = overlay_figure(p[:, :2].astype(int), p[:, 2:], run.data["height"], run.data["width"],
                         title=f"{run.model} best run #{run.id}: test samples, best to worst "
                               "(green circle = true, red x = predicted)")
    fig.tight_layout()  # again: overlay_figure's single pass leaves the second row's titles on the first row
    return _save(fig, path)


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


def error_maps(best: dict, path: Path) -> Path | None:
    """Where on the image each model's best run fails; one panel per model, one shared colour scale."""
    runs = [r for r in best.values() if r.predictions is not None and r.data.get("height") and r.data.get("width")]
    if not runs:
        return None
    maps = [_error_map(r) for r in runs]
    vmax = max(np.nanmax(m) for m in maps)
    cmap = plt.get_cmap("viridis").copy()  # its light end is yellow, never confused with the white "no data"
    cmap.set_bad("white")
    fig, axes = plt.subplots(1, len(runs), figsize=(4.6 * len(runs) + 0.8, 4.6), squeeze=False)
    for ax, run, error in zip(axes[0], runs, maps):
        height, width = error.shape
        image = ax.imshow(error, cmap=cmap, vmin=0, vmax=vmax,
                          extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest")
        ax.set_facecolor("white")
        ax.set_title(f"{run.model} best run #{run.id}\n{int(np.isfinite(error).sum())} of {height * width} "
                     "positions tested", fontsize=10)
        ax.set_xlabel("x (column, px)")
        ax.set_ylabel("y (row, px)")
    fig.colorbar(image, ax=axes[0].tolist(), label="mean Euclidean error at that position (px)", shrink=0.9)
    fig.suptitle("Test error by position (white = no test image at that position)")
    return _save(fig, path)


def error_histograms(best: dict, path: Path) -> Path | None:
    """Distribution of per-image test error for each model's best run, on shared bins."""
    runs = [r for r in best.values() if r.errors is not None]
    if not runs:
        return None
    top = max(float(r.errors.max()) for r in runs)
    bins = np.linspace(0, top if top > 0 else 1, 31)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        ax.hist(run.errors, bins=bins, histtype="step", linewidth=2,
                label=f"{run.model} #{run.id} (mean {run.errors.mean():.2f} px, n={len(run.errors)})")
    ax.set_xlabel("Euclidean error per test image (px)")
    ax.set_ylabel("test images")
    ax.set_title("Test error distribution of each model's best run")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------- all plots


def make_all(runs, best: dict, folder: Path) -> list[tuple[str, Path]]:
    """Draw every plot the runs call for; a plot that fails is reported on stderr and skipped."""
    jobs = []
    for model in sorted({r.model for r in runs}):
        mine = [r for r in runs if r.model == model]
        jobs.append((f"Learning curves: {model}", learning_curves, (mine, model, folder / f"curves_{_safe(model)}.png")))
        if any(r.ok for r in mine):
            jobs.append((f"Test error by lr × epochs: {model}", error_grid,
                         (mine, model, folder / f"grid_{_safe(model)}.png")))
    for model, run in best.items():
        jobs.append((f"Predicted vs true x and y: {model} best run #{run.id}", pred_vs_true,
                     (run, folder / f"scatter_{_safe(model)}.png")))
        jobs.append((f"Sample overlays: {model} best run #{run.id}", overlay, (run, folder / f"overlay_{_safe(model)}.png")))
    jobs.append(("Spatial error map of each model's best run", error_maps, (best, folder / "error_map.png")))
    jobs.append(("Error histogram of each model's best run", error_histograms, (best, folder / "error_hist.png")))

    made = []
    for caption, draw, args in jobs:
        try:
            path = draw(*args)
        except Exception as err:  # one bad plot must not cost the whole report
            plt.close("all")
            print(f"warning: plot '{caption}' failed: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        if path is not None:
            made.append((caption, path))
    return made
