"""OptunaSearch: Hydra's Optuna sweeper with what pixel-spotter's searches need (conf/hparams_search/optuna.yaml
names it as hydra.sweeper._target_; Hydra loads sweepers only from the hydra_plugins namespace, hence this
folder). On top of the plugin it:

- writes the sweep's config (multirun.yaml), which the plugin does not, so the report knows a search;
- refuses, before any trial, an optimized_metric that is not a recorded validation metric or a direction that
  contradicts it (one line, exit 1);
- numbers a resumed study's jobs on from the trials it already holds, so trial N runs as job N and job folders
  never collide;
- ends a search in which no trial completed without the plugin's traceback (it asks for a best trial that does
  not exist): the failed trials stay FAILED in the study, and the sweep summary (hydra_callbacks.py) lists
  every job and exits 1.
"""

from __future__ import annotations

import logging
import sys

try:  # the sweep extra; without it Hydra's plugin scan must still import this module quietly
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # pragma: no cover
    OptunaSweeper = None

log = logging.getLogger(__name__)

if OptunaSweeper is not None:

    class OptunaSearch(OptunaSweeper):
        def setup(self, *, hydra_context, task_function, config) -> None:
            from pixel_spotter.errors import ConfigError
            from pixel_spotter.sweeps.search import check_search

            try:
                check_search(config.get("optimized_metric"), self.sweeper._get_directions())
            except ConfigError as err:
                sys.exit(f"error: {err}")
            super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

        def sweep(self, arguments: list[str]) -> None:
            from pixel_spotter.run_folder import save_sweep_config
            from pixel_spotter.sweeps.search import trials_held

            impl = self.sweeper
            save_sweep_config(impl.config)  # multirun.yaml, as Hydra's basic sweeper writes: the report reads it
            # The plugin counts jobs from 0 in every process; a resumed study's trials go on from its last one.
            impl.job_idx = trials_held(impl.storage, impl.study_name)
            try:
                return impl.sweep(arguments)
            except ValueError:
                if not impl.storage or self._completed_trials() > 0:
                    raise  # not the missing best trial: a real problem, keep its traceback
                log.error("no trial of study '%s' completed (each failed or diverged; the summary below says "
                          "why): there is no best trial", impl.study_name)

        def _completed_trials(self) -> int:
            import optuna

            study = optuna.load_study(study_name=self.sweeper.study_name, storage=self.sweeper.storage)
            return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
