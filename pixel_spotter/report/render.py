"""Render: an Analysis as tables, report.md and a self-contained report.html (jinja2 templates), and runs.csv."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
from markupsafe import Markup

from pixel_spotter import tasks
from pixel_spotter.report import fmt, narrative, templates
from pixel_spotter.report.analysis import Analysis, Entry, SearchRanking, varying
from pixel_spotter.report.robustness import combined_lines, combined_table
from pixel_spotter.run_folder import atomic_write

TITLE = "pixel-spotter report"
SETTING_NOTE = ("Runs on different data settings measure different things (the quadrant split tests "
                "extrapolation to a quadrant never seen in training), so each setting is ranked apart.")


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    classes: list[str] | None = None  # a CSS class per row (HTML only)


# ------------------------------------------------------------------------------------------------ tables


def _status(e: Entry) -> str:
    if e.ok:
        return "ok"
    reason = e.record.get("error")
    text = f"{e.status}: {fmt.short(reason)}" if reason else e.status
    logged = len(e.curves.get("val/loss", ((),))[0])
    return text + (f"; {logged} epochs logged" if logged else "")


def _inference(e: Entry, key: str) -> float | None:
    return (e.record.get("inference_ms_per_image") or {}).get(key)


def _epochs(e: Entry) -> str:
    planned, ran = e.record.get("max_epochs"), e.record.get("epochs_run")
    return fmt.setting(planned) if ran is None or ran == planned else f"{fmt.setting(planned)} (ran {ran})"


# (header, cell) for the fixed columns; the Analysis's extra columns go in after "split".
HEAD_COLUMNS = [
    ("rank", lambda e: f"{e.rank} ★" if e.best_of_model else str(e.rank)),
    ("run", lambda e: e.id),
    ("model", lambda e: e.model),
    ("lr", lambda e: fmt.setting(e.record.get("lr"))),
    ("epochs", _epochs),
    ("weights used", lambda e: e.record.get("weights_used") or "—"),
    ("split", lambda e: e.data.get("split") or "—"),
]
TAIL_COLUMNS = [
    ("params", lambda e: fmt.count(e.record.get("params"))),
    ("train time (s)", lambda e: fmt.num(e.record.get("train_seconds"), 1)),
    ("infer ms/img (batched)", lambda e: fmt.num(_inference(e, "batched"), 3)),
    ("infer ms/img (single)", lambda e: fmt.num(_inference(e, "single"), 3)),
    ("test MSE (px²)", lambda e: fmt.format_px(e.test("mse_px"))),
    ("MAE (px)", lambda e: fmt.format_px(e.test("mae_px"))),
    ("RMSE (px)", lambda e: fmt.format_px(e.test("rmse_px"))),
    ("mean Euclid (px)", lambda e: fmt.format_px(e.test("euclid_px"))),
    ("exact %", lambda e: fmt.pct(e.test("exact_acc"))),
    ("≤1 px %", lambda e: fmt.pct(e.test("within1_acc"))),
    ("status", _status),
]
# The Analysis's extra columns by kind: (kind, key) -> (header, cell).
EXTRA_COLUMNS = {
    "image": lambda key: ("image", lambda e: f"{e.data.get('height', '?')}×{e.data.get('width', '?')}"),
    "setting": lambda key: (key, lambda e: fmt.setting(e.setting_values.get(key))),
    "seed": lambda key: ("seed", lambda e: fmt.setting(e.record.get("seed"))),
    "overlap": lambda key: ("test overlap %", lambda e: fmt.pct(e.overlap)),
    "override": lambda key: (key, lambda e: e.overrides.get(key, "(default)")),
}


def runs_table(a: Analysis) -> Table:
    columns = HEAD_COLUMNS + [EXTRA_COLUMNS[kind](key) for kind, key in a.extra_columns] + TAIL_COLUMNS
    classes = ["best" if e.best_of_model else "" if e.ok else "bad" for e in a.runs]
    return Table([h for h, _ in columns], [[cell(e) for _, cell in columns] for e in a.runs], classes)


def setting_table(a: Analysis) -> Table | None:
    """Model x data setting: each model's best run per setting (mean Euclidean px, exact %), or None when
    all runs share one setting (the Runs table already says everything then)."""
    if not a.settings_vary:
        return None
    headers = ["model"] + [f"{s}: {col}" for s in a.settings for col in ("mean Euclid (px)", "exact %", "run")]
    rows = []
    for model in a.models:
        row = [model]
        for name in a.settings:
            e = a.by_setting.get((model, name))
            row += [fmt.format_px(e.test()), fmt.pct(e.test("exact_acc")), f"#{e.id}"] if e else ["—"] * 3
        rows.append(row)
    return Table(headers, rows)


def robustness_table(a: Analysis) -> Table | None:
    """Exact % per corruption and severity (rows) for each run and reference detector (columns); None
    without a readable robustness table."""
    from pixel_spotter.report.robustness import series_label

    r = a.robustness
    if r is None or not r.rows:
        return None
    sets = r.test_sets
    series = list(dict.fromkeys((row.test_set, row.run, row.model) for row in r.rows))
    labels = {}
    cells: dict[tuple, dict] = {}
    counts: dict[tuple, set] = {}
    for row in r.rows:
        key = (row.test_set, row.run, row.model)
        labels.setdefault(key, series_label(row, sets))
        point = (row.corruption, row.severity)
        cells.setdefault(point, {})[key] = row
        counts.setdefault(point, set()).add(row.n)
    headers = ["corruption", "severity", "n"] + [f"{labels[k]}: exact %" for k in series]
    rows = []
    for (corruption, severity), found in cells.items():
        n = counts[(corruption, severity)]
        rows.append([corruption, fmt.setting(severity), fmt.setting(n.pop()) if len(n) == 1 else "varies"]
                    + [f"{100 * found[k].exact_acc:.1f} ± {100 * found[k].exact_se:.1f}" if k in found else "—"
                       for k in series])
    return Table(headers, rows)


def search_table(r: SearchRanking) -> Table:
    """A search's trials, best first by the metric it optimized: rank, trial, status, value, searched params."""
    headers = ["rank", "trial (job)", "status", r.metric, *r.params]
    rows = [[str(t.rank) if t.rank else "—", t.entry.id, _status(t.entry), fmt.metric(r.metric, t.value),
             *t.params.values()] for t in r.trials]
    classes = ["best" if t.rank == 1 else "" if t.rank else "bad" for t in r.trials]
    return Table(headers, rows, classes)


# -------------------------------------------------------------------------------------- markdown, html


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _inline(text) -> Markup:
    """Escape, then render the two bits of Markdown the report uses: `code` and **bold**."""
    text = html.escape(str(text), quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return Markup(re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text))


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             autoescape=autoescape, undefined=jinja2.StrictUndefined)
    env.filters.update(md_cell=_md_cell, inline=_inline, attr=lambda text: Markup(html.escape(str(text))))
    return env


def context(a: Analysis, folders: list[Path], plots: list[tuple[str, Path]], out: Path,
            generated: datetime) -> dict:
    """What both documents show; plot paths relative to ``out``."""
    return {"title": TITLE, "intro": narrative.intro(folders, generated), "setting_note": SETTING_NOTE,
            "setting_table": setting_table(a), "runs_table": runs_table(a), "summary": narrative.summary(a),
            "searches": [{"lines": narrative.search(r), "table": search_table(r), "command": r.command}
                         for r in a.searches],
            "problems": narrative.problems(a), "robustness": _robustness_context(a), "sections": _task_sections(a),
            "plots": [{"caption": caption, "file": path, "path": path.relative_to(out).as_posix()}
                      for caption, path in plots]}


def _task_sections(a: Analysis) -> list[dict]:
    """Each task's own section ({"title", "note", "tables"}) for the runs it applies to (tasks.report_sections)."""
    sections = []
    for module in tasks.report_sections():
        part = module.section(a.frame_runs if getattr(module, "FRAMES", False) else a.runs)
        if part is not None:
            sections.append({"title": module.TITLE, **part})
    return sections


def _robustness_context(a: Analysis) -> dict | None:
    if a.robustness is None:
        return None
    return {"note": narrative.ROBUSTNESS_NOTE, "lines": narrative.robustness(a) + combined_lines(a.robustness),
            "table": robustness_table(a), "combined_table": combined_table(a.robustness)}


def to_markdown(ctx: dict) -> str:
    return _environment(autoescape=False).from_string(templates.MARKDOWN).render(ctx)


def to_html(ctx: dict) -> str:
    """Self-contained: inline CSS, plots as base64 data URIs, no external references."""
    plots = [{**p, "data": base64.b64encode(Path(p["file"]).read_bytes()).decode("ascii")} for p in ctx["plots"]]
    return _environment(autoescape=True).from_string(templates.HTML).render(
        {**ctx, "plots": plots, "css": Markup(templates.CSS)})


# ----------------------------------------------------------------------------------------------- runs.csv


def _flatten(record: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


# Known columns in a readable order; anything else the run record holds follows alphabetically.
CSV_ORDER = ["rank", "run", "best_of_model", "status", "error", "model", "lr", "max_epochs", "epochs_run",
             "weights_used", "data.split", "data.height", "data.width", "test_overlap", "params",
             "train_seconds", "inference_ms_per_image.batched", "inference_ms_per_image.single"]


def csv_rows(a: Analysis) -> tuple[list[str], list[dict]]:
    """One row per run with every field of its record; columns that vary across runs come first."""
    rows = [{"rank": e.rank, "run": e.id, "best_of_model": e.best_of_model, **_flatten(e.record),
             "path": str(e.path)} for e in a.runs]
    keys = list(dict.fromkeys(k for row in rows for k in row))
    keys = [k for k in CSV_ORDER if k in keys] + sorted(k for k in keys if k not in CSV_ORDER)
    # varying columns first; sorted() is stable, so each part keeps the order above
    keys = sorted(keys, key=lambda k: not varying([row.get(k) for row in rows]))
    return keys, rows


# A spreadsheet program runs a cell that starts with one of these as a formula; run records are untrusted text
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """A CSV cell a spreadsheet shows as text: numbers as they are (repr-exact floats: str(float) round-trips, so
    the CSV holds the very numbers of the run records), a string that would start a formula quoted with '."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(path: Path, a: Analysis) -> None:
    keys, rows = csv_rows(a)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow([_cell(k) for k in keys])
    writer.writerows([_cell(row.get(k)) for k in keys] for row in rows)
    atomic_write(path, text.getvalue())


def write(a: Analysis, folders: list[Path], plots: list[tuple[str, Path]], out: Path,
          generated: datetime | None = None) -> dict[str, Path]:
    """runs.csv, report.md and report.html in ``out``; returns their paths."""
    ctx = context(a, folders, plots, out, generated or datetime.now())
    paths = {"csv": out / "runs.csv", "md": out / "report.md", "html": out / "report.html"}
    write_csv(paths["csv"], a)
    atomic_write(paths["md"], to_markdown(ctx))
    atomic_write(paths["html"], to_html(ctx))
    return paths
