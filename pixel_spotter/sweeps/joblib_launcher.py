"""hydra/launcher=parallel: how our JoblibLauncher (hydra_plugins/pixel_spotter/launchers.py) runs a sweep's
jobs; as Hydra's joblib launcher, except that a worker killed from outside (the OOM killer, kill -9) costs the
jobs running at that moment instead of the whole sweep. loky then stops every worker of the pool, so the jobs
beside it end `interrupted` too (resume=true continues them from last.ckpt); the jobs not started yet are
launched again in a new pool, and the end-of-sweep summary lists every job."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, setup_globals
from hydra_plugins.hydra_joblib_launcher import _core
from joblib import Parallel, delayed
from joblib.externals.loky.process_executor import TerminatedWorkerError

from pixel_spotter.run_folder import RESULTS, find_runs, job_name

log = logging.getLogger(__name__)


def started_since(sweep: Path, since: float) -> set[int]:
    """Job numbers whose run folder wrote its record at or after ``since`` (a job writes it when it starts)."""
    started = set()
    for run in find_runs(sweep):
        name, results = job_name(run, sweep), run / RESULTS
        if name.isdigit() and results.is_file() and results.stat().st_mtime >= since:
            started.add(int(name))
    return started


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """One return per job, in job order (what Hydra's sweepers expect); a job lost with a killed worker
    returns None, as a failed job does (train.main), and its folder tells the summary what happened."""
    jobs = dict(enumerate(map(list, job_overrides), initial_job_idx))
    returns: dict[int, JobReturn] = {}
    todo = list(jobs)
    while todo:
        since = time.time() - 1  # file times may be a little coarser than the clock
        try:
            for num, ret in _launch(launcher, todo, jobs):
                returns[num] = ret  # as each job ends: a pool broken later loses none of these
            break
        except TerminatedWorkerError as err:
            lost = started_since(Path(str(launcher.config.hydra.sweep.dir)), since) - set(returns)
            if not lost:  # nothing to blame: launching again could repeat forever
                raise
            todo = [num for num in todo if num not in returns and num not in lost]
            log.error("a worker process was killed (out of memory?): job(s) %s end interrupted (add resume=true "
                      "to continue them); %d job(s) not started yet are launched again [%s]",
                      ", ".join(map(str, sorted(lost))), len(todo), str(err).splitlines()[0][:160])
            for num in lost:
                returns[num] = JobReturn(overrides=jobs[num], status=JobStatus.COMPLETED, _return_value=None)
    return [returns[num] for num in jobs]


def _launch(launcher, nums: list[int], jobs: dict[int, list[str]]) -> Iterator[tuple[int, JobReturn]]:
    """The plugin's _core.launch, but with explicit job numbers (those left after a killed worker are not
    consecutive), yielding (number, return) as jobs end."""
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    joblib_cfg = {**launcher.joblib, "backend": "loky", "return_as": "generator_unordered"}
    _core.process_joblib_cfg(joblib_cfg)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    log.info("Joblib.Parallel(n_jobs=%s) is launching job(s) %s", joblib_cfg.get("n_jobs"), ", ".join(map(str, nums)))
    state = Singleton.get_state()
    return Parallel(**joblib_cfg)(
        delayed(_numbered)(num, jobs[num], launcher.hydra_context, launcher.config, launcher.task_function, state)
        for num in nums)


def _numbered(num: int, *args) -> tuple[int, JobReturn]:
    return num, _core.execute_job(num, *args)
