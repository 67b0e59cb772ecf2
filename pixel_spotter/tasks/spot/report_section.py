"""The spot task's section of the report (``pixel-spotter report``; torch-free, like the whole report):
RMSE / Cramér–Rao bound against photon count for every data=spot run
and the reference estimators (centroid, ML fit), from each run's ``per_photons`` (untrusted: a row without a
numeric photon count and a numeric bound is dropped, never an exception)."""

from __future__ import annotations

import math

TITLE = "Sub-pixel spots"
REFERENCES = ("centroid", "ml_fit")
NOTE = ("RMSE / Cramér–Rao bound (2D; 1.0 = the bound) per photon count, for each data=spot run and the reference "
        "estimators (centroid, maximum-likelihood fit told the PSF width) on the same images. The bound assumes the "
        "PSF width known; the column 'CRLB if σ_psf unknown' is the bound of an unbiased estimator that is not told "
        "it (a model's), in units of the first.")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def clean_rows(rows) -> list[dict]:
    """The well-formed rows of a ``per_photons`` list, sorted by photon count."""
    if not isinstance(rows, list):
        return []
    good = [r for r in rows if isinstance(r, dict) and _number(r.get("photons")) and _number(r.get("crlb_rmse_px"))]
    return sorted(good, key=lambda r: r["photons"])


def spot_series(entries) -> list[tuple[str, list[dict]]]:
    """(label, rows) of every finished run that measured RMSE/CRLB per photon count, in report order."""
    series = []
    for entry in entries:
        rows = clean_rows(entry.run.record.get("per_photons")) if entry.ok else []
        if rows:
            series.append((f"#{entry.id} {entry.model}", rows))
    return series


def by_test_set(series) -> list[list[tuple[str, list[dict]]]]:
    """The series grouped by the images they were measured on (same photon counts and bounds): references and
    bounds are only comparable within a group."""
    groups: dict[tuple, list] = {}
    for label, rows in series:
        key = tuple((r["photons"], round(r["crlb_rmse_px"], 9)) for r in rows)
        groups.setdefault(key, []).append((label, rows))
    return list(groups.values())


def ratio(row: dict, key: str) -> float | None:
    value = row.get(key)
    return value if _number(value) else None


def table(series) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: photons, the bound, each run's model, then the references of the first run."""
    first = series[0][1]
    photons = sorted({r["photons"] for _, rows in series for r in rows})
    columns = [(label, {r["photons"]: ratio(r, "model") for r in rows}) for label, rows in series]
    columns += [(ref, {r["photons"]: ratio(r, ref) for r in first}) for ref in REFERENCES]
    bounds = {r["photons"]: r["crlb_rmse_px"] for r in first}
    blind = {r["photons"]: ratio(r, "sigma_unknown") for r in first}
    headers = ["photons", "CRLB (px)", "CRLB if σ_psf unknown (× CRLB)",
               *(f"{label}: RMSE/CRLB" for label, _ in columns)]
    body = [[f"{n:g}", f"{bounds[n]:.4f}" if n in bounds else "—",
             f"{blind[n]:.3f}" if blind.get(n) is not None else "—",
             *(f"{c[n]:.3f}" if c.get(n) is not None else "—" for _, c in columns)] for n in photons]
    return headers, body


def plot(series, path):
    """RMSE/CRLB against photons (log-log), one line per run, dashed for the references; returns ``path``."""
    from pixel_spotter.evaluation.figures import plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for label, rows in series:
        pts = [(r["photons"], ratio(r, "model")) for r in rows if ratio(r, "model") is not None]
        ax.plot(*zip(*pts), "o-", label=label) if pts else None
    for ref, style in zip(REFERENCES, ("s--", "^--")):
        pts = [(r["photons"], ratio(r, ref)) for r in series[0][1] if ratio(r, ref) is not None]
        ax.plot(*zip(*pts), style, label=ref) if pts else None
    blind = [(r["photons"], ratio(r, "sigma_unknown")) for r in series[0][1] if ratio(r, "sigma_unknown")]
    ax.plot(*zip(*blind), ":", color="grey", label="CRLB, σ_psf unknown") if blind else None
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set(xscale="log", yscale="log", xlabel="photons N", ylabel="RMSE / CRLB (1 = the bound)")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def section(entries) -> dict | None:
    """{"note", "tables"}: RMSE/CRLB per photon count of the runs that measured it; None when none did."""
    from pixel_spotter.report.render import Table

    series = spot_series(entries)
    return {"note": NOTE, "tables": [Table(*table(group)) for group in by_test_set(series)]} if series else None


def plots(entries, folder) -> list[tuple]:
    """(caption, draw, args) of the section's figures, one per group of runs measured on the same images."""
    jobs = []
    for i, group in enumerate(by_test_set(spot_series(entries))):
        jobs.append(("Sub-pixel spots: RMSE / Cramér–Rao bound against photon count"
                     + (f" ({', '.join(label for label, _ in group)})" if i or len(group) > 1 else ""),
                     plot, (group, folder / f"spots{i or ''}.png")))
    return jobs
