"""The robustness figure: exact % against severity, one panel per corruption (the single-corruption grid), then
exact % against noise, one panel per blur (rows) and rendering (columns) of the blur x noise grid; one line per
run and per reference detector (dashed). Drawn from the robustness table's rows by ``pixel-spotter robustness``
and again by the report."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pixel_spotter.report.plot_style import save
from pixel_spotter.report.robustness import RENDERING_NAMES, SEVERITY_NAMES, series_label

REFERENCE_STYLE = {"argmax": dict(color="0.45", ls="--", marker="s"),
                   "matched_filter": dict(color="black", ls=":", marker="D"),
                   "matched_filter_bank": dict(color="tab:brown", ls="-.", marker="^")}


class _Lines:
    """What every panel shares: the series (test set, run, model), their colours and the legend's handles."""

    def __init__(self, rows):
        self.test_sets = list(dict.fromkeys(r.test_set for r in rows))
        self.keys = list(dict.fromkeys((r.test_set, r.run, r.model) for r in rows))
        models = [k for k in self.keys if k[1] != "reference"]
        colors = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")(np.arange(max(len(models), 1)) % 20)
        self.color_of = dict(zip(models, colors))
        self.handles = {}

    def draw(self, ax, rows, x_of) -> None:
        """One line per series of ``rows``, x = ``x_of(row)``, y = exact % with its standard error."""
        for key in self.keys:
            line = sorted((r for r in rows if (r.test_set, r.run, r.model) == key), key=x_of)
            if not line:
                continue
            sample = line[0]
            style = (REFERENCE_STYLE.get(sample.model, dict(color="0.6", ls="--", marker="s")) if sample.reference
                     else dict(color=self.color_of[key], ls="-", marker="o"))
            drawn = ax.errorbar([x_of(r) for r in line], [100 * r.exact_acc for r in line],
                                yerr=[100 * r.exact_se for r in line], capsize=2, lw=1.4, markersize=4,
                                markerfacecolor="none", zorder=3 if sample.reference else 2, **style)
            self.handles.setdefault(series_label(sample, self.test_sets), drawn)


def _axes_style(ax, title: str, xlabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("exact %")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)


def _single_panels(axes, rows, lines: _Lines) -> None:
    for ax, corruption in zip(axes, dict.fromkeys(r.corruption for r in rows)):
        lines.draw(ax, [r for r in rows if r.corruption == corruption], lambda r: r.severity)
        unit = {"dimming": " (lower = dimmer)", "blur": " (px)"}.get(corruption, "")
        _axes_style(ax, corruption, SEVERITY_NAMES.get(corruption, "severity") + unit)
        if corruption == "dimming":
            ax.invert_xaxis()  # severity grows to the right: dimmer images


def _combined_panels(axes, rows, lines: _Lines) -> None:
    """axes[i][j]: blur i, rendering j; x = noise sigma."""
    blurs = sorted({r.severity for r in rows})
    renderings = list(dict.fromkeys(r.corruption for r in rows))
    for i, blur in enumerate(blurs):
        for j, rendering in enumerate(renderings):
            mine = [r for r in rows if r.corruption == rendering and r.severity == blur]
            lines.draw(axes[i][j], mine, lambda r: r.severity2)
            _axes_style(axes[i][j], f"blur σ {blur:g} px + noise, {RENDERING_NAMES.get(rendering, rendering)}",
                        "noise σ")


def robustness_plot(rows, path: Path) -> Path | None:
    """Save the figure of ``rows`` (RobustnessRow) to ``path``; None when there are no rows."""
    if not rows:
        return None
    single = [r for r in rows if r.severity2 is None]
    combined = [r for r in rows if r.severity2 is not None]
    n_single = len(dict.fromkeys(r.corruption for r in single))
    n_blurs, n_renderings = len({r.severity for r in combined}), len({r.corruption for r in combined})
    ncols = max(min(3, n_single), n_renderings)
    single_rows = math.ceil(n_single / ncols)
    nrows = single_rows + n_blurs
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False,
                             layout="constrained")
    lines = _Lines(rows)
    _single_panels(list(axes[:single_rows].flat), single, lines)
    _combined_panels(axes[single_rows:], combined, lines)
    used = [ax for ax in axes.flat if ax.has_data()]
    for ax in axes.flat:
        if ax not in used:
            ax.axis("off")
    fig.legend(list(lines.handles.values()), list(lines.handles.keys()), loc="outside lower center",
               ncol=min(4, len(lines.handles)), fontsize=8)
    title = "Exact % under one corruption at a time" if single else ""
    if combined:
        title += ("; below it, " if single else "Exact % under ") + "blur and noise together, per rendering"
    several = len(lines.test_sets) > 1
    fig.suptitle(title + " (± 1 standard error)"
                 + ("".join(f"\nset {i}: {s}" for i, s in enumerate(lines.test_sets, 1)) if several else ""),
                 fontsize=10)
    return save(fig, path)
