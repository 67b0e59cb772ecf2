"""The run folder's layout: file names, statuses, and the config resolvers that name run paths."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from omegaconf import OmegaConf

# Statuses a run writes ...
RUNNING, OK, FAILED, DIVERGED = "running", "ok", "failed", "diverged"
# ... and the ones only a reader can tell: the writer was killed, never wrote, wrote garbage, never started.
INTERRUPTED, UNFINISHED, UNREADABLE, NOT_STARTED = "interrupted", "unfinished", "unreadable", "not started"

HYDRA_DIR, CONFIG, HYDRA_CONFIG, OVERRIDES = ".hydra", "config.yaml", "hydra.yaml", "overrides.yaml"
RESULTS, PREDICTIONS, ERROR = "results.json", "predictions.csv", "error.txt"
CHECKPOINTS, LAST_CHECKPOINT, TENSORBOARD, LOCK = "checkpoints", "last.ckpt", "tensorboard", "run.lock"
CSV_LOG, CSV_METRICS = "csv", "metrics.csv"  # pixel_spotter/training/loggers.py writes CSV_METRICS into CSV_LOG
SWEEP_CONFIG, SWEEP_LOCK = "multirun.yaml", "sweep.lock"
# `pixel-spotter robustness` writes these into a sweep folder (or --out); the report reads ROBUSTNESS back.
ROBUSTNESS, ROBUSTNESS_PLOT = "robustness.csv", "robustness.png"
STUDY = "optuna.db"  # a search's Optuna study (SQLite), in the sweep folder (conf/hparams_search/optuna.yaml)
# An epoch sweep's snapshots (sweeps/shared_prefix.py): <sweep>/SHARED/<job#>/epochs-<n>/, each a run folder's
# checkpoints and logs at epoch n of job <job#>, complete once SNAPSHOT_DONE is in it, until its job takes it.
SHARED, SNAPSHOT_DONE = ".shared", "complete"
# A run's own subfolders never hold runs; skipping them keeps finding runs fast.
_NOT_RUNS = {HYDRA_DIR, CHECKPOINTS, TENSORBOARD, CSV_LOG, SHARED, "plots", "__pycache__"}
_JOB_DIR = re.compile(r"(\d+)_")  # Hydra job folders are <job#>_<overrides> (conf/hydra/default.yaml)


def unique_tag() -> str:
    """The suffix that makes a new run or sweep folder unique: the pid separates processes that start in
    the same second on one machine, the random part separates machines sharing a disk."""
    return f"{os.getpid()}-{secrets.token_hex(2)}"


MAX_NAME_BYTES = 200  # a file system's name limit is 255 bytes; a job folder's <job#>_ comes before this part


def short_name(name: str) -> str:
    """A sweep job's folder name part (its overrides, ``hydra.job.override_dirname``), each ``/``-separated part cut
    to ``MAX_NAME_BYTES`` with a hash of the whole part kept (distinct overrides stay distinct folders): many
    overrides would otherwise make a name the file system refuses ("File name too long") after the job started."""
    import hashlib

    def cut(part: str) -> str:
        raw = part.encode()
        if len(raw) <= MAX_NAME_BYTES:
            return part
        return raw[:MAX_NAME_BYTES - 9].decode(errors="ignore") + "~" + hashlib.sha1(raw).hexdigest()[:8]

    return "/".join(cut(part) for part in str(name).split("/"))


# The config names run paths through these, never by file name: conf/hydra (unique folder names, cached so
# that a sweep's jobs agree on their sweep folder; job folder names the file system accepts), conf/callbacks
# (checkpoints), conf/logger (tensorboard, csv), conf/hparams_search (the study file of a sweep).
OmegaConf.register_new_resolver("run_folder.unique", unique_tag, use_cache=True, replace=True)
OmegaConf.register_new_resolver("run_folder.checkpoints", lambda run: str(Path(run) / CHECKPOINTS), replace=True)
OmegaConf.register_new_resolver("run_folder.tensorboard", lambda run: str(Path(run) / TENSORBOARD), replace=True)
OmegaConf.register_new_resolver("run_folder.csv_log", lambda run: str(Path(run) / CSV_LOG), replace=True)
OmegaConf.register_new_resolver("run_folder.short", short_name, replace=True)
OmegaConf.register_new_resolver("run_folder.study", lambda sweep: str(Path(sweep) / STUDY), replace=True)


def snapshot_dir(sweep: str | Path, job: int, epochs: int) -> Path:
    """Where job ``job`` of ``sweep`` leaves its run folder's state at epoch ``epochs`` for a shorter job."""
    return Path(sweep) / SHARED / str(int(job)) / f"epochs-{int(epochs)}"
