"""pixel-spotter's launchers (conf/hydra/launcher/): the plugins' own, with small changes. Hydra instantiates a
launcher only from the hydra_plugins package, and imports every module here at each start, so this holds
the classes only, each defined when its plugin (the sweep extra) is installed; the work is in pixel_spotter/.

- JoblibLauncher (hydra/launcher=parallel): a worker killed from outside costs the jobs running then, not
  the sweep (pixel_spotter/sweeps/joblib_launcher.py).
- LocalLauncher, SlurmLauncher (submitit_local, slurm): a job submitit requeues (preempted, or timed out
  while max_num_timeout allows) comes back with resume=true, so it continues its run folder from last.ckpt
  instead of being refused as a used folder (and a job already ok is skipped); a job killed outright (kill -9,
  the OOM killer, scancel) costs itself, not the sweep: the others are waited for and the summary lists it
  (pixel_spotter/sweeps/launchers.py submitit_launch); and a group of jobs that trains once (epoch budgets,
  sweeps/shared_prefix.py) is one submitit job, its jobs one after the other (launch_chains).
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

if find_spec("hydra_plugins.hydra_joblib_launcher"):
    from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as _JoblibLauncher

    class JoblibLauncher(_JoblibLauncher):
        def launch(self, job_overrides, initial_job_idx: int):
            from pixel_spotter.sweeps.joblib_launcher import launch

            return launch(self, job_overrides, initial_job_idx)


if find_spec("hydra_plugins.hydra_submitit_launcher"):
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher

    class _OurSubmitit:
        def checkpoint(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
            # submitit calls this in the job when the scheduler's signal arrives and requeues what it returns:
            # the same job (number, folder), now resuming.
            from pixel_spotter.sweeps.launchers import resuming

            return super().checkpoint(resuming(list(sweep_overrides)), *args, **kwargs)

        def launch(self, job_overrides, initial_job_idx: int):
            from pixel_spotter.sweeps.launchers import submitit_launch

            return submitit_launch(self, job_overrides, initial_job_idx)

        def launch_chains(self, chains):
            # the matching sweeper's groups that train once, each one submitit job (pixel_spotter/sweeps/launchers.py)
            from pixel_spotter.sweeps.launchers import submitit_launch_chains

            return submitit_launch_chains(self, chains)

    class LocalLauncher(_OurSubmitit, submitit_launcher.LocalLauncher):
        pass

    class SlurmLauncher(_OurSubmitit, submitit_launcher.SlurmLauncher):
        pass
