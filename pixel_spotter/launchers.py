"""What a job does differently when a multi-job launcher (hydra/launcher=parallel, joblib) runs it: one
machine's cores shared out between the jobs running at once, and no data loader workers."""

from __future__ import annotations

import logging
import os

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells, else every core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return os.cpu_count() or 1


def jobs_at_once() -> int | None:
    """How many jobs the running launcher starts at once on this machine; None when it runs one job at a
    time in this process (Hydra's basic launcher) or Hydra is not running at all."""
    if not HydraConfig.initialized():
        return None
    launcher = HydraConfig.get().get("launcher") or {}
    if not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return None
    n_jobs = int(launcher.get("n_jobs", -1))
    return cores() if n_jobs == -1 else max(1, n_jobs if n_jobs > 0 else cores() + 1 + n_jobs)  # joblib's rule


def threads_per_job(cfg: DictConfig) -> int | None:
    """``threads_per_job`` from the config when set, else cores // jobs at once under a multi-job launcher,
    else None (torch's default)."""
    wanted = cfg.get("threads_per_job")
    if wanted is not None:  # checked by config.validate(); a bad value is reported there, not here
        return wanted if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 1 else None
    jobs = jobs_at_once()
    return None if jobs is None else max(1, cores() // jobs)


def share_machine(cfg: DictConfig) -> None:
    """Set this job's torch threads and, under a multi-job launcher, force data.num_workers to 0."""
    import torch

    threads = threads_per_job(cfg)
    if threads is not None:
        torch.set_num_threads(threads)
    if jobs_at_once() is not None and cfg.get("data") is not None and cfg.data.get("num_workers", 0):
        log.info("data.num_workers=%s -> 0: a parallel launcher's job cannot fork data loader workers",
                 cfg.data.num_workers)
        with open_dict(cfg):
            cfg.data.num_workers = 0


# Config choices that need an optional extra: Hydra composes before any of our code runs and would answer
# with a config-search-path listing; this names the missing install instead (train.py calls it first).
NEEDS_EXTRA = {"hparams_search=optuna": "hydra_plugins.hydra_optuna_sweeper",
               "hydra/launcher=parallel": "hydra_plugins.hydra_joblib_launcher"}


def missing_extra(argv: list[str]) -> str | None:
    """One line naming the install, when ``argv`` picks a launcher or sweeper whose plugin is absent."""
    import importlib.util

    for choice, plugin in NEEDS_EXTRA.items():
        if choice in argv:
            try:
                found = importlib.util.find_spec(plugin) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                return (f"error: {choice} needs the optional 'sweep' extra, which is not installed; "
                        "install it with EXTRAS=test,sweep make setup (or pip install -e '.[sweep]')")
    return None
