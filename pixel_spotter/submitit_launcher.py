"""hydra/launcher=submitit_local and hydra/launcher=slurm: the submitit plugin's launchers, except that a
job submitit requeues (preempted, or timed out while hydra.launcher.max_num_timeout allows a retry) comes
back with resume=true, so it continues its own run folder from last.ckpt instead of being refused as a used
folder (and a job already ok is skipped). Needs the sweep extra (hydra-submitit-launcher)."""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_submitit_launcher import submitit_launcher

RESUME = "resume=true"


def resuming(overrides: list[str]) -> list[str]:
    """The job's overrides with resume=true (replacing any resume=... it had)."""
    return [o for o in overrides if not o.lstrip("+~").startswith("resume=")] + [RESUME]


class _ResumeOnRequeue:
    def checkpoint(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
        # submitit calls this in the job when the scheduler's signal arrives, and requeues what it returns:
        # the same job (number, folder), now resuming.
        return super().checkpoint(resuming(list(sweep_overrides)), *args, **kwargs)


class LocalLauncher(_ResumeOnRequeue, submitit_launcher.LocalLauncher):
    pass


class SlurmLauncher(_ResumeOnRequeue, submitit_launcher.SlurmLauncher):
    pass
