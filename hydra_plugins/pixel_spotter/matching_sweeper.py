"""MatchingSweeper: Hydra's basic (grid) sweeper, with jobs numbered by what they run rather than by position
(conf/hydra/default.yaml names it as hydra.sweeper._target_; Hydra loads sweepers only from the hydra_plugins
namespace, hence this folder). On top of the basic sweeper it:

- numbers each job as ``run_folder.jobs.number_jobs`` does: a resumed sweep whose values come in another order
  finds each finished job in its own folder (and skips it), instead of retraining it under another job's number;
  new values get new numbers after those in use, so two folders never share one;
- says, in one log line per job, when a job differs from a finished one only in trainer.max_epochs (it trains
  anew: jobs are matched by all their overrides, and a sweep over epoch budgets needs them apart);
- trains jobs that differ only in trainer.max_epochs once (sweeps/shared_prefix.py): the longest first, then
  the shorter ones from its snapshots; a launcher that can run a chain of jobs as one (``launch_chains``: our
  submitit_local and slurm) gets each group as one job, so a Slurm group waits in the queue once;
- refuses, in one line and before anything runs, a sweep of more than ``run_folder.jobs.MAX_JOBS`` jobs.
"""

from __future__ import annotations

import logging
import sys
from itertools import groupby
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class MatchingSweeper(BasicSweeper):
    def sweep(self, arguments: list[str]):
        from pixel_spotter.errors import UserError
        from pixel_spotter.run_folder.jobs import expand_sweep, launch_order, number_jobs, other_budget
        from pixel_spotter.run_folder.layout import SWEEP_CONFIG

        sweep = Path(self.config.hydra.sweep.dir)
        try:
            jobs = expand_sweep([*self._parse_config(), *arguments])
        except UserError as err:
            sys.exit(f"error: {err}")
        numbered = number_jobs(sweep, launch_order(jobs))  # before this sweep writes anything into the folder
        for new, old in other_budget(sweep, numbered):
            log.warning("job %d has the overrides of job %d but another trainer.max_epochs, so it trains as a new "
                        "job; to continue job %d itself, resume it alone: the command plus resume=true "
                        "hydra.run.dir=<its folder> trainer.max_epochs=<more>", new, old, old)
        sweep.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep / SWEEP_CONFIG)  # as the basic sweeper does: what finds a job's sweep
        shared = self._plan(numbered)
        returns = []
        if shared is not None and shared.then and hasattr(self.launcher, "launch_chains"):
            chains = shared.chains()
            size = self.max_batch_size or len(chains)
            for start in range(0, len(chains), size):
                batch = chains[start:start + size]
                self.validate_batch_is_legal([job for chain in batch for _, job in chain])
                results = self.launcher.launch_chains(batch)
                for result in results:
                    _ = result.return_value
                returns.append(results)
            return returns
        phases = [numbered] if shared is None else [shared.first, shared.then]
        for phase in phases:  # the jobs that train, then those that start from their snapshots
            for first, batch in self._batches(phase):
                self.validate_batch_is_legal(batch)
                results = self.launcher.launch(batch, initial_job_idx=first)
                for result in results:
                    _ = result.return_value  # re-raises what a job raised, as the basic sweeper does
                returns.append(results)
        return returns

    def _plan(self, numbered: list[tuple[int, list[str]]]):
        """Jobs that differ only in trainer.max_epochs train once (sweeps/shared_prefix.py), unless share.epochs
        is false (None then): the longest in a first phase, the others from its snapshots in a second."""
        from pixel_spotter.sweeps.shared_prefix import plan

        if not self.config.get("share", {}).get("epochs", True):
            return None
        loader = self.hydra_context.config_loader
        shared = plan(numbered, lambda overrides: loader.load_sweep_config(self.config, list(overrides)))
        for line in shared.separate:
            log.info("epochs not shared, %s", line)
        if shared.then:
            log.info("%d job(s) take their epochs from a longer job of the same settings, which trains once: %s",
                     len(shared.then), ", ".join(str(num) for num, _ in shared.then))
        return shared

    def _batches(self, numbered: list[tuple[int, list[str]]]):
        """(first job number, overrides of consecutive jobs): a launcher numbers a batch's jobs from its first,
        so jobs are launched in runs of consecutive numbers, at most max_batch_size at a time."""
        ordered = sorted(numbered)
        size = self.max_batch_size or len(ordered) or 1
        for _, run in groupby(enumerate(ordered), key=lambda item: item[1][0] - item[0]):
            jobs = [job for _, job in run]
            for start in range(0, len(jobs), size):
                chunk = jobs[start:start + size]
                yield chunk[0][0], [overrides for _, overrides in chunk]
