"""The Optuna search's loop on Optuna's ask-and-tell API (hparams_search=optuna; Hydra's Sweeper class that
drives it is hydra_plugins/pixel_spotter/optuna_search.py, where Hydra requires sweepers to live).

A search, in order:

1. parses its space from ``hydra.sweeper.params`` and the command line (pixel_spotter/sweeps/search_space.py);
2. on resume, refuses in one line a study it cannot continue, before anything in the folder changes
   (pixel_spotter/sweeps/study.py);
3. writes the sweep's config (multirun.yaml: what tells the report a sweep was a search) and opens or creates
   the study (the sampler seeded by the config: seed + trials held, pixel_spotter/sweeps/search.py);
4. runs again the trials a killed job left RUNNING, each as its own job number;
5. asks ``n_trials`` new trials, ``n_jobs`` at a time: each batch is launched through the configured Hydra
   launcher with trial N as job N, then told (value, FAIL or PRUNED); a failed trial does not stop the search;
6. logs the best trial and writes it to optimization_results.yaml, or says that no trial completed.
A job killed under a launcher that goes on (submitit, parallel) stops the search after its batch, its trial left
RUNNING for a resume. Whatever happened, the sweep's summary callback then lists every job.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pixel_spotter.errors import UserError

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"  # the best trial, as hydra-optuna-sweeper wrote it


@dataclass
class SearchSettings:
    """hydra.sweeper's keys (conf/hparams_search/optuna.yaml), as the sweeper was instantiated with them."""

    sampler: object
    direction: str
    storage: str | None
    study_name: str | None
    n_trials: int
    n_jobs: int
    params: dict | None


def directions(direction) -> list[str]:
    """hydra.sweeper.direction as a list of Optuna direction names (one, or a list that check_search refuses)."""
    if OmegaConf.is_config(direction):
        direction = OmegaConf.to_container(direction)
    values = direction if isinstance(direction, (list, tuple)) else [direction]
    return [str(getattr(d, "name", d)) for d in values]


def check_settings(settings: SearchSettings) -> None:
    """UserError unless the trial counts can run (checked before any trial)."""
    if not isinstance(settings.n_trials, int) or settings.n_trials < 0:
        raise UserError(f"hydra.sweeper.n_trials={settings.n_trials} must be a whole number >= 0 (the trials this "
                        "command adds); give e.g. hydra.sweeper.n_trials=20")
    if not isinstance(settings.n_jobs, int) or settings.n_jobs < 1:
        raise UserError(f"hydra.sweeper.n_jobs={settings.n_jobs} must be a whole number >= 1 (trials launched at "
                        "once); give hydra.sweeper.n_jobs=1, or more with hydra/launcher=parallel")


def run_search(settings: SearchSettings, config: DictConfig, launcher, arguments: list[str]) -> None:
    """One search command: the steps of this module's docstring. A problem the user can fix before any trial
    exits with one ``error: ...`` line, leaving the sweep folder as it was."""
    from pixel_spotter.run_folder import save_sweep_config
    from pixel_spotter.sweeps.study import JobsKilled, StopWhenKilled, rerun_unfinished

    sweep = Path(str(config.hydra.sweep.dir))
    try:
        check_settings(settings)
        space, fixed = _checked_search(settings, config, arguments, sweep)
    except UserError as err:
        sys.exit(f"error: {err}")  # before multirun.yaml is rewritten: the folder stays as it was
    save_sweep_config(config)  # multirun.yaml, as Hydra's basic sweeper writes: the report reads it
    study = create_study(settings)
    launcher = StopWhenKilled(launcher, sweep)
    try:
        rerun_unfinished(study, launcher, sweep)
        new_trials(study, launcher, space, fixed, settings, sweep)
    except JobsKilled as err:
        log.error("job(s) %s of the search stopped without finishing (killed? out of memory?), so the search "
                  "stops here; the same command plus resume=true hydra.sweep.dir=%s runs them again, then "
                  "adds hydra.sweeper.n_trials new trials", err, sweep)
        return
    finish(study, sweep)


def _checked_search(settings: SearchSettings, config: DictConfig, arguments: list[str], sweep: Path):
    """(space, fixed overrides) of this command; UserError when it cannot continue the study in ``sweep``."""
    from pixel_spotter.sweeps.search_space import parse_search
    from pixel_spotter.sweeps.study import check_same_search, open_study

    space, fixed = parse_search(settings.params, arguments)
    if not space:
        raise UserError("the search has nothing to search (no choice/range/interval in hydra.sweeper.params or "
                        "on the command line); add one, e.g. model.lr='tag(log, interval(1e-4, 1e-1))'")
    held = open_study(settings.storage, _name(settings), sweep)
    if held is not None:
        check_same_search(held, config.get("optimized_metric"), space, fixed, sweep)
    return space, fixed


def _name(settings: SearchSettings) -> str | None:
    return None if settings.study_name is None else str(settings.study_name)


def create_study(settings: SearchSettings):
    """The study this command adds to (created when new), with the configured sampler and direction."""
    import optuna

    study = optuna.create_study(study_name=_name(settings), storage=settings.storage, sampler=_sampler(settings),
                                direction=directions(settings.direction)[0], load_if_exists=True)
    log.info("study %s (%s), sampler %s, %s; %d trial(s) held", study.study_name, settings.storage or "in memory",
             type(study.sampler).__name__, study.direction.name.lower(), len(study.get_trials(deepcopy=False)))
    return study


def _sampler(settings: SearchSettings):
    """The sampler Hydra instantiated from hydra.sweeper.sampler (a config when it was not), default TPE."""
    sampler = settings.sampler
    if OmegaConf.is_config(sampler) or isinstance(sampler, dict):
        from hydra.utils import instantiate

        sampler = instantiate(sampler)
    if sampler is None:
        import optuna

        sampler = optuna.samplers.TPESampler()
    return sampler


def new_trials(study, launcher, space: dict, fixed: dict, settings: SearchSettings, sweep: Path) -> None:
    """Ask ``n_trials`` trials, ``n_jobs`` at a time; each batch runs as jobs numbered by its trials, then is
    told. Fixed overrides are kept as each trial's user attributes (what check_same_search compares)."""
    from pixel_spotter.sweeps.search_space import job_overrides
    from pixel_spotter.sweeps.study import launch_and_tell

    left = settings.n_trials
    while left > 0:
        trials = [study.ask(space) for _ in range(min(left, settings.n_jobs))]
        numbers = [trial.number for trial in trials]
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):  # the sweep lock keeps others out
            raise RuntimeError(f"trials {numbers} of study {study.study_name} are not consecutive: another "
                               "process adds trials to it, and trial numbers would not match job numbers")
        for trial in trials:
            for key, value in fixed.items():
                trial.set_user_attr(key, value)
        launch_and_tell(study, launcher, numbers, [job_overrides(t.params, fixed) for t in trials], sweep)
        left -= len(trials)


def finish(study, sweep: Path) -> None:
    """Log the best trial and write it to optimization_results.yaml; say so when no trial completed (the failed
    trials stay in the study, and the sweep summary lists every job and why)."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        log.error("no trial of study '%s' completed (each failed or diverged; the summary below says why): "
                  "there is no best trial", study.study_name)
        return
    best = study.best_trial
    log.info("best trial %d: value %s, parameters %s", best.number, best.value, best.params)
    results = {"name": "optuna", "best_trial": best.number, "best_params": best.params, "best_value": best.value}
    OmegaConf.save(OmegaConf.create(results), sweep / RESULTS_FILE)
