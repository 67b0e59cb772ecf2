"""OptunaSearch: pixel-spotter's Optuna sweeper, a Hydra Sweeper driving Optuna's ask-and-tell API
(conf/hparams_search/optuna.yaml names it as hydra.sweeper._target_; Hydra loads sweepers only from the
hydra_plugins namespace, hence this folder). The loop itself is pixel_spotter/sweeps/optuna_sweeper.py; this
module registers the config (``hydra/sweeper: optuna``, the keys below) and, before any trial:

- refuses an optimized_metric that is not a recorded validation metric, or a direction that contradicts it
  (one line, exit 1; pixel_spotter/sweeps/search.py);
- instantiates the configured Hydra launcher, through which each batch of trials runs (trial N as job N).

Config keys (hydra.sweeper.*): ``sampler`` (an Optuna sampler to instantiate; TPE seeded with seed + the trials
held), ``direction`` (follows optimized_metric), ``storage`` (the study's SQLite file in the sweep folder),
``study_name``, ``n_trials`` (trials this command adds), ``n_jobs`` (trials launched at once), ``params`` (the
search space in Hydra's override grammar: choice, range, interval, tag(log, interval)).
"""

import sys
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper

TARGET = "hydra_plugins.pixel_spotter.optuna_search.OptunaSearch"


# No `from __future__ import annotations` here: Hydra's plugin scan runs this module outside sys.modules, where a
# dataclass cannot resolve string annotations.
@dataclass
class OptunaSearchConf:
    """hydra/sweeper=optuna: what conf/hparams_search/optuna.yaml sets (no other key is accepted)."""

    _target_: str = TARGET
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None})
    direction: Any = "minimize"
    storage: Any = None
    study_name: Any = None
    n_trials: int = 20
    n_jobs: int = 1
    params: Any = None


# Importing this module (Hydra's plugin scan does, before composing) makes `override /hydra/sweeper: optuna` work.
ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSearchConf, provider="pixel_spotter")


class OptunaSearch(Sweeper):
    def __init__(self, sampler=None, direction="minimize", storage=None, study_name=None, n_trials: int = 20,
                 n_jobs: int = 1, params=None) -> None:
        from pixel_spotter.sweeps.optuna_sweeper import SearchSettings

        self.settings = SearchSettings(sampler=sampler, direction=direction, storage=storage, study_name=study_name,
                                       n_trials=n_trials, n_jobs=n_jobs, params=params)
        self.config = self.launcher = self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins

        self.check(config)
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)

    def check(self, config) -> None:
        """Exit with one line when the metric cannot be optimized in the configured direction."""
        from pixel_spotter.errors import ConfigError
        from pixel_spotter.sweeps.optuna_sweeper import directions
        from pixel_spotter.sweeps.search import check_search

        try:
            check_search(config.get("optimized_metric"), directions(self.settings.direction))
        except ConfigError as err:
            sys.exit(f"error: {err}")

    def sweep(self, arguments: list[str]) -> None:
        from pixel_spotter.sweeps.optuna_sweeper import run_search

        run_search(self.settings, self.config, self.launcher, list(arguments))
