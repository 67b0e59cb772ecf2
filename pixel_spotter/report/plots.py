"""The report's plots (matplotlib, Agg, PNG): which figures an Analysis calls for, drawn and saved.

The figures themselves: plots_training.py (learning curves, lr x epochs grid, per model) and
plots_best.py (predicted vs true, overlays, error map, histogram, from the best runs' test predictions) and
plots_robustness.py (exact % against severity, from the robustness table).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt

from pixel_spotter import tasks
from pixel_spotter.report.analysis import Analysis
from pixel_spotter.report.plot_style import safe_name
from pixel_spotter.report.plots_best import error_histograms, error_maps, overlay, pred_vs_true
from pixel_spotter.report.plots_robustness import robustness_plot
from pixel_spotter.report.plots_training import error_grid, learning_curves
from pixel_spotter.run_folder import ROBUSTNESS_PLOT


def make_all(a: Analysis, folder: Path) -> list[tuple[str, Path]]:
    """Draw every plot the runs call for into ``folder``; returns (caption, path) pairs in report order. A
    plot that fails is reported on stderr and skipped. When the runs span several data settings the error
    map and histogram show each model's best run on each setting."""
    spread = list((a.by_setting if a.settings_vary else a.best).values())
    which = "each model's best run per data setting" if a.settings_vary else "each model's best run"
    jobs = []
    for model in a.models:
        mine = [e for e in a.runs if e.model == model]
        jobs.append((f"Learning curves: {model}", learning_curves,
                     (mine, model, folder / f"curves_{safe_name(model)}.png")))
        if any(e.ok for e in mine):
            jobs.append((f"Test error by lr × epochs: {model}", error_grid,
                         (mine, model, folder / f"grid_{safe_name(model)}.png")))
    for model, entry in a.best.items():
        jobs.append((f"Predicted vs true x and y: {model} best run #{entry.id}", pred_vs_true,
                     (entry, folder / f"scatter_{safe_name(model)}.png")))
        jobs.append((f"Sample overlays: {model} best run #{entry.id}", overlay,
                     (entry, folder / f"overlay_{safe_name(model)}.png")))
    jobs.append((f"Spatial error map of {which}", error_maps, (spread, folder / "error_map.png")))
    jobs.append((f"Error histogram of {which}", error_histograms, (spread, folder / "error_hist.png")))
    for module in tasks.report_sections():  # each task's own figures
        jobs += module.plots(a.frame_runs if getattr(module, "FRAMES", False) else a.runs, folder)
    if a.robustness is not None and (a.robustness.rows or a.robustness.combined):
        jobs.append(("Robustness: exact % against severity, one corruption at a time; then against noise, blur "
                     "and noise together, float, clipped and 8-bit",
                     robustness_plot, (a.robustness.rows + a.robustness.combined, folder / ROBUSTNESS_PLOT)))

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
