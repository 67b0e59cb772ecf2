"""Hyperparameter search (conf/hparams_search/): the value a job returns to an optimizing sweeper.

``optimized_metric`` names a validation metric (``val/<metric>``, one of the pixel metrics of
pixel_spotter/metrics.py); a job returns that metric of its best checkpoint on the validation split
(``best_val`` in its results.json), never a test metric. A job that failed or diverged returns None, which
Hydra's Optuna sweeper records as a FAILED trial (its study goes on; the sweep summary lists the job).
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from omegaconf import OmegaConf

from pixel_spotter.run_folder import Results

# pixel_spotter.metrics imports torch: imported inside the functions below, so that importing pixel_spotter
# (which registers this module's resolver) stays light for the readers (the report never imports torch).


def optimizable() -> tuple[str, ...]:
    """The metrics a search may optimize: every pixel metric on the validation split."""
    from pixel_spotter.metrics import METRIC_NAMES

    return tuple(f"val/{name}" for name in METRIC_NAMES)


def direction(metric: str) -> str:
    """Optuna's study direction for ``metric``: maximize the accuracies, minimize the errors."""
    from pixel_spotter.metrics import HIGHER_IS_BETTER

    return "maximize" if str(metric).removeprefix("val/") in HIGHER_IS_BETTER else "minimize"


def optimized_value(record: Results, metric: str) -> float | None:
    """The record's best-checkpoint validation value of ``metric``; None unless the run finished ok."""
    if not record.ok:
        return None
    value = (record.best_val or {}).get(str(metric).removeprefix("val/"))
    return None if value is None else float(value)


def sampler_seed(seed: int, database: str, study: str) -> int:
    """The Optuna sampler's seed: ``seed`` plus the number of trials ``study`` already holds in the SQLite file
    ``database``. A new study starts from ``seed``; a resumed one (resume=true, same sweep folder) goes on
    from a seed of its own, so it proposes new trials instead of repeating the first ones (a sampler re-created
    with the same seed would), and the same commands still give the same trials."""
    import sqlite3

    path = Path(str(database))
    if not path.is_file():
        return int(seed)
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            (count,) = db.execute("SELECT COUNT(*) FROM trials JOIN studies ON trials.study_id = studies.study_id "
                                  "WHERE studies.study_name = ?", (str(study),)).fetchone()
    except sqlite3.Error:  # not an Optuna database (yet): Optuna itself will say what is wrong with it
        return int(seed)
    return int(seed) + int(count)


# conf/hparams_search/optuna.yaml: hydra.sweeper.direction follows optimized_metric; the sampler's seed follows
# the study's progress.
OmegaConf.register_new_resolver("search.direction", direction, replace=True)
OmegaConf.register_new_resolver("search.sampler_seed", sampler_seed, replace=True)
