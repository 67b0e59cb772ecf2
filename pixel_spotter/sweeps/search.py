"""Hyperparameter search (conf/hparams_search/): what a search may optimize, the value a job returns, the
Optuna study's direction, seed and trial count, and the command that re-runs a trial on its own.

``optimized_metric`` names a validation metric this project logs (``val/loss`` or ``val/<pixel metric>``); a
job returns that metric of its best checkpoint on the validation split (``best_val`` in its results.json:
the record is the one owner of the number, the study and the report read the same value), never a test
metric. A job that failed or diverged returns None, which the sweeper tells the study as a FAIL trial.
The sweeper itself is hydra_plugins/pixel_spotter/optuna_search.py (Hydra loads plugins only from that namespace),
its ask-and-tell loop pixel_spotter/sweeps/optuna_sweeper.py.
"""

from __future__ import annotations

import shlex
from contextlib import closing
from pathlib import Path

from omegaconf import OmegaConf

from pixel_spotter.errors import ConfigError
from pixel_spotter.evaluation.metric_names import HIGHER_IS_BETTER, MONITORS
from pixel_spotter.run_folder import Results

SQLITE = "sqlite:///"
# Overrides that only make sense inside the search (or its resume); the rest re-create one trial's run.
SEARCH_ONLY = ("hparams_search=", "hydra.", "resume=", "optimized_metric=")


def optimizable() -> tuple[str, ...]:
    """The metrics a search may optimize: every validation metric a run logs and records for its best
    checkpoint (the loss and the pixel metrics)."""
    return MONITORS


def direction(metric: str) -> str:
    """Optuna's study direction for ``metric``: maximize the accuracies, minimize the errors and the loss."""
    return "maximize" if str(metric).removeprefix("val/") in HIGHER_IS_BETTER else "minimize"


def check_metric(metric) -> None:
    """ConfigError unless ``metric`` is a validation metric a run records."""
    if not (isinstance(metric, str) and metric in optimizable()):
        raise ConfigError(f"optimized_metric={metric!r} is not a validation metric a run records; choose one of "
                          f"{', '.join(optimizable())} (a search never optimizes a test metric)")


def check_search(metric, directions: list[str]) -> None:
    """ConfigError unless the sweeper optimizes one valid ``metric`` in its own direction (conf/hparams_search
    derives it; an explicit hydra.sweeper.direction that contradicts the metric would search for the worst)."""
    check_metric(metric)
    wanted = direction(metric)
    if [str(d).lower() for d in directions] != [wanted]:
        shown = directions[0] if len(directions) == 1 else list(directions)
        raise ConfigError(f"hydra.sweeper.direction={shown} contradicts optimized_metric={metric}, which is "
                          f"{'higher' if wanted == 'maximize' else 'lower'} when better; leave "
                          f"hydra.sweeper.direction out (it follows the metric) or set it to {wanted}")


def validation_value(best_val: dict | None, metric: str) -> float | None:
    """``metric`` (``val/<name>``) read from a record's ``best_val``: the number a job returns to the study
    and the one the report ranks a search's trials by."""
    value = (best_val or {}).get(str(metric).removeprefix("val/"))
    return None if value is None else float(value)


def optimized_value(record: Results, metric: str) -> float | None:
    """The record's best-checkpoint validation value of ``metric``; None unless the run finished ok."""
    return validation_value(record.best_val, metric) if record.ok else None


def trials_held(storage: str | None, study: str) -> int:
    """How many trials (of any state) ``study`` already holds in ``storage`` (an Optuna storage URL); 0 for a
    new study or no storage. A SQLite file is read read-only, so asking never creates it."""
    if not storage:
        return 0
    if not str(storage).startswith(SQLITE):
        return _trials_held_by_optuna(str(storage), study)
    import sqlite3

    path = Path(str(storage)[len(SQLITE):])
    if not path.is_file():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            (count,) = db.execute("SELECT COUNT(*) FROM trials JOIN studies ON trials.study_id = studies.study_id "
                                  "WHERE studies.study_name = ?", (str(study),)).fetchone()
    except sqlite3.Error:  # not an Optuna database (yet): Optuna itself will say what is wrong with it
        return 0
    return int(count)


def _trials_held_by_optuna(storage: str, study: str) -> int:
    import optuna

    backend = optuna.storages.get_storage(storage)
    try:
        return len(backend.get_all_trials(backend.get_study_id_from_name(study), deepcopy=False))
    except KeyError:  # no such study yet
        return 0


def sampler_seed(seed: int, storage: str | None, study: str) -> int:
    """The Optuna sampler's seed: ``seed`` plus the trials ``study`` already holds. A new study starts from
    ``seed``; a resumed one (resume=true, same sweep folder) goes on from a seed of its own, so it proposes new
    trials instead of repeating the first ones (a sampler re-created with the same seed would), and the same
    commands still give the same trials."""
    return int(seed) + trials_held(storage, study)


def rerun_command(overrides: list[str]) -> str:
    """The command that trains one trial of a search again, as a single run: its overrides less the search's."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(SEARCH_ONLY)]
    return " ".join(["python train.py", *map(shlex.quote, kept)])


# conf/hparams_search/optuna.yaml: hydra.sweeper.direction follows optimized_metric; the sampler's seed follows
# the study's progress.
OmegaConf.register_new_resolver("search.direction", direction, replace=True)
OmegaConf.register_new_resolver("search.sampler_seed", sampler_seed, replace=True)
