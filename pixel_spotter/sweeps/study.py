"""A search's Optuna study across resumes (hparams_search=optuna). Before the plugin's own loop, OptunaSearch
(hydra_plugins/pixel_spotter/optuna_search.py) asks this module:

- open_study: the study a resumed command continues, or None for a new one. A study file that cannot be read,
  or a study that is gone while the sweep folder still holds its jobs (a new study would number its trials from
  0 again, over their job numbers), is one UserError line;
- check_same_search: the resumed command optimizes the same metric, searches the same space with the same fixed
  overrides as the study's trials (else trials of two objectives would mix in one study);
- rerun_unfinished: trials left RUNNING by a killed job run again, each as its own job number (its folder
  resumes from last.ckpt), and the study is told their values;
- StopWhenKilled: a job of a search killed under a launcher that goes on (submitit, parallel) stops the search
  before the plugin records the trial as failed, so it stays RUNNING and a resume runs it again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import INTERRUPTED, UNFINISHED, RunFolder, find_runs, job_name, search_of
from pixel_spotter.sweeps.launchers import resuming
from pixel_spotter.sweeps.search import SQLITE, direction

log = logging.getLogger(__name__)

NEW_FOLDER = "or leave out hydra.sweep.dir to start a new search in a new folder"
# Fixed overrides a resume may change: resume itself, and the metric (compared on its own, with its own message).
MAY_CHANGE = ("resume", "optimized_metric")


class JobsKilled(Exception):
    """Jobs of a search ended without finishing (their process was killed); their trials stay RUNNING."""

    def __init__(self, nums: list[int]):
        super().__init__(", ".join(map(str, nums)))
        self.nums = nums


def _short(err: Exception) -> str:
    """The first line of an error (SQLAlchemy's add the SQL and a web link), for a one-line message."""
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:160]}" if text else type(err).__name__


def _study_file(storage: str) -> Path | None:
    return Path(storage[len(SQLITE):]) if storage.startswith(SQLITE) else None


def _study_names(storage: str, where: str) -> list[str]:
    import optuna

    try:
        return [summary.study_name for summary in optuna.get_all_study_summaries(storage)]
    except Exception as err:  # garbage bytes, a foreign database, a schema of another Optuna version
        raise UserError(f"the search's study {where} cannot be read ({_short(err)}): it is damaged or not an Optuna "
                        f"study; restore it from a copy to resume this search, {NEW_FOLDER}") from None


def open_study(storage: str | None, name: str, sweep: Path):
    """The study ``name`` that a command resuming in ``sweep`` continues; None when it has to be created and
    nothing in ``sweep`` contradicts that. UserError when its file cannot be read, or it is gone while ``sweep``
    holds jobs of a search."""
    import optuna

    if not storage:
        return None  # an in-memory study: nothing to continue
    storage, path = str(storage), _study_file(str(storage))
    where = str(path) if path else storage
    names = _study_names(storage, where) if path is None or path.is_file() else []
    if name in names:
        return optuna.load_study(study_name=name, storage=storage)
    jobs = find_runs(sweep) if Path(sweep).is_dir() else []
    if not jobs:
        return None
    held = (f"{sweep} holds {len(jobs)} job folder(s) of a search, and a new study would number its trials from 0 "
            "again, over those jobs' numbers")
    if names:
        raise UserError(f"{where} holds no study '{name}' (it holds {', '.join(map(repr, names))}), but {held}; "
                        f"resume with hydra.sweeper.study_name={names[0]}, {NEW_FOLDER}")
    missing = "is missing" if path and not path.exists() else "holds no study"
    raise UserError(f"the search's study {where} {missing}, but {held}; put the study file back to resume this "
                    f"search, {NEW_FOLDER}")


def check_same_search(study, metric: str, space: dict, fixed: dict, sweep: Path) -> None:
    """UserError unless this command continues the search ``study`` holds: the same optimized metric, the same
    search space (parameter names and distributions) and the same fixed overrides as its trials."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    _check_metric(study, metric, sweep)
    held: dict = {}
    for trial in trials:
        held.update(trial.distributions)
    if held and held != space:
        diff = [f"{key}: {_shown(held.get(key))} -> {_shown(space.get(key))}"
                for key in sorted(held.keys() | space.keys()) if held.get(key) != space.get(key)]
        raise UserError(f"this command searches another space than the trials of the study in {sweep} "
                        f"({'; '.join(diff)}); resume with the search's own parameters, {NEW_FOLDER}")
    if trials:
        then, now = _comparable(trials[-1].user_attrs), _comparable(fixed)
        if then != now:
            diff = [f"now {o}" for o in now if o not in then] + [f"was {o}" for o in then if o not in now]
            raise UserError(f"this command's overrides differ from those the trials of the study in {sweep} ran "
                            f"with ({', '.join(diff)}); resume with the search's own command, {NEW_FOLDER}")


def _check_metric(study, metric: str, sweep: Path) -> None:
    before = search_of(sweep)  # multirun.yaml of the command that ran last (rewritten only after these checks)
    then = before.metric if before else None
    held = [d.name.lower() for d in study.directions]
    if held == [direction(metric)] and then in (None, metric):
        return
    was = f"optimized_metric={then}" if then else f"a metric to {'/'.join(held)}"
    again = f"optimized_metric={then}" if then else "the metric it started with"
    raise UserError(f"the study in {sweep} optimizes {was}, but this command has optimized_metric={metric} (to "
                    f"{direction(metric)}): trials of two objectives would mix in one study; resume with {again}, "
                    f"{NEW_FOLDER}")


def _shown(distribution) -> str:
    return "not searched" if distribution is None else str(distribution)


def _comparable(fixed: dict) -> list[str]:
    return sorted(f"{k}={v}" for k, v in fixed.items() if str(k).lstrip("+~") not in MAY_CHANGE)


def unfinished_trials(study) -> list:
    """Trials still RUNNING: the job of each was killed (the sweep lock says no other process runs this sweep)."""
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return sorted(running, key=lambda t: t.number)


def trial_overrides(trial) -> list[str]:
    """The overrides the plugin launched ``trial`` with (its sampled values, then the command's fixed overrides,
    which it keeps as the trial's user attributes), plus resume=true: its job continues its own folder."""
    values = [*trial.params.items(), *trial.user_attrs.items()]
    return resuming([f"{key}={value}" for key, value in values])


def rerun_unfinished(study, launcher) -> None:
    """Run each unfinished trial's job again, as its own job number (trial N is job N), and tell the study."""
    for trial in unfinished_trials(study):
        log.info("trial %d did not finish (its job was killed): running its job again, resuming", trial.number)
        (ret,) = launcher.launch([trial_overrides(trial)], initial_job_idx=trial.number)
        tell(study, trial.number, ret)


def tell(study, number: int, ret) -> None:
    """Record a job's return as the plugin does: its value, or FAILED when it returned none."""
    import optuna
    from hydra.core.utils import JobStatus

    try:
        value = float(ret.return_value) if ret.status == JobStatus.COMPLETED else None
    except (TypeError, ValueError):
        value = None
    if value is None:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(number, value)


def killed_jobs(sweep: Path, nums: range) -> list[int]:
    """Those of job numbers ``nums`` whose folder says their process stopped without finishing."""
    wanted = {str(num) for num in nums}
    found = [(job_name(run, sweep), run) for run in find_runs(sweep)]
    return sorted(int(name) for name, run in found
                  if name in wanted and RunFolder(run).read().status in (INTERRUPTED, UNFINISHED))


class StopWhenKilled:
    """The sweeper's launcher, raising JobsKilled when a job of a batch was killed: the plugin would record its
    trial as failed, where a resume should run it again."""

    def __init__(self, launcher, sweep: Path):
        self.launcher, self.sweep = launcher, Path(sweep)

    def launch(self, job_overrides, initial_job_idx: int):
        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        if killed := killed_jobs(self.sweep, range(initial_job_idx, initial_job_idx + len(returns))):
            raise JobsKilled(killed)
        return returns

    def __getattr__(self, name):
        return getattr(self.launcher, name)
