"""OptunaSearch: Hydra's Optuna sweeper with what pixel-spotter's searches need (conf/hparams_search/optuna.yaml
names it as hydra.sweeper._target_; Hydra loads sweepers only from the hydra_plugins namespace, hence this
folder). On top of the plugin it:

- writes the sweep's config (multirun.yaml), which the plugin does not, so the report knows a search;
- refuses, before any trial, an optimized_metric that is not a recorded validation metric or a direction that
  contradicts it (one line, exit 1);
- on resume, refuses in one line a study file that cannot be read, a study that is gone while its jobs remain,
  and a command that searches something else than the study's trials (pixel_spotter/sweeps/study.py);
- numbers a resumed study's jobs on from the trials it already holds, so trial N runs as job N and job folders
  never collide, and first runs again the trials a killed job left unfinished (each as its own job number);
- stops a search whose job was killed under a launcher that goes on (submitit, parallel) with the summary,
  leaving the trial unfinished for a resume to run again;
- ends a search in which no trial completed without the plugin's traceback (it asks for a best trial that does
  not exist): the failed trials stay FAILED in the study, and the sweep summary (pixel_spotter/sweeps/summary.py) lists
  every job and exits 1.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

try:  # the sweep extra; without it Hydra's plugin scan must still import this module quietly
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
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
            from pixel_spotter.errors import UserError
            from pixel_spotter.run_folder import save_sweep_config
            from pixel_spotter.sweeps.search import trials_held
            from pixel_spotter.sweeps.study import JobsKilled, StopWhenKilled, rerun_unfinished

            impl = self.sweeper
            sweep_dir = Path(str(impl.config.hydra.sweep.dir))
            try:
                study = self._resumed_study(arguments, sweep_dir)
            except UserError as err:
                sys.exit(f"error: {err}")  # before multirun.yaml is rewritten: the folder stays as it was
            save_sweep_config(impl.config)  # multirun.yaml, as Hydra's basic sweeper writes: the report reads it
            # The plugin counts jobs from 0 in every process; a resumed study's trials go on from its last one.
            impl.job_idx = trials_held(impl.storage, impl.study_name)
            impl.launcher = StopWhenKilled(impl.launcher, sweep_dir)
            try:
                if study is not None:
                    rerun_unfinished(study, impl.launcher)
                return impl.sweep(arguments)
            except JobsKilled as err:
                log.error("job(s) %s of the search stopped without finishing (killed? out of memory?), so the search "
                          "stops here; the same command plus resume=true hydra.sweep.dir=%s runs them again, then "
                          "adds hydra.sweeper.n_trials new trials", err, sweep_dir)
            except ValueError:
                if not impl.storage or self._completed_trials() > 0:
                    raise  # not the missing best trial: a real problem, keep its traceback
                log.error("no trial of study '%s' completed (each failed or diverged; the summary below says "
                          "why): there is no best trial", impl.study_name)

        def _resumed_study(self, arguments: list[str], sweep_dir: Path):
            """The study this command continues, checked to be the same search; None for a new one."""
            from pixel_spotter.sweeps.study import check_same_search, open_study

            impl = self.sweeper
            study = open_study(impl.storage, impl.study_name, sweep_dir)
            if study is not None:
                space, fixed = self._command_search(arguments)
                check_same_search(study, impl.config.get("optimized_metric"), space, fixed, sweep_dir)
            return study

        def _command_search(self, arguments: list[str]) -> tuple[dict, dict]:
            """(search space, fixed overrides) of this command, as the plugin's sweep() derives them."""
            impl = self.sweeper
            impl._process_searchspace_config()
            space, fixed = create_params_from_overrides(impl._parse_sweeper_params_config() + list(arguments))
            space = {**(impl.search_space_distributions or {}), **space}
            return {k: v for k, v in space.items() if k not in fixed}, fixed

        def _completed_trials(self) -> int:
            import optuna

            study = optuna.load_study(study_name=self.sweeper.study_name, storage=self.sweeper.storage)
            return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
