"""What a job does differently under a launcher that runs several jobs at once (hydra/launcher=parallel,
submitit_local, slurm, ray): its torch threads come from the launcher's config (one machine's cores shared
out, or the CPUs the scheduler gave it), a joblib worker gets no data loader workers, and the launcher's
GPU request follows the trainer (the ``launchers.gpus`` resolver). Also how our submitit launchers collect
their jobs (a killed job costs itself, not the sweep), and the one-line refusals of a launcher that cannot run."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells, else every core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return os.cpu_count() or 1


def _launcher() -> DictConfig:
    launcher = HydraConfig.get().get("launcher") if HydraConfig.initialized() else None
    return launcher if launcher is not None else OmegaConf.create()


def _select(launcher, key: str):
    """A (resolved) key of the launcher's config; inside the whole config, so ${trainer...} resolves."""
    node = launcher if OmegaConf.is_config(launcher) else OmegaConf.create(launcher)
    return OmegaConf.select(node, key)


def _kind(launcher) -> str | None:
    """'joblib', 'submitit' or 'ray' from the launcher's _target_ (ours subclass the plugins' and keep the
    class names), None for Hydra's basic launcher."""
    target = str(launcher.get("_target_", "")).rsplit(".", 1)[-1]
    return {"JoblibLauncher": "joblib", "LocalLauncher": "submitit", "SlurmLauncher": "submitit",
            "RayLauncher": "ray"}.get(target)


def jobs_at_once() -> int | None:
    """How many jobs the joblib launcher runs at once in worker processes of this machine; None under any
    other launcher (or none)."""
    launcher = _launcher()
    if _kind(launcher) != "joblib":
        return None
    n_jobs = int(launcher.get("n_jobs", -1))
    return cores() if n_jobs == -1 else max(1, n_jobs if n_jobs > 0 else cores() + 1 + n_jobs)  # joblib's rule


def launcher_cpus() -> int | None:
    """The CPUs the launcher gives each job: cores // jobs at once (joblib), cpus_per_task (submitit: what
    Slurm allots, or this machine's share under submitit_local), ray.remote.num_cpus (ray); None when the
    launcher does not say."""
    launcher = _launcher()
    kind = _kind(launcher)
    if kind == "joblib":
        return max(1, cores() // jobs_at_once())
    if kind == "submitit":
        cpus = launcher.get("cpus_per_task")
    elif kind == "ray":
        cpus = _select(launcher, "ray.remote.num_cpus")
    else:
        return None
    return max(1, int(cpus)) if cpus else None  # ray may give a fraction of a CPU


def threads_per_job(cfg: DictConfig) -> int | None:
    """``threads_per_job`` from the config when set, else the CPUs the launcher gives each job, else None
    (torch's default: every core, which several jobs at once then fight over)."""
    wanted = cfg.get("threads_per_job")
    if wanted is not None:  # checked by config.validate(); a bad value is reported there, not here
        return wanted if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 1 else None
    return launcher_cpus()


def share_machine(cfg: DictConfig) -> None:
    """Set this job's torch threads and, in a joblib worker, force data.num_workers to 0."""
    import torch

    threads = threads_per_job(cfg)
    if threads is not None:
        torch.set_num_threads(threads)
    if jobs_at_once() is not None and cfg.get("data") is not None and cfg.data.get("num_workers", 0):
        log.info("data.num_workers=%s -> 0: a parallel launcher's job cannot fork data loader workers",
                 cfg.data.num_workers)
        with open_dict(cfg):
            cfg.data.num_workers = 0


def resuming(overrides: list[str]) -> list[str]:
    """A requeued job's overrides: resume=true (replacing any resume=... it had), so it continues its folder."""
    return [o for o in overrides if not o.lstrip("+~").startswith("resume=")] + ["resume=true"]


def submitit_launch(launcher, job_overrides, initial_job_idx: int) -> list:
    """hydra-submitit-launcher's launch (BaseSubmititLauncher.launch, 1.2), except that it waits for every job and
    a job that produced no result (its process killed: kill -9, the OOM killer, scancel) returns None, as a
    failed job does (training/run.py main), instead of raising out of the sweep while the other jobs run on:
    its folder tells the summary how far it got, and resume=true continues it."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import filter_overrides

    executor = _submitit_executor(launcher)
    sweep = Path(str(launcher.config.hydra.sweep.dir))
    sweep.mkdir(parents=True, exist_ok=True)
    if "mode" in launcher.config.hydra.sweep:
        os.chmod(sweep, mode=int(str(launcher.config.hydra.sweep.mode), 8))
    nums = range(initial_job_idx, initial_job_idx + len(job_overrides))
    args = []
    for num, overrides in zip(nums, job_overrides):
        log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
        args.append((list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state()))
    jobs = executor.map_array(launcher, *zip(*args))
    return [_submitit_result(job, num, list(overrides)) for job, num, overrides in zip(jobs, nums, job_overrides)]


class JobChain:
    """What one submitit job runs for a chain of sweep jobs (a group that trains once, sweeps/shared_prefix.py):
    each job in turn, as the launcher runs one (the long job first, then the jobs that start from its
    snapshots), so the group waits in the Slurm queue once. A failed job does not stop the chain (Hydra keeps
    its error in its JobReturn); a job whose snapshot is missing trains on its own, as it would alone."""

    def __init__(self, launcher):
        self.launcher = launcher

    def __call__(self, jobs: list[tuple]) -> list:
        return [self.launcher(*job) for job in jobs]

    def checkpoint(self, jobs: list[tuple]):
        # submitit calls this in the job when the scheduler's signal arrives and requeues what it returns: the
        # same chain, each job now resuming (a finished one is skipped, the one cut short continues)
        import submitit

        return submitit.helpers.DelayedSubmission(self, [(resuming(list(job[0])), *job[1:]) for job in jobs])


def submitit_launch_chains(launcher, chains: list[list[tuple[int, list[str]]]]) -> list:
    """``submitit_launch`` for chains of jobs: one submitit job (one Slurm array task) per chain, the chain's
    jobs run one after the other in it; the JobReturns of every job, in chain order."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import filter_overrides

    executor = _submitit_executor(launcher)
    sweep = Path(str(launcher.config.hydra.sweep.dir))
    sweep.mkdir(parents=True, exist_ok=True)
    if "mode" in launcher.config.hydra.sweep:
        os.chmod(sweep, mode=int(str(launcher.config.hydra.sweep.mode), 8))
    args = []
    for chain in chains:
        log.info("\tone job: %s", "; then ".join(f"#{num} : {' '.join(filter_overrides(o))}" for num, o in chain))
        args.append([(list(o), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state()) for num, o in chain])
    jobs = executor.map_array(JobChain(launcher), args)
    return [result for job, chain in zip(jobs, chains) for result in _chain_results(job, chain)]


def _chain_results(job, chain: list[tuple[int, list[str]]]) -> list:
    from hydra.core.utils import JobReturn, JobStatus
    from submitit.core.utils import UncompletedJobError

    try:
        return job.results()[0]
    except UncompletedJobError:
        log.error("the job of jobs %s stopped without a result (killed? out of memory?): resume=true continues "
                  "them; submitit's log of it: %s", ", ".join(str(num) for num, _ in chain), job.paths.stderr)
        return [JobReturn(overrides=list(o), status=JobStatus.COMPLETED, _return_value=None) for _, o in chain]


def _submitit_executor(launcher):
    """The plugin's executor: folder and max_num_timeout when it is made, every other key as a parameter."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    kind, params = launcher._EXECUTOR, launcher.params
    made_with = ("submitit_folder", "max_num_timeout")
    init = {f"{kind}_max_num_timeout": params["max_num_timeout"]} if "max_num_timeout" in params else {}
    executor = submitit.AutoExecutor(cluster=kind, folder=params["submitit_folder"], **init)
    common = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in common else f"{kind}_{k}": v for k, v in params.items()
                                  if k not in made_with})
    log.info("Submitit '%s' sweep output dir : %s", kind, launcher.config.hydra.sweep.dir)
    return executor


def _submitit_result(job, num: int, overrides: list[str]):
    from hydra.core.utils import JobReturn, JobStatus
    from submitit.core.utils import UncompletedJobError

    try:
        return job.results()[0]
    except UncompletedJobError:
        log.error("job %d stopped without a result (killed? out of memory?): resume=true continues it; "
                  "submitit's log of it: %s", num, job.paths.stderr)
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)


def gpus(accelerator, devices, here: bool = True) -> int:
    """GPUs a launcher asks for per job, from trainer.accelerator and trainer.devices. ``here``: the jobs run
    on this machine (submitit_local), so accelerator=auto means its GPUs when it has any; on a cluster
    (slurm, ray) the submitting machine cannot tell, so only gpu/cuda asks for GPUs."""
    accelerator = str(accelerator).lower()
    if accelerator not in ("gpu", "cuda", "auto"):
        return 0
    visible = None
    if here:
        import torch

        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if accelerator == "auto" and not visible:
            return 0
    elif accelerator == "auto":
        return 0
    if isinstance(devices, (list, tuple, ListConfig)):
        return len(devices)
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        return devices
    return visible or 1  # devices=auto or -1: every GPU here, one on a cluster


# conf/hydra/launcher/{submitit_local,slurm,ray}.yaml: gpus_per_node / num_gpus follow the trainer.
OmegaConf.register_new_resolver("launchers.gpus", gpus, replace=True)
# submitit_local.yaml and ray.yaml share the plugins' config names on purpose (the names users type), so
# Hydra checks them against the plugins' schemas and warns that this matching is deprecated, on every sweep.
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema with the same name")

# Config choices that need a plugin that may be absent: Hydra composes before any of our code runs and
# would answer with a config-search-path listing (or a traceback); this names the install instead
# (train.py calls it first).
_SWEEP_EXTRA = ("the optional 'sweep' extra, which is not installed; install it with EXTRAS=test,sweep make setup "
                "(or pip install -e '.[sweep]')")
NEEDS_EXTRA = {
    "hparams_search=optuna": ("optuna", _SWEEP_EXTRA),  # our sweeper (hydra_plugins/pixel_spotter) needs optuna
    "hydra/launcher=parallel": ("hydra_plugins.hydra_joblib_launcher", _SWEEP_EXTRA),
    "hydra/launcher=submitit_local": ("hydra_plugins.hydra_submitit_launcher", _SWEEP_EXTRA),
    "hydra/launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", _SWEEP_EXTRA),
    # No extra installs Ray (about 50 packages, and it pins cloudpickle<3): only for an existing Ray cluster.
    "hydra/launcher=ray": ("hydra_plugins.hydra_ray_launcher",
                           "hydra-ray-launcher, which no extra installs; for an existing Ray cluster, "
                           "pip install hydra-ray-launcher (into .venv)"),
}


def missing_extra(argv: list[str]) -> str | None:
    """One line naming the install, when ``argv`` picks a launcher or sweeper whose plugin is absent."""
    import importlib.util

    for choice, (plugin, install) in NEEDS_EXTRA.items():
        if choice in argv:
            try:
                found = importlib.util.find_spec(plugin) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                return f"error: {choice} needs {install}"
    return None


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def ray_gpu_problem(launcher, cuda_available=None) -> str | None:
    """Ray waits forever, silently, for a GPU that a local Ray cannot have: name the problem instead when
    ray.remote.num_gpus > 0, Ray starts on this machine (ray.init.address null or local) and it has no GPU."""
    if _kind(launcher) != "ray":
        return None
    num_gpus = _select(launcher, "ray.remote.num_gpus") or 0
    address = _select(launcher, "ray.init.address")
    if num_gpus > 0 and address in (None, "local") and not (cuda_available or _cuda_available)():
        return (f"hydra/launcher=ray asks {num_gpus} GPU(s) per job (hydra.launcher.ray.remote.num_gpus) but this "
                "machine has none and Ray would wait for one forever; use trainer=cpu (num_gpus follows it) or "
                "hydra.launcher.ray.remote.num_gpus=0, or point hydra.launcher.ray.init.address at a cluster "
                "with GPUs")
    return None
