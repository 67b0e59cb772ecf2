"""Hydra callback for sweeps: refuse a used sweep folder without resume=true, the working directory itself, or a
launcher that could only hang; at the end print one line per job (including jobs that never started) and fail
the sweep's exit status unless every job is ok."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pixel_spotter.errors import UserError
from pixel_spotter.evaluation.formatting import test_line
from pixel_spotter.run_folder import NOT_STARTED, OK, SWEEP_CONFIG, RunFolder, find_runs, lock_sweep, sweep_jobs
from pixel_spotter.sweeps.launchers import ray_gpu_problem


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if problem := ray_gpu_problem(config.hydra.launcher):
            sys.exit(f"error: {problem}")  # before the launcher starts anything
        sweep = Path(config.hydra.sweep.dir)
        if sweep.resolve() == Path.cwd().resolve():  # multirun.yaml, the lock and every job among the user's files
            sys.exit(f"error: hydra.sweep.dir names the working directory {sweep.resolve()} itself, so the sweep "
                     "would write among its files; leave hydra.sweep.dir out (multirun/<date>/<time>) or name a "
                     "folder of its own")
        if problem := _too_many_jobs(config):  # before the lock: a refused sweep leaves no folder behind
            sys.exit(f"error: {problem}")
        try:
            self._lock = lock_sweep(sweep)  # held until this process ends
        except UserError as err:
            sys.exit(f"error: {err}")
        used = (sweep / SWEEP_CONFIG).exists() or find_runs(sweep)
        if used and config.get("resume") is not True:
            sys.exit(f"error: {sweep} already holds a sweep; add resume=true to continue it (finished jobs are "
                     "skipped), or leave out hydra.sweep.dir to start a new folder")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        jobs = sweep_jobs(sweep)
        records = [(job, RunFolder(job.path).read() if job.path else None) for job in jobs]
        bad = sum(record is None or not record.ok for _, record in records)
        print(f"\nsweep: {len(jobs)} jobs, {len(jobs) - bad} ok, {bad} not ok -> {sweep}")
        for job, record in records:
            name = str(job.path.relative_to(sweep)) if job.path else f"{job.name} ({' '.join(job.overrides)})"
            if record is None:
                print(f"  {NOT_STARTED:11} {name}")
            elif record.status == OK:
                print(f"  {OK:11} {name}: test {test_line(record.test)}")
            else:
                print(f"  {record.status:11} {name}: {record.error or ''}")
        print(f"  tensorboard: tensorboard --logdir {sweep}")
        print(f"  report:      pixel-spotter report {sweep}")
        if bad:
            sys.exit(1)


def _too_many_jobs(config: DictConfig) -> str | None:
    """Why a grid sweep cannot start (more jobs than run_folder/jobs.MAX_JOBS), counted without expanding it."""
    from pixel_spotter.run_folder.jobs import GRID_SWEEPERS, expand_sweep

    sweeper = config.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith(GRID_SWEEPERS):
        return None
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    try:
        expand_sweep([*params, *config.hydra.overrides.task])
    except UserError as err:
        return str(err)
    except Exception:  # anything else is the sweeper's to report, in its own words
        return None
    return None
