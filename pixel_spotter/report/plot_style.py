"""What every report plot shares: headless matplotlib, resolution, file names, labels and tick style."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report writes files, it never opens windows
import matplotlib.pyplot as plt  # noqa: E402

from pixel_spotter.report.fmt import epochs_text, setting  # noqa: E402

DPI = 110


def safe_name(name: str) -> str:
    """A model name as a file name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def label(entry) -> str:
    """A run in a legend: '#3: lr 0.001, 16 epochs, split=quadrant'."""
    return (f"#{entry.id}: lr {setting(entry.record.get('lr'))}, {epochs_text(entry.record.get('max_epochs'))}"
            + (f", {entry.group}" if entry.group else ""))


def title(entry) -> str:
    """A best run in a panel title, with its data setting when settings differ."""
    return (f"{entry.model} best run #{entry.id}"
            + (f"\n{textwrap.fill(entry.setting, 40)}" if entry.setting else ""))


def plain_log_ticks(ax) -> None:
    """Log-scale y ticks as 0.3, 1, 2 rather than 3x10^-1; minor labels only at 2x and 5x."""
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.tick_params(axis="y", which="minor", labelsize=8)
