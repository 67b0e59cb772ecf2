"""A search's Optuna study across resumes (hparams_search=optuna). The sweeper's ask-and-tell loop
(pixel_spotter/sweeps/optuna_sweeper.py) asks this module:

- open_study: the study a resumed command continues, or None for a new one. A study file that cannot be read
  (or was written by an older Optuna, whose schema needs an upgrade first), or a study that is gone while the
  sweep folder still holds its jobs (a new study would number its trials from 0 again, over their job
  numbers), is one UserError line;
- check_same_search: the resumed command optimizes the same metric, searches the same space with the same fixed
  overrides as the study's trials (else trials of two objectives would mix in one study);
- launch_and_tell: a batch of trials runs as jobs numbered by their trials, and the study is told each outcome
  (the value, FAIL for a job that returned none, PRUNED for one whose record says a pruner stopped it);
- rerun_unfinished: trials left RUNNING by a killed job run again, each as its own job number (its folder
  resumes from last.ckpt), and the study is told their values;
- StopWhenKilled: a job of a search killed under a launcher that goes on (submitit, parallel) stops the search;
  its trial stays RUNNING, so a resume runs it again (the batch's other jobs are told as usual).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import INTERRUPTED, UNFINISHED, RunFolder, find_runs, job_name, search_of
from pixel_spotter.sweeps.launchers import resuming
from pixel_spotter.sweeps.search import SQLITE, direction
from pixel_spotter.sweeps.search_space import job_overrides

log = logging.getLogger(__name__)

NEW_FOLDER = "or leave out hydra.sweep.dir to start a new search in a new folder"
# Fixed overrides a resume may change: resume itself, and the metric (compared on its own, with its own message).
MAY_CHANGE = ("resume", "optimized_metric")
# The status a job's record would give when a pruner stopped it early: its trial is told PRUNED, not FAIL.
# run_folder/layout.py has no such status yet (no job prunes itself), so today every job without a value fails.
PRUNED = "pruned"


class JobsKilled(Exception):
    """Jobs of a search ended without finishing (their process was killed); their trials stay RUNNING.
    ``returns``: what the whole batch returned, so its other jobs can still be told."""

    def __init__(self, nums: list[int], returns: list | tuple = ()):
        super().__init__(", ".join(map(str, nums)))
        self.nums, self.returns = nums, list(returns)


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
        if "optuna storage upgrade" in str(err):  # written by an older Optuna (2.x, the old plugin's)
            raise UserError(_older_schema(err, storage, where)) from None
        raise UserError(f"the search's study {where} cannot be read ({_short(err)}): it is damaged or not an Optuna "
                        f"study; restore it from a copy to resume this search, {NEW_FOLDER}") from None


def _older_schema(err: Exception, storage: str, where: str) -> str:
    import re

    import optuna

    found = re.search(r"set up by optuna ([\w.]+)", str(err))
    then = f"optuna {found.group(1)}" if found else "an older Optuna"
    return (f"the search's study {where} was written by {then}, whose schema optuna {optuna.__version__} cannot "
            f"read; keep a copy, upgrade it with optuna storage upgrade --storage {storage} (the older Optuna "
            f"cannot read it afterwards) and resume, {NEW_FOLDER}")


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
    """The overrides ``trial`` was launched with (its sampled values, then the command's fixed overrides, which
    the sweeper keeps as the trial's user attributes), plus resume=true: its job continues its own folder."""
    return resuming(job_overrides(trial.params, trial.user_attrs))


def rerun_unfinished(study, launcher, sweep: Path | None = None) -> None:
    """Run each unfinished trial's job again, as its own job number (trial N is job N), and tell the study."""
    for trial in unfinished_trials(study):
        log.info("trial %d did not finish (its job was killed): running its job again, resuming", trial.number)
        launch_and_tell(study, launcher, [trial.number], [trial_overrides(trial)], sweep)


def launch_and_tell(study, launcher, numbers: list[int], overrides: list[list[str]], sweep: Path | None) -> list:
    """Launch trials ``numbers`` (consecutive) as jobs of the same numbers and tell the study each outcome. A
    batch with a killed job is told but for that job, then JobsKilled goes on up; a job that raised (not one
    that failed: training returns None for those) is told FAIL, then its error is raised, as Hydra's sweepers do."""
    try:
        returns = launcher.launch(overrides, initial_job_idx=numbers[0])
    except JobsKilled as err:
        _tell_all(study, numbers, err.returns, sweep, skip=set(err.nums))
        raise
    _tell_all(study, numbers, returns, sweep)
    for ret in returns:
        _ = ret.return_value  # re-raises what a job raised
    return returns


def _tell_all(study, numbers: list[int], returns: list, sweep: Path | None, skip: set = frozenset()) -> None:
    for number, ret in zip(numbers, returns):
        if number not in skip:
            tell(study, number, ret, job_status(sweep, number) if returned_value(ret) is None else None)


def returned_value(ret) -> float | None:
    """The finite number a job returned; None when it failed, diverged or raised."""
    import math

    from hydra.core.utils import JobStatus

    if ret.status != JobStatus.COMPLETED:
        return None
    try:
        value = float(ret.return_value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def tell(study, number: int, ret, status: str | None = None) -> None:
    """Tell the study trial ``number``'s outcome: the job's value; PRUNED when it returned none and its
    record's ``status`` says a pruner stopped it; else FAIL (it failed or diverged; its record says why)."""
    import optuna

    value = returned_value(ret)
    if value is not None:
        study.tell(number, value)
    else:
        state = optuna.trial.TrialState.PRUNED if status == PRUNED else optuna.trial.TrialState.FAIL
        study.tell(number, state=state)
    log.info("trial %d: %s", number, "no value, told " + state.name if value is None else f"value {value}")


def job_status(sweep: Path | None, num: int) -> str | None:
    """The status job ``num``'s record in ``sweep`` gives; None when there is no such job folder."""
    if sweep is None or not Path(sweep).is_dir():
        return None
    found = [run for run in find_runs(sweep) if job_name(run, sweep) == str(num)]
    return RunFolder(found[0]).read().status if found else None


def killed_jobs(sweep: Path, nums: range) -> list[int]:
    """Those of job numbers ``nums`` whose folder says their process stopped without finishing."""
    wanted = {str(num) for num in nums}
    found = [(job_name(run, sweep), run) for run in find_runs(sweep)]
    return sorted(int(name) for name, run in found
                  if name in wanted and RunFolder(run).read().status in (INTERRUPTED, UNFINISHED))


class StopWhenKilled:
    """The sweeper's launcher, raising JobsKilled when a job of a batch was killed: telling its trial FAIL
    would lose it, where a resume should run it again."""

    def __init__(self, launcher, sweep: Path):
        self.launcher, self.sweep = launcher, Path(sweep)

    def launch(self, job_overrides, initial_job_idx: int):
        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        if killed := killed_jobs(self.sweep, range(initial_job_idx, initial_job_idx + len(returns))):
            raise JobsKilled(killed, returns)
        return returns

    def __getattr__(self, name):
        return getattr(self.launcher, name)
