"""The robustness figure: exact % against severity, one panel per corruption, one line per run and per
reference detector (dashed). Drawn from the robustness table's rows by ``pixel-spotter robustness`` and again by the
report."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pixel_spotter.report.plot_style import save
from pixel_spotter.report.robustness import SEVERITY_NAMES, series_label

REFERENCE_STYLE = {"argmax": dict(color="0.45", ls="--", marker="s"),
                   "matched_filter": dict(color="black", ls=":", marker="D")}


def robustness_plot(rows, path: Path) -> Path | None:
    """Save the figure of ``rows`` (RobustnessRow) to ``path``; None when there are no rows."""
    if not rows:
        return None
    corruptions = list(dict.fromkeys(r.corruption for r in rows))
    test_sets = list(dict.fromkeys(r.test_set for r in rows))
    several = len(test_sets) > 1
    keys = list(dict.fromkeys((r.test_set, r.run, r.model) for r in rows))
    models = [k for k in keys if k[1] != "reference"]
    colors = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")(np.arange(max(len(models), 1)) % 20)
    color_of = dict(zip(models, colors))
    ncols = min(3, len(corruptions))
    nrows = math.ceil(len(corruptions) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False,
                             layout="constrained")
    handles = {}
    for ax, corruption in zip(axes.flat, corruptions):
        mine = [r for r in rows if r.corruption == corruption]
        for key in keys:
            line = sorted((r for r in mine if (r.test_set, r.run, r.model) == key), key=lambda r: r.severity)
            if not line:
                continue
            sample = line[0]
            style = (REFERENCE_STYLE.get(sample.model, dict(color="0.6", ls="--", marker="s")) if sample.reference
                     else dict(color=color_of[key], ls="-", marker="o"))
            x = [r.severity for r in line]
            y = [100 * r.exact_acc for r in line]
            err = [100 * r.exact_se for r in line]
            drawn = ax.errorbar(x, y, yerr=err, capsize=2, lw=1.4, markersize=4, markerfacecolor="none",
                                zorder=3 if sample.reference else 2, **style)
            handles.setdefault(series_label(sample, test_sets), drawn)
        ax.set_title(corruption)
        unit = {"dimming": " (lower = dimmer)", "blur": " (px)"}.get(corruption, "")
        ax.set_xlabel(SEVERITY_NAMES.get(corruption, "severity") + unit)
        ax.set_ylabel("exact %")
        ax.set_ylim(-3, 103)
        if corruption == "dimming":
            ax.invert_xaxis()  # severity grows to the right: dimmer images
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(corruptions):]:
        ax.axis("off")
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
               ncol=min(4, len(handles)), fontsize=8)
    fig.suptitle("Exact % under one corruption at a time (± 1 standard error)"
                 + ("".join(f"\nset {i}: {s}" for i, s in enumerate(test_sets, 1)) if several else ""), fontsize=10)
    return save(fig, path)
