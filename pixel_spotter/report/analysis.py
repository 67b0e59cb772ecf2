"""Analysis: every number the report states, computed once, in order, into one Analysis object.

``analyze(runs, compare=...)`` ranks the runs (best first; runs that are not ok are never ranked and come
last), picks each model's best run and the best per (model, data setting), finds what varies, and
measures factor effects, seed spread, head-to-head comparisons (with paired per-image differences),
the random split's train/test overlap, and ranks a search's trials by the validation metric it optimized.
This module places the runs (Entry: rank, best of model, data setting) and gathers the rest from factors
(effects, seed spread), comparisons (head to head, overlap), search_ranking and robustness.
Narrative, tables and plots only read the result.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from pixel_spotter.report import comparisons, fmt
from pixel_spotter.report.comparisons import Comparison, OverlapCheck
from pixel_spotter.report.factors import FactorEffect, SeedSpread, factor_effects, seed_spreads
from pixel_spotter.report.load import Run
from pixel_spotter.report.robustness import Robustness, analyze_robustness
from pixel_spotter.report.search_ranking import SearchRanking, rank_searches
from pixel_spotter.run_folder import natural_key

# Data keys that describe *what is measured* (runs differing here are not comparable); batch sizes,
# workers and seeds are training details, shown as columns when they vary but never grouped on.
SETTING_KEYS = ("height", "width", "split", "fractions", "heldout_quadrant", "random_train_size")
# Override keys already shown by a fixed table column (other varying overrides get their own column); resume
# says how a job started, not what it computes.
COVERED_OVERRIDES = {"model", "model.lr", "trainer.max_epochs", "model.net.weights", "seed", "resume"}

# What an Entry passes through from its run.
_FROM_RUN = {"path", "id", "record", "curves", "notes", "status", "ok", "model", "data", "overlap", "honest",
             "overrides", "test", "predictions", "errors"}


@dataclass(frozen=True, eq=False)
class Entry:
    """A run as placed among the others; reads like its run (``entry.model``, ``entry.test()``)."""

    run: Run
    rank: int
    best_of_model: bool
    setting: str  # the data settings that tell this run apart from others ("" if all runs share them)
    setting_values: dict  # data setting -> value, for the settings this run's split uses
    variant: str  # the weight source, when it differs between runs of this model

    @property
    def group(self) -> str:
        """What must be equal for two runs of a model to measure the same thing (data setting, weights)."""
        return ", ".join(part for part in (self.setting, self.variant) if part)

    def __getattr__(self, name):
        if name in _FROM_RUN:
            return getattr(self.run, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


@dataclass
class Analysis:
    """What analyze() found; every field is final (nothing is filled in later)."""

    runs: list[Entry]  # ranked: best first, runs that are not ok last
    models: list[str]  # every model present, sorted
    best: dict[str, Entry]  # model -> its best run (among honest runs when there are any)
    overall: Entry | None  # the best of those
    by_setting: dict[tuple[str, str], Entry]  # (model, data setting) -> best run, by setting then model
    settings: list[str]  # the data settings of by_setting, in its order
    settings_vary: bool  # the finished runs span several data settings
    extra_columns: list[tuple[str, str]]  # (kind, key) of what else varies: image, setting, seed, overlap, override
    effects: dict[str, list[FactorEffect]]  # factor -> its effect in each group where it varied
    seed_spreads: list[SeedSpread]
    comparisons: list[Comparison]
    not_compared: list[tuple[str, str]]  # requested pairs without finished runs of both on a common setting
    overlaps: list[OverlapCheck]
    seeds: list  # distinct seeds of the finished runs
    searches: list[SearchRanking]  # one per search sweep among the folders (none for plain sweeps)
    robustness: Robustness | None = None  # the folders' robustness tables, when there are any
    # frame models' runs (a set per image: data=pixels, data=emitters): never ranked with the runs above, whose
    # metrics they do not have; each frame task's report section shows its own
    frame_runs: list[Run] = field(default_factory=list)

    @property
    def n_ok(self) -> int:
        return sum(e.ok for e in self.runs)


# --------------------------------------------------------------------------------------------- helpers


def varying(values: list) -> bool:
    """More than one distinct value (lists and dicts compared by content)."""
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1


def _setting_values(run: Run) -> dict:
    """Data settings that define what a run measures; options its split ignores are left out."""
    data = run.data
    setting = {k: data.get(k) for k in SETTING_KEYS if k in data}
    if data.get("split") != "quadrant":
        setting.pop("heldout_quadrant", None)
    if data.get("split") != "random":
        setting.pop("random_train_size", None)
    return setting


def _best_pool(runs: list[Run]) -> list[Run]:
    """Finished runs to pick a model's best from: the honest ones when there are any, since a
    random-split run partly tests on its training positions and would win for the wrong reason."""
    done = [r for r in runs if r.ok]
    return [r for r in done if r.honest] or done


def _place(runs: list[Run]) -> list[Entry]:
    """Rank (best first, not ok last), flag each model's best, and name each run's data setting and weights."""
    runs = sorted(runs, key=lambda r: (not r.ok, r.test() if r.ok else math.inf, natural_key(r.id)))
    models = sorted({r.model for r in runs})
    best = set()
    for model in models:
        pool = _best_pool([r for r in runs if r.model == model])
        if pool:
            best.add(min(pool, key=lambda r: r.test()))
    values = [_setting_values(r) for r in runs]
    keys = [k for k in SETTING_KEYS if varying([v.get(k) for v in values])]
    variant = {}
    for model in models:
        # ImageNet-initialised and scratch runs of one model answer different questions: keep them apart
        mine = [r for r in runs if r.model == model and r.record.get("weights_used")]
        if varying([r.record["weights_used"] for r in mine]):
            variant.update({r: f"weights={r.record['weights_used']}" for r in mine})
    return [Entry(run=r, rank=i, best_of_model=r in best, setting_values=v, variant=variant.get(r, ""),
                  setting=", ".join(f"{k}={fmt.setting(v[k])}" for k in keys if k in v))
            for i, (r, v) in enumerate(zip(runs, values), 1)]


def _extra_columns(entries: list[Entry]) -> list[tuple[str, str]]:
    """(kind, key) for whatever else varies across runs (image size, held-out quadrant, seed, optimizer...)."""
    cols = []
    values = [e.setting_values for e in entries]
    if varying([(v.get("height"), v.get("width")) for v in values]):
        cols.append(("image", "image"))
    cols += [("setting", k) for k in ("fractions", "heldout_quadrant", "random_train_size")
             if varying([v.get(k) for v in values])]
    if varying([e.record.get("seed") for e in entries]):
        cols.append(("seed", "seed"))
    if any(e.overlap for e in entries):
        cols.append(("overlap", "test overlap %"))
    covered = COVERED_OVERRIDES | {f"data.{k}" for k in SETTING_KEYS}
    keys = sorted({k for e in entries for k in e.overrides} - covered)
    cols += [("override", k) for k in keys
             if not k.startswith(("hydra.", "share.")) and varying([e.overrides.get(k) for e in entries])]
    return cols


def _by_setting(entries: list[Entry]) -> dict[tuple[str, str], Entry]:
    """(model, data setting) -> that model's best finished run on that setting. Unlike ``best`` a
    random-split run can be picked here: its setting is its own column, never mixed with honest ones."""
    best: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        key = (entry.model, entry.setting)
        if entry.ok and (key not in best or entry.test() < best[key].test()):
            best[key] = entry
    return dict(sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])))


# ------------------------------------------------------------------------------------------------- all


def analyze(runs: list[Run], compare: list[tuple[str, str]] | None = None,
            robustness: tuple[list, list[str]] | None = None) -> Analysis:
    """Everything the report says about ``runs``, in one pass; ``compare``: (challenger, baseline) model
    pairs to compare head to head (None: every model against the write-ups' baseline cnn, when present);
    ``robustness``: what load.load_robustness read (None: no robustness table)."""
    frame_runs = [r for r in runs if r.frames]
    entries = _place([r for r in runs if not r.frames])
    models = sorted({e.model for e in entries})
    flagged = {e.model: e for e in entries if e.best_of_model}
    best = {model: flagged[model] for model in models if model in flagged}
    by_setting = _by_setting(entries)
    settings_vary = len({e.setting for e in entries if e.ok}) > 1
    pairs = comparisons.default_pairs(models) if compare is None else compare
    compared, missing = comparisons.compare(entries, by_setting, pairs)
    # read the test predictions of every run compared or plotted now, so that a problem reading them is
    # among the problems the narrative lists
    for entry in [*best.values(), *(by_setting.values() if settings_vary else ())]:
        entry.errors  # noqa: B018
    return Analysis(
        runs=entries, models=models, best=best, overall=min(best.values(), key=lambda e: e.test()) if best else None,
        by_setting=by_setting, settings=list(dict.fromkeys(s for _, s in by_setting)), settings_vary=settings_vary,
        extra_columns=_extra_columns(entries), effects=factor_effects(entries), seed_spreads=seed_spreads(entries),
        comparisons=compared, not_compared=missing if compare is not None else [],
        overlaps=comparisons.overlaps(entries),
        seeds=list(dict.fromkeys(e.record.get("seed") for e in entries if e.ok)), searches=rank_searches(entries),
        robustness=analyze_robustness(robustness), frame_runs=frame_runs)
