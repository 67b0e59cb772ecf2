"""Load: the runs of sweep folders, as they are on disk, into Run objects.

Everything about a run folder's layout comes from ``pixel_spotter.run_folder``; this module only turns
what it reads into one Run per job, never raising for a run that cannot be read (what is missing becomes
a note the report lists). Nothing here ranks, compares or formats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from pixel_spotter.errors import UserError
from pixel_spotter.evaluation.distances import euclidean
from pixel_spotter.report.fmt import short
from pixel_spotter.run_folder import (
    NOT_STARTED,
    RobustnessRow,
    RunFolder,
    Search,
    read_robustness,
    search_of,
    sweep_jobs,
)

RANK_METRIC = "euclid_px"  # "best" everywhere in the report means the lowest test mean Euclidean error


class ReportInputError(UserError):
    """A folder that does not exist or holds no runs."""


def euclid_errors(table: np.ndarray) -> np.ndarray:
    """Per-image Euclidean error (px) of an (N, 4) x_true, y_true, x_pred, y_pred table (distances.euclidean,
    the one numpy definition, also used by the sample figures)."""
    return euclidean(table[:, :2], table[:, 2:])


@dataclass(eq=False)  # compared and hashed by identity: two runs with equal records are still two runs
class Run:
    """One job as it was left on disk: its merged record, learning curves and reading problems."""

    path: Path
    id: str  # short name for tables and legends: the job number ("3"), prefixed by the sweep if several
    record: dict
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # tag -> (epochs, values)
    notes: list[str] = field(default_factory=list)  # problems met while reading this run
    search: Search | None = None  # the search (hparams_search=optuna) whose trial this run was

    @property
    def status(self) -> str:
        return self.record.get("status", "unfinished")

    @property
    def ok(self) -> bool:
        """Finished, scored and finite (every summary relies on a test error being there); runs that failed,
        diverged or never finished are listed but never ranked."""
        error = self.test()
        return self.status == "ok" and error is not None and math.isfinite(error)

    @property
    def frames(self) -> bool:
        """A frame model's run (it answers a set per image, scored by the localization-microscopy challenge's
        numbers): its record says which decode threshold its test used."""
        return bool(self.record.get("decode"))

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

    @property
    def overrides(self) -> dict[str, str]:
        """The job's command-line overrides as key -> value."""
        return dict(o.split("=", 1) for o in self.record.get("overrides") or [] if "=" in o)

    def test(self, name: str = RANK_METRIC) -> float | None:
        return (self.record.get("test") or {}).get(name)

    @cached_property
    def predictions(self) -> np.ndarray | None:
        """(N, 4) x_true, y_true, x_pred, y_pred in pixels, or None when the run left none (or none usable).
        Read on first use: only the runs a report compares or plots need theirs."""
        table, problem = RunFolder(self.path).read_predictions(self.data.get("height"), self.data.get("width"))
        if problem:
            self.notes.append(problem)
        return table

    @cached_property
    def errors(self) -> np.ndarray | None:
        """Per-test-image Euclidean error (px)."""
        return None if self.predictions is None else euclid_errors(self.predictions)


def read_curves(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-epoch train/ and val/ scalars of a run, keyed by tag, with the x axis in epochs (1 = after the
    first epoch); {} when the run logged none. Read from the run's CSV log (``RunFolder.read_curves``: one
    value per epoch, a resumed run's later row winning); ValueError naming the problem when that log is
    not one this project writes.
    """
    curves, problem = RunFolder(run_dir).read_curves()
    if problem:
        raise ValueError(problem)
    return curves


def load_run(run_dir: Path, run_id: str) -> Run:
    """One run, never raising: what cannot be read becomes a note in the report."""
    folder, notes = RunFolder(run_dir), []
    try:
        record = folder.read_hydra()
    except Exception as err:  # a half-written, hand-edited or planted config folder must not stop the report
        record = {}
        notes.append(f"{folder.hydra_dir.name}/ unreadable ({type(err).__name__}: {short(err)})")
    # the record's own values win; its empty defaults do not erase what the config says about an unfinished run
    record.update({k: v for k, v in folder.read().as_dict().items() if v not in (None, {}, [])})
    if record.get("status") == "failed" and folder.error_file.is_file():
        record.setdefault("error_file", str(folder.error_file))
    run = Run(path=run_dir, id=printable(run_id), record=record, notes=notes)
    try:
        run.curves = read_curves(run_dir)
    except Exception as err:
        run.notes.append(f"learning curves unreadable ({short(err)})")
    return run


def not_started(sweep: Path, run_id: str, overrides: list[str]) -> Run:
    """A job Hydra's sweep config lists but that has no folder: the sweep stopped before it."""
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), None)
    record = {"status": NOT_STARTED, "overrides": overrides, "model": model,
              "error": f"never started (the sweep stopped first): {' '.join(overrides)}; run the sweep's command "
                       f"again with resume=true hydra.sweep.dir={sweep}"}
    return Run(path=sweep, id=run_id, record=record)


def collect(folders: list[Path]) -> list[Run]:
    """All runs under the given folders, in launch order, plus a sweep's jobs that never started, each with the
    search its sweep ran (if any); one clear ReportInputError for a missing or empty folder."""
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
        mine = [load_run(job.path, prefix + job.name) if job.path else
                not_started(folder, prefix + job.name, job.overrides) for job in jobs]
        search = search_of(folder)
        for run in mine:
            run.search = search
        runs += mine
    return runs


def load_robustness(folders: list[Path]) -> tuple[list[RobustnessRow], list[str]] | None:
    """(rows, problems) from the robustness table of each folder (``pixel-spotter robustness``); None when no
    folder has one. An unreadable file is a problem ("<folder>: ... unreadable: why"), never an exception.
    With several folders, runs and test sets are prefixed by the folder's name, as run ids are."""
    folders = list(dict.fromkeys(folders))
    rows, problems, found = [], [], False
    for folder in folders:
        table, problem = read_robustness(folder)
        found = found or table is not None or problem is not None
        if problem:
            problems.append(f"`{folder}`: {problem}")
        if table and len(folders) > 1:
            prefix = f"{folder.name}/"
            table = [RobustnessRow(**{**vars(r), "test_set": prefix + r.test_set,
                                      "run": r.run if r.reference else prefix + r.run}) for r in table]
        rows += table or []
    return (rows, problems) if found else None


def printable(name: str) -> str:
    """A folder name as text every table, legend and terminal can show: bytes that are not UTF-8 (kept by the
    file system as surrogates) and control characters are written as escapes."""
    text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if text.isprintable() else repr(text)[1:-1]
