"""The many-pixels task's section of the report (torch-free, like the whole report): every data=pixels run's
localization scores on its test frames, from its results.json (untrusted: a missing or non-numeric value shows as
a dash, never an exception)."""

from __future__ import annotations

import math

FRAMES = True  # this section is given the report's frame runs (analysis.frame_runs), not the ranked ones
TITLE = "Many bright pixels per frame"
NOTE = ("Each test frame holds K bright pixels (data.count), drawn from test positions only; a found pixel "
        "matches a true one within data.tolerance_px (0.5 px: the very pixel), one to one (Hungarian). "
        "'exact frames' is the share of test frames whose set was found exactly: every pixel, nothing else. The "
        "detection threshold was chosen on the validation frames.")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value, spec: str, scale: float = 1.0) -> str:
    return format(value * scale, spec) if _number(value) else "—"


def pixel_runs(runs) -> list:
    return [r for r in runs if (r.record.get("data") or {}).get("task") == "pixels"]


def table(runs) -> tuple[list[str], list[list[str]]]:
    headers = ["run", "model", "K per frame", "epochs", "train time (s)", "threshold", "F1", "exact frames %",
               "Jaccard", "RMSE (px)", "frames/s", "status"]
    body = []
    for run in runs:
        record, test = run.record, run.record.get("test") or {}
        count = (record.get("data") or {}).get("count")
        batched = (record.get("inference_ms_per_image") or {}).get("batched")
        body.append([f"#{run.id}", run.model, "–".join(map(str, count)) if isinstance(count, list) else "—",
                     str(record.get("epochs_run", "—")), _fmt(record.get("train_seconds"), ".1f"),
                     _fmt((record.get("decode") or {}).get("threshold"), ".2f"), _fmt(test.get("f1"), ".4f"),
                     _fmt(test.get("exact_frames"), ".1f", 100), _fmt(test.get("jaccard"), ".4f"),
                     _fmt(test.get("rmse_px"), ".3f"),
                     _fmt(1000 / batched if _number(batched) and batched > 0 else None, ".0f"),
                     str(record.get("status", "unfinished"))])
    return headers, body


def section(runs) -> dict | None:
    """{"note", "tables"} of the data=pixels runs; None when there are none."""
    from pixel_spotter.report.render import Table

    mine = pixel_runs(runs)
    return {"note": NOTE, "tables": [Table(*table(mine))]} if mine else None


def plots(runs, folder) -> list[tuple]:
    return []
