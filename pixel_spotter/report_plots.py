"""The report's plots (matplotlib, Agg, PNG). Every axis says what it shows and in which unit.

Each function draws one figure from already-loaded runs (see report.Run) and saves it; make_all
decides which figures a set of runs calls for and returns (caption, path) pairs for the report.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report writes files, it never opens windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pixel_spotter.figures import overlay_figure  # noqa: E402
from pixel_spotter.formatting import format_px  # noqa: E402

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
    """Log-scale y ticks as 0.3, 1, 2 rather than 3x10^-1; minor labels only at 2x and 5x."""
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.tick_params(axis="y", which="minor", labelsize=8)


# ------------------------------------------------------------------------------------------ learning curves


def learning_curves(runs, model: str, path: Path) -> Path | None:
    """Train/val loss and RMSE against epoch, one line (same colour in every panel) per run."""
    runs = [r for r in _sort_runs(runs) if any(tag in r.scalars for tag, _ in CURVES)]
    if not runs:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True, layout="constrained")
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
                        marker="o" if len(epochs) <= 20 else None, markersize=2 + 2 * width,
                        markerfacecolor="none")
        ax.set_title(title)
        ax.set_ylabel("loss (normalized coords)" if "loss" in tag else "RMSE (px)")
        values = np.concatenate([r.scalars[tag][1] for r in runs if tag in r.scalars] or [np.ones(1)])
        # log scale only when the loss spans a decade or more; otherwise it just hides the tick labels
        if "loss" in tag and values.min() > 0 and values.max() / values.min() > 10:
            ax.set_yscale("log")
            ax.set_ylabel("loss (normalized coords, log scale)")
            _plain_log_ticks(ax)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    labels = [run.label + ("" if run.ok else f" [{run.status}]") for run in runs]
    handles = [matplotlib.lines.Line2D([], [], color=c, lw=2, marker="o", markerfacecolor="none")
               for c in colors]
    longest_label = max(len(label) for label in labels)
    ncol = 1 if longest_label > 55 else 2 if longest_label > 35 else 3  # never wider than the figure
    fig.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(labels)), fontsize=8)
    fig.suptitle(f"{model}: learning curves (one line per run)")
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ lr x epochs grid


def _cell_values(runs, lrs, epochs):
    """Mean test error per (lr, epochs) cell (NaN if none finished) and the text to print in each cell."""
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
    return grid, notes


def _grid_panel(ax, runs, title: str, norm):
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
    ax.set_title(textwrap.fill(title, 45), fontsize=9)
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
                 f"(mean error {format_px(run.test())} px)")
    fig.tight_layout()
    return _save(fig, path)


def overlay(run, path: Path) -> Path | None:
    p = run.predictions
    if p is None:
        return None
    fig = overlay_figure(p[:, :2].astype(int), p[:, 2:], run.data["height"], run.data["width"],
                         title=f"{run.model} best run #{run.id}: test samples, best to worst "
                               "(green circle = true, red x = predicted)")
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


def _title(run) -> str:
    return f"{run.model} best run #{run.id}" + (f"\n{textwrap.fill(run.setting, 40)}" if run.setting else "")


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
        ax.set_title(f"{_title(run)}\n{int(np.isfinite(error).sum())} of {height * width} "
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
    return _save(fig, path)


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
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------- all plots


def make_all(runs, best: dict, folder: Path, per_setting: dict | None = None) -> list[tuple[str, Path]]:
    """Draw every plot the runs call for; a plot that fails is reported on stderr and skipped.

    ``best``: model -> best run; ``per_setting``: (model, data setting) -> best run, given when the runs
    span several settings, so the error map and histogram show each model on each setting."""
    spread = list((per_setting or best).values())
    which = "each model's best run per data setting" if per_setting else "each model's best run"
    jobs = []
    for model in sorted({r.model for r in runs}):
        mine = [r for r in runs if r.model == model]
        jobs.append((f"Learning curves: {model}", learning_curves,
                     (mine, model, folder / f"curves_{_safe(model)}.png")))
        if any(r.ok for r in mine):
            jobs.append((f"Test error by lr × epochs: {model}", error_grid,
                         (mine, model, folder / f"grid_{_safe(model)}.png")))
    for model, run in best.items():
        jobs.append((f"Predicted vs true x and y: {model} best run #{run.id}", pred_vs_true,
                     (run, folder / f"scatter_{_safe(model)}.png")))
        jobs.append((f"Sample overlays: {model} best run #{run.id}", overlay,
                     (run, folder / f"overlay_{_safe(model)}.png")))
    jobs.append((f"Spatial error map of {which}", error_maps, (spread, folder / "error_map.png")))
    jobs.append((f"Error histogram of {which}", error_histograms, (spread, folder / "error_hist.png")))

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
