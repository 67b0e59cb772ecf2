"""Finding runs in a folder, their job numbers, the jobs a sweep planned (started or not) and how they are
numbered (a job keeps the number of the folder that ran its overrides), and the sweep's own config
(multirun.yaml): written for sweepers that do not write it, read back to tell what a search searched."""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder.layout import _JOB_DIR, _NOT_RUNS, HYDRA_DIR, OVERRIDES, RESULTS, STUDY, SWEEP_CONFIG
from pixel_spotter.run_folder.yaml_reader import load_yaml

MAX_JOBS = 10_000  # jobs one sweep may launch (and a reader of a sweep folder will list)
# Sweepers whose jobs are the grid of their values (Hydra's basic one, and ours that numbers them: matching_sweeper)
GRID_SWEEPERS = ("BasicSweeper", "MatchingSweeper")


def is_run_dir(path: Path) -> bool:
    return (path / HYDRA_DIR).is_dir() or (path / RESULTS).is_file()


def find_runs(folder: Path) -> list[Path]:
    """Run folders in ``folder`` (or ``folder`` itself), at any depth, in launch order (2 before 10).

    Depth matters: an override value holding a '/' (model.net.weights=/a/b.pth) makes Hydra nest the
    job folder (``0_...weights=/a/b.pth,...``), so jobs are not always direct children of the sweep.
    """
    folder = Path(folder)
    if is_run_dir(folder):
        return [folder]
    found = []
    for root, dirs, _files in os.walk(folder):
        root = Path(root)
        if root != folder and is_run_dir(root):
            found.append(root)
            dirs.clear()  # a run's own subfolders hold no runs
            continue
        dirs[:] = [d for d in dirs if d not in _NOT_RUNS]
    return sorted(found, key=lambda d: natural_key(str(d.relative_to(folder))))


def natural_key(name: str) -> tuple:
    """Sort key for job names "<num>_<overrides>" and ids: 2 before 10."""
    parts = [p for p in re.split(r"(\d+)", name) if p]
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def job_name(run_dir: Path, sweep: Path) -> str:
    """The job's number within its sweep ("3"); "<folder>/3" when ``sweep`` holds several sweeps; the
    folder's own path when it is no sweep job (a single run)."""
    parts = (run_dir.relative_to(sweep) if run_dir != sweep else Path(run_dir.name)).parts
    for i, part in enumerate(parts):
        match = _JOB_DIR.match(part)
        if match:
            return "/".join([*parts[:i], match.group(1)])
    return "/".join(parts)


def sweep_of(run_dir: Path) -> Path | None:
    """The sweep folder a run is a job of: the nearest folder above it holding Hydra's multirun.yaml (a job
    nested by an override value with a '/' sits a few levels down), or None for a single run."""
    for parent in list(Path(run_dir).resolve().parents)[:4]:
        if (parent / SWEEP_CONFIG).is_file():
            return parent
    return None


@dataclass
class Job:
    """One job of a sweep: its number, and its folder (None when it never started)."""

    name: str
    path: Path | None
    overrides: list[str] = field(default_factory=list)


def sweep_jobs(folder: Path) -> list[Job]:
    """Every job of a sweep folder in launch order: the run folders found, plus the jobs Hydra's
    multirun.yaml lists that have no folder (the sweep was killed before it reached them)."""
    folder = Path(folder)
    found = [Job(job_name(d, folder), d) for d in find_runs(folder)]
    planned = dict(planned_jobs(folder))
    for job in found:
        if job.name.isdigit() and int(job.name) in planned:
            job.overrides = planned[int(job.name)]
    names = {job.name for job in found}
    missing = [Job(str(num), None, overrides) for num, overrides in planned.items() if str(num) not in names]
    return sorted(found + missing, key=lambda job: natural_key(job.name))


def save_sweep_config(config: DictConfig) -> None:
    """Write a sweep's config to <sweep>/multirun.yaml, as Hydra's basic sweeper does for its sweeps (the Optuna
    sweeper does not): what finds the sweep of a job, and what tells the report a sweep was a search."""
    sweep = Path(config.hydra.sweep.dir)
    sweep.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep / SWEEP_CONFIG)


@dataclass(frozen=True)
class Search:
    """What an optimizing sweep (hparams_search=optuna) searched: the metric it optimized, the overrides it
    sampled, and the study file it kept."""

    metric: str
    params: tuple[str, ...]
    study: Path


def search_of(folder: Path) -> Search | None:
    """The search a sweep folder ran, from its multirun.yaml (an Optuna sweeper names it); None when it ran
    none, or the file cannot be read (a hand-edited or foreign one)."""
    path = Path(folder) / SWEEP_CONFIG
    if not path.is_file():
        return None
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        cfg = load_yaml(path)
        sweeper = cfg.hydra.sweeper
        if "optuna" not in str(sweeper.get("_target_", "")).lower():
            return None
        # searched: the config's params, and any sweep the command line added (seed=choice(0,1))
        task = OverridesParser.create().parse_overrides(list(cfg.hydra.overrides.task))
        params = [*(sweeper.get("params") or {}), *(o.get_key_element() for o in task if o.is_sweep_override())]
        metric = cfg.get("optimized_metric")
        if not isinstance(metric, str):
            return None
        return Search(metric=metric, params=tuple(dict.fromkeys(map(str, params))), study=Path(folder) / STUDY)
    except Exception:
        return None


def planned_jobs(folder: Path) -> list[tuple[int, list[str]]]:
    """(job number, overrides) of every job the sweep in ``folder`` launches (multirun.yaml: hydra.sweeper.params
    plus the command line, numbered as number_jobs does); [] when unknown. Other sweepers (Optuna) decide their
    jobs as they go; a hand-edited or foreign file, or one planning over MAX_JOBS, falls back to the folders found."""
    path = Path(folder) / SWEEP_CONFIG
    if not path.is_file():
        return []
    try:
        hydra_cfg = load_yaml(path).hydra
        if not str(hydra_cfg.sweeper.get("_target_", "")).endswith(GRID_SWEEPERS):
            return []
        params = [f"{k}={v}" for k, v in (hydra_cfg.sweeper.get("params") or {}).items()]
        return number_jobs(folder, launch_order(expand_sweep(params + list(hydra_cfg.overrides.task))))
    except UserError as err:  # planted or mistaken: too many jobs to list
        print(f"warning: {path}: {err}; its jobs that never started are not listed", file=sys.stderr)
        return []
    except Exception:
        return []


def expand_sweep(args: list[str]) -> list[list[str]]:
    """The override lists of every job a grid sweep over ``args`` launches, in Hydra's order; UserError, before
    anything is expanded, when that is over MAX_JOBS (a range of a billion values would hang every reader)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides(args)
    count = math.prod(_values(o) for o in overrides if o.is_sweep_override())
    if count > MAX_JOBS:
        raise UserError(f"the sweep has {count:,} jobs, more than the {MAX_JOBS:,} one sweep may launch; "
                        "sweep fewer values, or split it into several sweeps")
    return [list(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def _values(override) -> int:
    """How many values a sweep override takes, counted without listing them (a range is arithmetic)."""
    from hydra.core.override_parser.types import RangeSweep

    value = override.value()
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        return max(0, math.ceil((stop - start) / step)) if step else 0
    return sum(1 for _ in override.sweep_iterator())


def override_set(overrides: list[str]) -> frozenset[str]:
    """What makes two jobs the same job: their overrides as a set, less how the sweep was started (resume=true,
    Hydra's own settings) and how it shares epochs (share.*). The order values were given in is not part of it."""
    return frozenset(o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra.", "share.")))


BUDGET = "trainer.max_epochs="


def budget(job: list[str]) -> int | None:
    """The job's trainer.max_epochs override as a positive int; None without one (or with two, or not a number)."""
    values = [o.lstrip("+").removeprefix(BUDGET) for o in job if o.lstrip("+").startswith(BUDGET)]
    return int(values[0]) if len(values) == 1 and values[0].isdigit() and int(values[0]) > 0 else None


def without_budget(job: list[str]) -> frozenset:
    """What a job is, its epoch budget aside: jobs equal in this differ only in trainer.max_epochs."""
    return frozenset(o for o in override_set(job) if not o.lstrip("+").startswith(BUDGET))


def launch_order(jobs: list[list[str]]) -> list[list[str]]:
    """A grid sweep's jobs in the order they are numbered and launched: first each job that is the longest of
    those differing from it only in trainer.max_epochs (or has no such peers), then the shorter ones, which take
    their epochs from it (sweeps/shared_prefix.py); so each phase is one run of consecutive job numbers, which
    a parallel launcher runs side by side. Hydra's order otherwise."""
    longest: dict[frozenset, int] = {}
    for job in jobs:
        if budget(job) is not None:
            key = without_budget(job)
            longest[key] = max(longest.get(key, 0), budget(job))
    is_shorter = [budget(job) is not None and budget(job) < longest[without_budget(job)] for job in jobs]
    return [job for job, short in zip(jobs, is_shorter) if not short] + [j for j, s in zip(jobs, is_shorter) if s]


def number_jobs(sweep: Path, jobs: list[list[str]]) -> list[tuple[int, list[str]]]:
    """Job numbers for a sweep's jobs. A job whose override set a job folder of ``sweep`` already holds keeps that
    folder's number (so a resumed sweep finds its finished jobs whatever order its values are given in); the
    others are numbered on after the largest number in use. A new sweep is numbered 0, 1, ... in the order given."""
    ran, used = _jobs_that_ran(Path(sweep))
    following = max(used, default=-1) + 1
    numbered, taken = [], set()
    for job in jobs:
        num = ran.get(override_set(job))
        if num is None or num in taken:
            num, following = following, following + 1
        taken.add(num)
        numbered.append((num, job))
    return numbered


def other_budget(sweep: Path, numbered: list[tuple[int, list[str]]]) -> list[tuple[int, int]]:
    """(new job number, the folder's job number) for every new job of ``numbered`` whose overrides a job folder of
    ``sweep`` ran under another ``trainer.max_epochs``: a sweep's jobs are matched by all their overrides, so such a
    job trains anew rather than continuing that folder (the sweeper says so)."""
    ran, _ = _jobs_that_ran(Path(sweep))
    matched = set(ran.values())

    def budgetless(overrides) -> frozenset:
        return frozenset(o for o in overrides if not o.lstrip("+~").startswith("trainer.max_epochs="))

    by_rest = {budgetless(key): num for key, num in ran.items()}
    return [(num, by_rest[budgetless(override_set(job))]) for num, job in numbered
            if num not in matched and budgetless(override_set(job)) in by_rest]


def _jobs_that_ran(sweep: Path) -> tuple[dict[frozenset, int], set[int]]:
    """({override set: job number} of the job folders in ``sweep``, every job number in use)."""
    ran: dict[frozenset, int] = {}
    used: set[int] = set()
    for run in find_runs(sweep) if sweep.is_dir() else []:
        name = job_name(run, sweep)
        if not name.isdigit():
            continue
        used.add(int(name))
        overrides = _overrides_of(run)
        if overrides is not None:
            ran.setdefault(override_set(overrides), int(name))
    return ran, used


def _overrides_of(run: Path) -> list[str] | None:
    """A job folder's overrides (.hydra/overrides.yaml, else its record's); None when neither can be read."""
    try:
        overrides = load_yaml(run / HYDRA_DIR / OVERRIDES)
        return [str(o) for o in overrides]
    except Exception:
        from pixel_spotter.run_folder.folder import RunFolder

        record = RunFolder(run).read()
        return record.overrides or None
