"""``pixel-spotter spots table FOLDER...`` (also ``pixel-spotter spots FOLDER...``): RMSE / CRLB against photon
count, for every ``data=spot`` run's model and the reference estimators (centroid, ML fit), from the runs'
results.json (``per_photons``, written when ``data.eval_photons`` is set): a table on stdout and a plot,
``spots.png`` in the first folder (or ``--plot``).

The references are those of the first run listed that has them (every run of one data setting evaluates them on
the same images); the images/s of each model and of the ML fit are shown side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import RunFolder, find_runs
from pixel_spotter.tasks.spot.report_section import clean_rows, ratio

REFERENCES = ("centroid", "ml_fit")


def spot_runs(folders: list[Path]) -> list[tuple[str, object]]:
    """(name, Results) of every ok run under ``folders`` with a per-photon evaluation; the name escaped where the
    folder's name is not UTF-8 or either holds control characters (both are untrusted)."""
    from pixel_spotter.report.load import printable

    runs = []
    for folder in folders:
        for run_dir in find_runs(folder):
            record = RunFolder(run_dir).read()
            record.per_photons = clean_rows(record.per_photons)  # untrusted rows: keep the well-formed ones
            if record.ok and record.per_photons:
                runs.append((printable(f"{record.model} ({run_dir.name})"), record))
    return runs


def table(runs) -> str:
    """RMSE/CRLB per photon count: one column per run's model, then the references (first run's)."""
    photons = sorted({row["photons"] for _, r in runs for row in r.per_photons})
    first = runs[0][1]
    columns = [(name, {row["photons"]: row["model"] for row in r.per_photons}) for name, r in runs]
    columns += [(ref, {row["photons"]: row.get(ref) for row in first.per_photons}) for ref in REFERENCES]
    width = max(12, *(len(name) for name, _ in columns))
    lines = ["RMSE / CRLB (2D; 1.0 = the Cramér–Rao bound; sigma?: the bound if sigma_psf is unknown, in units of it)",
             f"{'photons':>8} {'CRLB px':>8} {'sigma?':>6} " + " ".join(f"{name:>{width}}" for name, _ in columns)]
    bounds = {row["photons"]: row["crlb_rmse_px"] for row in first.per_photons}
    blind = {row["photons"]: ratio(row, "sigma_unknown") for row in first.per_photons}
    for n in photons:
        cells = " ".join(f"{c[n]:>{width}.3f}" if c.get(n) is not None else f"{'-':>{width}}" for _, c in columns)
        bound = f"{bounds[n]:8.4f}" if n in bounds else f"{'-':>8}"
        unknown = f"{blind[n]:6.3f}" if blind.get(n) is not None else f"{'-':>6}"
        lines.append(f"{n:>8g} {bound} {unknown} {cells}")
    lines.append("images/s: " + ", ".join(
        [f"{name} {r.images_per_s:,.0f}" for name, r in runs if r.images_per_s]
        + [f"ML fit {first.references['ml_fit']['images_per_s']:,.0f}"
           if first.references.get("ml_fit", {}).get("images_per_s") else "ML fit -"]))
    lines.append("training s: " + ", ".join(f"{name} {r.train_seconds:.0f}" for name, r in runs if r.train_seconds))
    return "\n".join(lines)


def plot(runs, path: Path) -> None:
    from pixel_spotter.evaluation.figures import plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for name, r in runs:
        rows = sorted(r.per_photons, key=lambda row: row["photons"])
        ax.plot([row["photons"] for row in rows], [row["model"] for row in rows], "o-", label=name)
    first = sorted(runs[0][1].per_photons, key=lambda row: row["photons"])
    for ref, style in zip(REFERENCES, ("s--", "^--")):
        ax.plot([row["photons"] for row in first], [row.get(ref) for row in first], style, label=ref)
    blind = [(row["photons"], ratio(row, "sigma_unknown")) for row in first if ratio(row, "sigma_unknown")]
    if blind:
        ax.plot(*zip(*blind), ":", color="grey", label="CRLB, sigma_psf unknown")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("photons N")
    ax.set_ylabel("RMSE / CRLB")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", type=Path, help="run or sweep folders of data=spot runs")
    parser.add_argument("--plot", type=Path, default=None, help="where the plot goes (default FOLDER/spots.png)")


def run_command(args: argparse.Namespace) -> int:
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        raise UserError(f"{missing[0]} is not a folder; pass data=spot run folders (outputs/<time>) or sweep folders")
    runs = spot_runs(args.folders)
    if not runs:
        raise UserError("no finished data=spot run with a per-photon evaluation (data.eval_photons) under "
                        + ", ".join(map(str, args.folders)))
    print(table(runs))
    path = args.plot or args.folders[0] / "spots.png"
    plot(runs, path)
    print(f"plot: {path}")
    return 0
