"""The many-emitters task's section of the report (torch-free, like the whole report): every data=emitters run's
test scores next to the classical pipeline's on the same frames (results.json), each run's calibration curve (its
predicted sigmas against the errors they predict, on its test frames: results.json's ``calibration``), and, where
the density benchmark left its table in the run's folder (``pixel-spotter emitters bench RUN``: emitters.csv),
the table and a plot of the scores, and of the calibration (z RMS), against density. Both files are untrusted:
a missing or non-numeric value is a dash or a dropped row,
never an exception."""

from __future__ import annotations

import csv
import math
from pathlib import Path

FRAMES = True  # this section is given the report's frame runs (analysis.frame_runs), not the ranked ones
TITLE = "Many emitters per frame"
NOTE = ("Test frames scored as the SMLM Challenge 2016 scores them: localizations matched to true emitters within "
        "data.tolerance_nm (250 nm), one to one (Hungarian); Jaccard index, RMSE of the matched pairs, efficiency "
        "E = 100 − sqrt((100 (1 − JI))² + RMSE_nm²), and the pairs' RMSE over their single-emitter Cramér–Rao bound "
        "(a lower bound in crowded frames). The classical pipeline (matched-filter maxima, then an ML fit in a "
        "window) ran on the same frames; thresholds were chosen on validation frames. frames/s: network and decode, "
        "or the whole pipeline, on the run's machine.")
BENCH = "emitters.csv"
MAX_ROWS = 10_000
PLOTTED = (("efficiency", "efficiency E"), ("jaccard", "Jaccard index"), ("rmse_nm", "RMSE of matched pairs (nm)"),
           ("z_rms", "z RMS (error / predicted σ; 1: calibrated)"))
MAX_BINS = 100  # of a record's calibration curve (untrusted): more is not a curve this project writes


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value, spec: str) -> str:
    return format(value, spec) if _number(value) else "—"


def emitter_runs(runs) -> list:
    return [r for r in runs if (r.record.get("data") or {}).get("task") == "emitters"]


def runs_table(runs) -> tuple[list[str], list[list[str]]]:
    headers = ["run", "method", "epochs", "train time (s)", "Jaccard", "RMSE (nm)", "efficiency", "RMSE / CRLB",
               "z RMS", "frames/s", "status"]
    body = []
    for run in runs:
        record, test = run.record, run.record.get("test") or {}
        classical = (record.get("references") or {}).get("classical") or {}
        body.append([f"#{run.id}", run.model, str(record.get("epochs_run", "—")),
                     _fmt(record.get("train_seconds"), ".0f"), _fmt(test.get("jaccard"), ".3f"),
                     _fmt(test.get("rmse_nm"), ".1f"), _fmt(test.get("efficiency"), ".1f"),
                     _fmt(test.get("rmse_over_bound"), ".2f"), _fmt(test.get("z_rms"), ".2f"),
                     _fmt(record.get("images_per_s"), ".0f"), str(record.get("status", "unfinished"))])
        if classical:
            body.append([f"#{run.id}", "classical, same frames", "", "", _fmt(classical.get("jaccard"), ".3f"),
                         _fmt(classical.get("rmse_nm"), ".1f"), _fmt(classical.get("efficiency"), ".1f"),
                         _fmt(classical.get("rmse_over_bound"), ".2f"), "—",
                         _fmt(classical.get("frames_per_s"), ".0f"), ""])
    return headers, body


def _float(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def bench_rows(run) -> list[dict]:
    """The well-formed rows of the density benchmark's table in ``run``'s folder ([] when there is none)."""
    path = Path(run.path) / BENCH
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            raw = [row for _, row in zip(range(MAX_ROWS), csv.DictReader(handle))]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    rows = []
    for row in raw:
        density, method = _float(row.get("density_per_um2")), row.get("method")
        if density is None or density <= 0 or not isinstance(method, str) or not method.strip():
            continue
        rows.append({"density": density, "method": method.strip()[:80],
                     **{k: _float(row.get(k)) for k in ("jaccard", "rmse_nm", "efficiency", "rmse_over_bound",
                                                         "frames_per_s", "z_rms")}})
    return rows


def bench_table(rows) -> tuple[list[str], list[list[str]]]:
    headers = ["density (/µm²)", "method", "Jaccard", "RMSE (nm)", "efficiency", "RMSE / CRLB", "frames/s"]
    return headers, [[f"{r['density']:g}", r["method"], _fmt(r["jaccard"], ".3f"), _fmt(r["rmse_nm"], ".1f"),
                      _fmt(r["efficiency"], ".1f"), _fmt(r["rmse_over_bound"], ".2f"),
                      _fmt(r["frames_per_s"], ".0f")] for r in rows]


def section(runs) -> dict | None:
    """{"note", "tables"}: the runs' own scores, then each density benchmark found; None without emitter runs."""
    from pixel_spotter.report.render import Table

    mine = emitter_runs(runs)
    if not mine:
        return None
    tables = [Table(*runs_table(mine))]
    tables += [Table(*bench_table(rows)) for rows in map(bench_rows, mine) if rows]
    return {"note": NOTE, "tables": tables}


def calibration_points(run) -> list[tuple[float, float, float]]:
    """(predicted sigma nm, RMS error nm, coordinates) of ``run``'s calibration curve, the well-formed bins only
    (the record is untrusted)."""
    points = []
    for row in (run.record.get("calibration") or [])[:MAX_BINS]:
        if not isinstance(row, dict):
            continue
        sigma, error, count = (row.get(k) for k in ("sigma_nm", "rms_error_nm", "coordinates"))
        if all(_number(v) and v > 0 for v in (sigma, error, count)):
            points.append((float(sigma), float(error), float(count)))
    return sorted(points)


def calibration_plot(points, title, path):
    """RMS error against predicted sigma per bin, on the diagonal where calibrated; returns ``path``."""
    from pixel_spotter.evaluation.figures import plt

    fig, ax = plt.subplots(figsize=(4.6, 4.0), layout="constrained")
    sigma, error, count = zip(*points)
    ax.scatter(sigma, error, s=[8 + 40 * c / max(count) for c in count], label="test localizations, per bin")
    ax.plot(sigma, error, "-", alpha=0.5)
    low, high = min(sigma + error) / 1.3, max(sigma + error) * 1.3
    ax.plot([low, high], [low, high], "k--", lw=1, label="calibrated")
    ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high), xlabel="predicted σ per coordinate (nm)",
           ylabel="RMS error per coordinate (nm)", title=title)
    ax.legend(fontsize=7)
    from pixel_spotter.report.plot_style import save

    return save(fig, path)


def plot(rows, path):
    """Efficiency, Jaccard index, RMSE and z RMS against density, one line per method; returns ``path``."""
    from pixel_spotter.evaluation.figures import plt

    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(14, 3.6), layout="constrained")
    for ax, (key, label) in zip(axes, PLOTTED):
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = sorted((r["density"], r[key]) for r in rows if r["method"] == method and r[key] is not None)
            if pts:
                ax.plot(*zip(*pts), "o-", label=method)
        ax.set(xscale="log", xlabel="emitters per µm²", ylabel=label)
        if key == "z_rms":
            ax.axhline(1.0, color="k", ls="--", lw=1)  # calibrated
    axes[0].legend(fontsize=7)
    from pixel_spotter.report.plot_style import save

    return save(fig, path)


def plots(runs, folder) -> list[tuple]:
    jobs = []
    for i, run in enumerate(r for r in emitter_runs(runs) if len(calibration_points(r)) >= 2):
        jobs.append((f"Many emitters per frame: calibration of the predicted uncertainties (#{run.id}, test "
                     "frames; bins of predicted σ, dot size: their share)", calibration_plot,
                     (calibration_points(run), f"#{run.id} {run.model}", Path(folder) / f"calibration{i or ''}.png")))
    for i, run in enumerate(r for r in emitter_runs(runs) if bench_rows(r)):
        jobs.append((f"Many emitters per frame: scores against density (#{run.id})", plot,
                     (bench_rows(run), Path(folder) / f"emitters{i or ''}.png")))
    return jobs
