"""`pixel-spotter report SWEEP_DIR [SWEEP_DIR ...]`: compare the runs of one or more sweeps.

Reads only what each run left behind (results.json, .hydra/, TensorBoard scalars, predictions.csv);
it never retrains, so a 12-run sweep takes seconds. Writes into the first folder (or ``--out``):
``runs.csv``, ``report.md``, a self-contained ``report.html`` and ``plots/*.png`` (report_plots.py).

The way through this file: collect (find_run_dirs -> load_run) -> annotate (rank, best per model, labels)
-> table rows -> summary sentences (computed from the numbers) -> write csv / md / html.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from pixel_spotter.cli import run_safely
from pixel_spotter.errors import UserError
from pixel_spotter.formatting import format_px
from pixel_spotter.run_folder import NOT_STARTED, RunFolder, natural_key, sweep_jobs

RANK_METRIC = "euclid_px"  # "best" everywhere in the report means the lowest test mean Euclidean error
# Seed 003 claims the fine-tuned ResNet18 beats the baseline CNN "significantly"; the report checks that
# claim when both models are present. Every other part of the report works for any model name.
CLAIM_CHALLENGER, CLAIM_BASELINE = "resnet18", "cnn"
# Data keys that describe *what is measured* (runs differing here are not comparable); batch sizes,
# workers and seeds are training details, shown as columns when they vary but never grouped on.
SETTING_KEYS = ("height", "width", "split", "fractions", "heldout_quadrant", "random_train_size")
# Override keys already shown by a fixed table column (other varying overrides get their own column).
COVERED_OVERRIDES = {"model", "model.lr", "trainer.max_epochs", "model.net.weights", "seed"}


class ReportInputError(UserError):
    """A folder that does not exist or holds no runs."""


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    path: Path
    id: str  # short name for tables and legends: the job number ("3"), prefixed by the sweep if several
    record: dict
    scalars: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # tag -> (epochs, values)
    notes: list[str] = field(default_factory=list)  # problems met while reading this run
    rank: int | None = None
    best_of_model: bool = False
    setting: str = ""  # the data settings that tell this run apart from others ("" if all runs share them)
    variant: str = ""  # the weight source, when it differs between runs of this model
    label: str = ""

    @property
    def group(self) -> str:
        """What must be equal for two runs of a model to measure the same thing (data setting, weights)."""
        return ", ".join(part for part in (self.setting, self.variant) if part)

    @property
    def status(self) -> str:
        return self.record.get("status", "unfinished")

    @property
    def ok(self) -> bool:
        """Finished, scored and finite (every summary below relies on a test error being there); runs that
        failed, diverged or never finished are listed but never ranked."""
        error = self.test()
        return self.status == "ok" and error is not None and math.isfinite(error)

    @property
    def model(self) -> str:
        return str(self.record.get("model") or "?")

    @property
    def data(self) -> dict:
        return self.record.get("data") or {}

    @property
    def overlap(self) -> float | None:
        return self.record.get("test_overlap")

    @property
    def honest(self) -> bool:
        """Test positions unseen in training (overlap 0); the random split is not."""
        return not self.overlap

    def test(self, name: str = RANK_METRIC) -> float | None:
        return (self.record.get("test") or {}).get(name)

    @cached_property
    def predictions(self) -> np.ndarray | None:
        """(N, 4) x_true, y_true, x_pred, y_pred in pixels, or None when the run left none (or none usable)."""
        table, problem = RunFolder(self.path).read_predictions(self.data.get("height"), self.data.get("width"))
        if problem:
            self.notes.append(problem)
        return table

    @cached_property
    def errors(self) -> np.ndarray | None:
        """Per-test-image Euclidean error (px)."""
        p = self.predictions
        return None if p is None else np.hypot(p[:, 2] - p[:, 0], p[:, 3] - p[:, 1])


def read_scalars(tb_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-epoch scalars of a run, keyed by tag, with the x axis in epochs (1 = after the first epoch).

    Lightning logs each epoch's values at a global step and logs ``epoch`` at the same step, so the
    ``epoch`` scalar maps steps to epochs. TensorBoard's own reader merges the run's event files.
    """
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    if not tb_dir.is_dir():
        return {}
    # purge_orphaned_data=False: the HPARAMS summary is written at step 0 after training; the default
    # purge would treat that as a restart and could drop the curves.
    acc = EventAccumulator(str(tb_dir), size_guidance={SCALARS: 0}, purge_orphaned_data=False)
    acc.Reload()
    tags = acc.Tags().get("scalars", [])
    step_to_epoch = {e.step: e.value for e in acc.Scalars("epoch")} if "epoch" in tags else {}
    curves = {}
    for tag in tags:
        if not tag.startswith(("train/", "val/")):
            continue
        # a resumed run logs again the steps after its last checkpoint: the later value of a step wins
        events = list({e.step: e for e in acc.Scalars(tag)}.values())
        events.sort(key=lambda e: e.step)
        epochs = [step_to_epoch.get(e.step, i) + 1 for i, e in enumerate(events)]
        curves[tag] = (np.asarray(epochs, dtype=float), np.asarray([e.value for e in events], dtype=float))
    return curves


def load_run(run_dir: Path, run_id: str) -> Run:
    """One run, never raising: what cannot be read becomes a note in the report."""
    folder, notes = RunFolder(run_dir), []
    try:
        record = folder.read_hydra()
    except Exception as err:  # a half-written, hand-edited or planted .hydra/ must not stop the report
        record = {}
        notes.append(f".hydra/ unreadable ({type(err).__name__}: {_short(err)})")
    # the record's own values win; its empty defaults do not erase what .hydra/ says about an unfinished run
    record.update({k: v for k, v in folder.read().as_dict().items() if v not in (None, {}, [])})
    if record.get("status") == "failed" and folder.error_file.is_file():
        record.setdefault("error_file", str(folder.error_file))
    run = Run(path=run_dir, id=run_id, record=record, notes=notes)
    try:
        run.scalars = read_scalars(folder.tensorboard)
    except Exception as err:
        run.notes.append(f"TensorBoard logs unreadable ({type(err).__name__}: {_short(err)})")
    return run


def _not_started(sweep: Path, run_id: str, overrides: list[str]) -> Run:
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), None)
    record = {"status": NOT_STARTED, "overrides": overrides, "model": model,
              "error": f"never started (the sweep stopped first): {' '.join(overrides)}; run the sweep's command "
                       f"again with resume=true hydra.sweep.dir={sweep}"}
    return Run(path=sweep, id=run_id, record=record)


def collect(folders: list[Path]) -> list[Run]:
    """All runs under the given folders, plus a sweep's jobs that never started; one clear
    ReportInputError for a missing or empty folder."""
    runs = []
    folders = list(dict.fromkeys(folders))  # the same folder twice must not list its runs twice
    for folder in folders:
        if not folder.is_dir():
            raise ReportInputError(f"{folder} is not a folder (expected a sweep folder, "
                                   "e.g. multirun/<date>)")
        jobs = sweep_jobs(folder)
        if not jobs:
            raise ReportInputError(f"no runs found in {folder} (expected a sweep folder or a run folder)")
        prefix = f"{folder.name}/" if len(folders) > 1 else ""
        runs += [load_run(job.path, prefix + job.name) if job.path else
                 _not_started(folder, prefix + job.name, job.overrides) for job in jobs]
    return runs


# ---------------------------------------------------------------------------- settings, ranking, labels


def _setting(run: Run) -> dict:
    """Data settings that define what a run measures; options its split ignores are left out."""
    data = run.data
    setting = {k: data.get(k) for k in SETTING_KEYS if k in data}
    if data.get("split") != "quadrant":
        setting.pop("heldout_quadrant", None)
    if data.get("split") != "random":
        setting.pop("random_train_size", None)
    return setting


def _varying(values: list) -> bool:
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1


def _overrides(run: Run) -> dict[str, str]:
    return dict(o.split("=", 1) for o in run.record.get("overrides") or [] if "=" in o)


def extra_columns(runs: list[Run]) -> list[tuple[str, callable]]:
    """Columns for whatever else varies across runs (image size, held-out quadrant, seed, optimizer...)."""
    cols = []
    settings = [_setting(r) for r in runs]
    if _varying([(s.get("height"), s.get("width")) for s in settings]):
        cols.append(("image", lambda r: f"{r.data.get('height', '?')}×{r.data.get('width', '?')}"))
    for key in ("fractions", "heldout_quadrant", "random_train_size"):
        if _varying([s.get(key) for s in settings]):
            cols.append((key, lambda r, k=key: _fmt(_setting(r).get(k))))
    if _varying([r.record.get("seed") for r in runs]):
        cols.append(("seed", lambda r: _fmt(r.record.get("seed"))))
    if any(r.overlap for r in runs):
        cols.append(("test overlap %", lambda r: _pct(r.overlap)))
    covered = COVERED_OVERRIDES | {f"data.{k}" for k in SETTING_KEYS}
    keys = sorted({k for r in runs for k in _overrides(r)} - covered)
    for key in keys:
        if not key.startswith("hydra.") and _varying([_overrides(r).get(key) for r in runs]):
            cols.append((key, lambda r, k=key: _overrides(r).get(k, "(default)")))
    return cols


def best_pool(runs: list[Run]) -> list[Run]:
    """Finished runs to pick a model's best from: the honest ones when there are any, since a
    random-split run partly tests on its training positions and would win for the wrong reason."""
    done = [r for r in runs if r.ok and r.test() is not None]
    honest = [r for r in done if r.honest]
    return honest or done


def models(runs: list[Run]) -> list[str]:
    return sorted({r.model for r in runs})


def best_runs(runs: list[Run]) -> dict[str, Run]:
    """model -> its best run (lowest test error in ``best_pool``)."""
    best = {}
    for model in models(runs):
        pool = best_pool([r for r in runs if r.model == model])
        if pool:
            best[model] = min(pool, key=lambda r: r.test())
    return best


def best_by_setting(runs: list[Run]) -> dict[tuple[str, str], Run]:
    """(model, data setting) -> that model's best finished run on that setting. Unlike ``best_runs`` a
    random-split run can be picked here: its setting is its own column, never mixed with honest ones."""
    best: dict[tuple[str, str], Run] = {}
    for run in runs:
        key = (run.model, run.setting)
        if run.ok and (key not in best or run.test() < best[key].test()):
            best[key] = run
    return dict(sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])))


def settings_vary(runs: list[Run]) -> bool:
    """More than one data setting among the finished runs (so per-setting tables and plots are due)."""
    return len({r.setting for r in runs if r.ok}) > 1


def annotate(runs: list[Run]) -> list[Run]:
    """Sort best first (unfinished last), set rank, best-of-model flag, data setting and label."""
    runs = sorted(runs, key=lambda r: (not r.ok, r.test() if r.ok and r.test() is not None else math.inf,
                                       natural_key(r.id)))
    for i, run in enumerate(runs, 1):
        run.rank = i
    for run in best_runs(runs).values():
        run.best_of_model = True
    settings = [_setting(r) for r in runs]
    varying = [k for k in SETTING_KEYS if _varying([s.get(k) for s in settings])]
    for run, setting in zip(runs, settings):
        run.setting = ", ".join(f"{k}={_fmt(setting[k])}" for k in varying if k in setting)
    for model in models(runs):
        # ImageNet-initialised and scratch runs of one model answer different questions: keep them apart
        mine = [r for r in runs if r.model == model and r.record.get("weights_used")]
        if _varying([r.record["weights_used"] for r in mine]):
            for run in mine:
                run.variant = f"weights={run.record['weights_used']}"
    for run in runs:
        run.label = f"#{run.id}: lr {_fmt(run.record.get('lr'))}, {_epochs_text(run)}" + (
            f", {run.group}" if run.group else "")
    return runs


# ------------------------------------------------------------------------------------------- formatting


def _fmt(value) -> str:
    """Settings as people write them: 0.001, 1e-05, 16, 0.7/0.15/0.15."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "/".join(_fmt(v) for v in value)
    return str(value)


def _num(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(fraction) -> str:
    return "—" if fraction is None else f"{100 * fraction:.1f}"


def _count(n) -> str:
    if n is None:
        return "—"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _short(text: str, limit: int = 140) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status(run: Run) -> str:
    if run.ok:
        return "ok"
    reason = run.record.get("error")
    text = f"{run.status}: {_short(reason)}" if reason else run.status
    logged = len(run.scalars.get("val/loss", ((),))[0])
    return text + (f"; {logged} epochs logged" if logged else "")


def _inference(run: Run, key: str) -> float | None:
    return (run.record.get("inference_ms_per_image") or {}).get(key)


def _epochs_text(run: Run) -> str:
    n = run.record.get("max_epochs")
    return f"{_fmt(n)} epoch" + ("" if n == 1 else "s")


def _epochs(run: Run) -> str:
    planned, ran = run.record.get("max_epochs"), run.record.get("epochs_run")
    return _fmt(planned) if ran is None or ran == planned else f"{_fmt(planned)} (ran {ran})"


# ------------------------------------------------------------------------------------------------ table

# (header, cell) for the fixed columns; extra_columns() go in after "split".
HEAD_COLUMNS = [
    ("rank", lambda r: f"{r.rank} ★" if r.best_of_model else str(r.rank)),
    ("run", lambda r: r.id),
    ("model", lambda r: r.model),
    ("lr", lambda r: _fmt(r.record.get("lr"))),
    ("epochs", _epochs),
    ("weights used", lambda r: r.record.get("weights_used") or "—"),
    ("split", lambda r: r.data.get("split") or "—"),
]
TAIL_COLUMNS = [
    ("params", lambda r: _count(r.record.get("params"))),
    ("train time (s)", lambda r: _num(r.record.get("train_seconds"), 1)),
    ("infer ms/img (batched)", lambda r: _num(_inference(r, "batched"), 3)),
    ("infer ms/img (single)", lambda r: _num(_inference(r, "single"), 3)),
    ("test MSE (px²)", lambda r: format_px(r.test("mse_px"))),
    ("MAE (px)", lambda r: format_px(r.test("mae_px"))),
    ("RMSE (px)", lambda r: format_px(r.test("rmse_px"))),
    ("mean Euclid (px)", lambda r: format_px(r.test("euclid_px"))),
    ("exact %", lambda r: _pct(r.test("exact_acc"))),
    ("≤1 px %", lambda r: _pct(r.test("within1_acc"))),
    ("status", _status),
]


def table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    columns = HEAD_COLUMNS + extra_columns(runs) + TAIL_COLUMNS
    return [h for h, _ in columns], [[cell(r) for _, cell in columns] for r in runs]


# ---------------------------------------------------------------------------------------------- summary


def _describe(run: Run) -> str:
    return (f"`#{run.id}` ({run.model}, lr {_fmt(run.record.get('lr'))}, {_epochs_text(run)}"
            + (f", {run.group}" if run.group else "") + f"): {format_px(run.test())} px mean Euclidean error, "
            f"{_pct(run.test('exact_acc'))}% exact, {_pct(run.test('within1_acc'))}% within 1 px")


def summary_best(runs: list[Run]) -> list[str]:
    best = best_runs(runs)
    if not best:
        return ["No run finished, so there is nothing to rank."]
    overall = min(best.values(), key=lambda r: r.test())
    lines = [f"**Best run overall**: {_describe(overall)}."]
    if len(best) > 1 and not settings_vary(runs):  # else the per-setting lines below say it better
        lines += [f"Best {model}: {_describe(run)}." for model, run in best.items()]
    if any(not r.honest for r in runs if r.ok):
        lines.append("Best runs are chosen among runs whose test positions were never seen in training "
                     "(random-split runs are listed but not picked).")
    return lines


def summary_settings(runs: list[Run]) -> list[str]:
    """The winner of each data setting, when runs were made on several (e.g. both splits)."""
    if not settings_vary(runs):
        return []
    best = best_by_setting(runs)
    lines = []
    for setting in dict.fromkeys(s for _, s in best):
        mine = sorted((r for (_, s), r in best.items() if s == setting), key=lambda r: r.test())
        text = f"Best on **{setting}**: {_describe(mine[0])}"
        if len(mine) > 1:
            text += "; then " + ", ".join(f"{r.model} {format_px(r.test())} px / {_pct(r.test('exact_acc'))}%"
                                          for r in mine[1:])
        lines.append(text + ".")
    return lines


def _span(values: list[float], fmt) -> str:
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


def summary_seeds(runs: list[Run]) -> list[str]:
    """Run-to-run spread where the same training was repeated with several seeds."""
    repeats: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.ok:
            key = (run.model, run.group, run.record.get("lr"), run.record.get("max_epochs"))
            repeats.setdefault(key, []).append(run)
    lines = []
    for (model, group, lr, epochs), mine in repeats.items():
        seeds = sorted({r.record.get("seed") for r in mine}, key=str)
        if len(seeds) < 2:
            continue
        where = (f"{model}, lr {_fmt(lr)}, {_fmt(epochs)} epoch{'' if epochs == 1 else 's'}"
                 + (f", {group}" if group else ""))
        text = (f"Over {len(seeds)} seeds ({where}): exact {_span([r.test('exact_acc') for r in mine], _pct)} %, "
                f"mean Euclidean error {_span([r.test() for r in mine], format_px)} px")
        times = [r.record["train_seconds"] for r in mine if r.record.get("train_seconds") is not None]
        lines.append(text + (f", train time {_span(times, lambda t: f'{t:.1f}')} s." if times else "."))
    return lines


def setting_table(runs: list[Run]) -> tuple[list[str], list[list[str]]] | None:
    """Model x data setting: each model's best run per setting (mean Euclidean px, exact %), or None
    when all runs share one setting (the Runs table already says everything then)."""
    if not settings_vary(runs):
        return None
    best = best_by_setting(runs)
    settings = list(dict.fromkeys(s for _, s in best))
    headers = ["model"] + [f"{s}: {col}" for s in settings for col in ("mean Euclid (px)", "exact %", "run")]
    rows = []
    for model in models(runs):
        row = [model]
        for setting in settings:
            run = best.get((model, setting))
            row += ([format_px(run.test()), _pct(run.test("exact_acc")), f"#{run.id}"] if run else ["—"] * 3)
        rows.append(row)
    return headers, rows


def _groups(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    """Finished runs by (model, data setting, weights): only runs inside one group measure the same thing."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        if run.ok and run.test() is not None:
            groups.setdefault((run.model, run.group), []).append(run)
    return dict(sorted(groups.items()))


def factor_effect(group: list[Run], key: str, name: str) -> str | None:
    """Mean test error per value of ``key``, averaged over the group's other factors (None: one value)."""
    by_value: dict = {}
    for run in group:
        by_value.setdefault(run.record.get(key), []).append(run.test())
    if len(by_value) < 2:
        return None
    means = {v: float(np.mean(errs)) for v, errs in by_value.items()}
    parts = [f"{name} {_fmt(v)} → {means[v]:.3f} px (n={len(by_value[v])})"
             for v in sorted(means, key=lambda v: (v is None, v))]
    best, worst = min(means, key=means.get), max(means, key=means.get)
    change = 100 * (means[worst] - means[best]) / means[worst] if means[worst] else 0.0
    return (f"{', '.join(parts)}; best {name} {_fmt(best)}, "
            f"{change:.0f}% lower error than {name} {_fmt(worst)}")


def summary_factors(runs: list[Run]) -> list[str]:
    lines = []
    groups = _groups(runs)
    for key, name, plural in (("lr", "lr", "learning rates"), ("max_epochs", "epochs", "epoch counts")):
        found = []
        for (model, group_name), group in groups.items():
            effect = factor_effect(group, key, name)
            where = f"{model} [{group_name}]" if group_name else model
            if effect:
                found.append(f"Effect of {name}, {where}: {effect}.")
        if not found and groups:
            found.append(f"Effect of {name}: not measurable; no model ran two or more {plural} "
                         "under otherwise equal settings.")
        lines += found
    if any("→" in line for line in lines):
        lines.append("(Mean test Euclidean error of the runs with that value, averaged over the other "
                     "factors; n = runs averaged.)")
    return lines


def _paired(a: Run, b: Run) -> tuple[float, float, int] | None:
    """Mean and 95% half-width (normal approximation) of a's minus b's per-image error, when both runs
    were tested on the same positions; None otherwise."""
    pa, pb = a.predictions, b.predictions
    if pa is None or pb is None or len(pa) != len(pb):
        return None
    oa, ob = np.lexsort((pa[:, 0], pa[:, 1])), np.lexsort((pb[:, 0], pb[:, 1]))
    if not np.array_equal(pa[oa, :2], pb[ob, :2]):
        return None
    diff = a.errors[oa] - b.errors[ob]
    half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.inf
    return float(diff.mean()), float(half), len(diff)


def _settings_key(run: Run) -> tuple:
    return run.record.get("lr"), run.record.get("max_epochs"), run.setting, run.record.get("seed")


def _matched(runs: list[Run], challenger: str, baseline: str) -> list[tuple[Run, Run]]:
    """(challenger run, baseline run) pairs with the same lr, epochs, data and seed."""
    base = {_settings_key(r): r for r in runs if r.ok and r.model == baseline}
    return [(r, base[_settings_key(r)]) for r in runs
            if r.ok and r.model == challenger and _settings_key(r) in base]


def summary_claim(runs: list[Run], challenger: str = CLAIM_CHALLENGER,
                  baseline: str = CLAIM_BASELINE) -> list[str]:
    """Does the challenger beat the baseline, by how much, and is the difference beyond noise?"""
    best = best_runs(runs)
    if challenger not in best or baseline not in best:
        return []
    c, b = best[challenger], best[baseline]
    diff = c.test() - b.test()
    lines = [f"**{challenger} vs {baseline}** (seed 003 claims the fine-tuned {challenger} wins "
             f"\"significantly\"): the best {challenger} run `#{c.id}` ({c.test():.3f} px) "
             f"{'beat' if diff < 0 else 'did not beat'} the best {baseline} run `#{b.id}` "
             f"({b.test():.3f} px): "
             f"{abs(diff):.3f} px ({100 * abs(diff) / b.test():.0f}%) {'lower' if diff < 0 else 'higher'} "
             "mean Euclidean error."]
    paired = _paired(c, b)
    if paired:
        mean, half, n = paired
        lines.append(f"Per test image (the same {n} positions), {challenger} minus {baseline} error = "
                     f"{mean:+.3f} ± {half:.3f} px (95% CI): the difference is "
                     f"{'larger than' if abs(mean) > half else 'within'} the noise of this test set.")
    pairs = _matched(runs, challenger, baseline)
    if pairs:
        wins = sum(cr.test() < br.test() for cr, br in pairs)
        mean_diff = float(np.mean([cr.test() - br.test() for cr, br in pairs]))
        lines.append(f"Across {len(pairs)} matched settings (same lr, epochs, data, seed) {challenger} had "
                     f"the lower error in {wins}; mean difference {mean_diff:+.3f} px.")
    weights = sorted({str(r.record.get("weights_used")) for r in runs if r.ok and r.model == challenger})
    text = f"Weights {challenger} really used: {'; '.join(weights)}."
    if not any(w.startswith(("imagenet", "file")) for w in weights):
        text += (f" So these {challenger} runs were trained from scratch, not fine-tuned: they cannot "
                 "confirm or refute the fine-tuning claim.")
    lines.append(text)
    seeds = {r.record.get("seed") for r in runs if r.ok}
    if len(seeds) == 1:
        lines.append(f"Each setting ran with one seed ({_fmt(next(iter(seeds)))}), so run-to-run variation "
                     "is not measured; significance across training runs cannot be claimed from this sweep.")
    return lines


def _same_training(a: Run, b: Run) -> bool:
    keys = ("lr", "max_epochs")
    return a.model == b.model and all(a.record.get(k) == b.record.get(k) for k in keys) and all(
        a.data.get(k) == b.data.get(k) for k in ("height", "width"))


def summary_overlap(runs: list[Run]) -> list[str]:
    """How much the random split's train/test overlap flatters the score."""
    leaky = [r for r in runs if r.ok and r.overlap]
    if not leaky:
        if any(r.ok for r in runs):
            return ["No finished run tested on positions seen in training (test overlap 0% everywhere)."]
        return []
    lines = []
    for run in leaky:
        honest = [r for r in runs if r.ok and r.data.get("split") == "position" and _same_training(r, run)]
        text = (f"`#{run.id}` ({run.model}, lr {_fmt(run.record.get('lr'))}, {_epochs_text(run)}, "
                f"split={run.data.get('split')}): {_pct(run.overlap)}% of its test images sit at positions "
                "also in its training set")
        if not honest:
            lines.append(text + "; no position-split run with the same model, lr and epochs to compare.")
            continue
        ref = float(np.mean([r.test() for r in honest]))
        ids = ", ".join(f"`#{r.id}`" for r in honest)
        text += f"; it scored {run.test():.3f} px against {ref:.3f} px on the position split ({ids})"
        if run.test() < ref:
            text += (f": the overlap made the error look {100 * (ref - run.test()) / ref:.0f}% smaller than "
                     "it is on unseen positions")
        else:
            text += ", so here the overlap did not flatter the score"
        lines.append(text + ".")
    return lines


def summary(runs: list[Run]) -> list[str]:
    n_ok = sum(r.ok for r in runs)
    lines = [f"{len(runs)} runs: {n_ok} finished, {len(runs) - n_ok} failed or unfinished."]
    return (lines + summary_best(runs) + summary_settings(runs) + summary_seeds(runs) + summary_factors(runs)
            + summary_claim(runs) + summary_overlap(runs))


def problems(runs: list[Run]) -> list[str]:
    """Full reasons for runs that did not finish, and anything that could not be read."""
    lines = []
    for run in runs:
        if not run.ok:
            reason = run.record.get("error") or "no reason recorded"
            extra = f" (traceback: `{run.record['error_file']}`)" if run.record.get("error_file") else ""
            lines.append(f"`#{run.id}` {run.status}: {' '.join(str(reason).split())}{extra} — `{run.path}`")
        lines += [f"`#{run.id}`: {note}" for note in run.notes]
    return lines


# ---------------------------------------------------------------------------------------------- writers

# A document is a list of blocks, rendered twice (markdown and HTML) so the two never disagree.
Block = tuple[str, object]


def build_document(runs: list[Run], folders: list[Path], plots: list[tuple[str, Path]],
                   out: Path) -> list[Block]:
    headers, rows = table(runs)
    doc: list[Block] = [
        ("h1", "pixel-spotter report"),
        ("p", f"Runs from {', '.join(f'`{f}`' for f in folders)}; generated {datetime.now():%Y-%m-%d %H:%M}. "
              "Test-set metrics in pixels (x = column, y = row). Sorted best first by test mean Euclidean "
              "error; ★ marks each model's best run. Inference times are per image, as measured on each "
              "run's device."),
    ]
    by_setting = setting_table(runs)
    if by_setting:
        doc += [("h2", "Best run per model and data setting"),
                ("p", "Runs on different data settings measure different things (the quadrant split tests "
                      "extrapolation to a quadrant never seen in training), so each setting is ranked apart."),
                ("table", (*by_setting, None))]
    doc += [
        ("h2", "Runs"),
        ("table", (headers, rows, [_row_class(r) for r in runs])),
        ("h2", "Summary"),
        ("ul", summary(runs)),
    ]
    trouble = problems(runs)
    if trouble:
        doc += [("h2", "Failed or unfinished runs"), ("ul", trouble)]
    if plots:
        doc.append(("h2", "Plots"))
        doc += [("img", (caption, path.relative_to(out))) for caption, path in plots]
    return doc


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: list[Block]) -> str:
    out = []
    for kind, body in doc:
        if kind == "h1":
            out.append(f"# {body}\n")
        elif kind == "h2":
            out.append(f"## {body}\n")
        elif kind == "p":
            out.append(f"{body}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {line}" for line in body) + "\n")
        elif kind == "table":
            headers, rows, _ = body
            lines = ["| " + " | ".join(map(_md_cell, headers)) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
            out.append("\n".join(lines) + "\n")
        elif kind == "img":
            caption, rel = body
            out.append(f"**{caption}**\n\n![{caption}]({rel.as_posix()})\n")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    """Escape, then render the two bits of markdown the report uses: `code` and **bold**."""
    text = html.escape(str(text), quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; vertical-align: top; }
th { background: #f0f0f0; position: sticky; top: 0; }
td:nth-child(-n+3), td:last-child { text-align: left; }
tr.best { background: #eef7ee; font-weight: 600; }
tr.bad { color: #a33; }
.scroll { overflow-x: auto; }
figure { margin: 1.5em 0; } img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def _row_class(run: Run) -> str:
    return "best" if run.best_of_model else "" if run.ok else "bad"


def to_html(doc: list[Block], out: Path) -> str:
    """Self-contained: inline CSS, plots as base64 data URIs, no external references."""
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"><title>pixel-spotter report</title>',
             f"<style>{CSS}</style></head><body>"]
    for kind, body in doc:
        if kind in ("h1", "h2", "p"):
            parts.append(f"<{kind}>{_inline_html(body)}</{kind}>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{_inline_html(line)}</li>" for line in body) + "</ul>")
        elif kind == "table":
            headers, rows, row_class = body
            row_class = row_class or [""] * len(rows)
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in headers)
            cells = ["".join(f"<td>{_inline_html(c)}</td>" for c in row) for row in rows]
            trs = "".join(f'<tr class="{cls}">{tds}</tr>' for cls, tds in zip(row_class, cells))
            parts.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                         f"<tbody>{trs}</tbody></table></div>")
        elif kind == "img":
            caption, rel = body
            data = base64.b64encode((out / rel).read_bytes()).decode("ascii")
            parts.append(f'<figure><figcaption><b>{_inline_html(caption)}</b></figcaption>'
                         f'<img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"></figure>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _flatten(record: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


# Known columns in a readable order; anything else results.json holds follows alphabetically.
CSV_ORDER = ["rank", "run", "best_of_model", "status", "error", "model", "lr", "max_epochs", "epochs_run",
             "weights_used", "data.split", "data.height", "data.width", "test_overlap", "params",
             "train_seconds", "inference_ms_per_image.batched", "inference_ms_per_image.single"]


def csv_rows(runs: list[Run]) -> tuple[list[str], list[dict]]:
    """One row per run with every field of results.json; columns that vary across runs come first."""
    rows = [{"rank": r.rank, "run": r.id, "best_of_model": r.best_of_model, **_flatten(r.record),
             "path": str(r.path)} for r in runs]
    keys = list(dict.fromkeys(k for row in rows for k in row))
    keys = [k for k in CSV_ORDER if k in keys] + sorted(k for k in keys if k not in CSV_ORDER)
    # varying columns first; sorted() is stable, so each part keeps the order above
    keys = sorted(keys, key=lambda k: not _varying([row.get(k) for row in rows]))
    return keys, rows


def write_csv(path: Path, runs: list[Run]) -> None:
    keys, rows = csv_rows(runs)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        # repr-exact floats (str(float) round-trips), so the CSV holds the very numbers of results.json
        writer.writerows({k: ("" if row.get(k) is None else row.get(k)) for k in keys} for row in rows)


def make_report(folders: list[Path], out: Path | None = None) -> dict[str, Path]:
    """Collect, plot and write; returns the paths written."""
    from pixel_spotter import report_plots  # matplotlib import is slow; not needed for --help or bad input

    runs = annotate(collect(folders))
    out = Path(out or folders[0])
    out.mkdir(parents=True, exist_ok=True)
    per_setting = best_by_setting(runs) if settings_vary(runs) else None
    plots = report_plots.make_all(runs, best_runs(runs), out / "plots", per_setting)
    doc = build_document(runs, folders, plots, out)
    paths = {"csv": out / "runs.csv", "md": out / "report.md", "html": out / "report.html"}
    write_csv(paths["csv"], runs)
    paths["md"].write_text(to_markdown(doc))
    paths["html"].write_text(to_html(doc, out))
    return paths


# -------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", type=Path, metavar="SWEEP_DIR",
                        help="multirun folder(s) (multirun/<date>) or single run folder(s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write report.md/.html, runs.csv and plots/ (default: the first "
                             "SWEEP_DIR)")


def run_command(args: argparse.Namespace) -> int:
    try:
        paths = make_report(args.folders, args.out)
    except OSError as err:  # e.g. an output folder that cannot be written
        print(f"error: cannot write the report: {err}", file=sys.stderr)
        return 1
    print(f"report: {paths['md']}\n        {paths['html']}\n        {paths['csv']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixel_spotter.report",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_safely(run_command, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
