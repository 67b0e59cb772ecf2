"""The run side of epoch sweeps that train once (the plan is sweeps/shared_prefix.py).

The longest job of a shared group runs ``PrefixSnapshots``: once an epoch that is a shorter job's budget is whole
(at the next epoch's start, or the end of fit) it hard-links the run's ``last.ckpt`` of that epoch (weights,
optimizer, loops, and the callbacks' state, which names the best checkpoint so far) and that best checkpoint,
copies the CSV and TensorBoard logs, and marks the snapshot complete. A shorter job then ``adopt``s its
snapshot: the files move into its own run folder, and it starts from them exactly as a run resumed at the end of
its last epoch, so it trains nothing and tests and records itself.

A run that stops early (early stopping) before a shorter budget leaves that budget's snapshot at the epoch it
stopped, where a separate run of that budget would have stopped too; a diverged one leaves none (each shorter
job then trains separately). A missing or incomplete snapshot (killed, deleted) means the same.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from omegaconf import DictConfig

from pixel_spotter.run_folder import RunFolder, Start
from pixel_spotter.run_folder.layout import (
    CHECKPOINTS,
    CSV_LOG,
    SNAPSHOT_DONE,
    TENSORBOARD,
    snapshot_dir,
)
from pixel_spotter.training.callbacks import DivergenceGuard

log = logging.getLogger(__name__)


class PrefixSnapshots(Callback):
    def __init__(self, folder: RunFolder, sweep: Path, job: int, epochs: list[int]):
        self.folder, self.sweep, self.job = folder, Path(sweep), int(job)
        # budgets whose snapshot is not complete yet (a resumed job may have left some before it was killed)
        self.pending = sorted(e for e in map(int, epochs) if not _complete(snapshot_dir(sweep, job, e)))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # By now the last epoch is whole: its metrics logged, last.ckpt saved with the best so far in its state
        # (the checkpoint callbacks run last, and save at the end of the training epoch).
        if trainer.current_epoch in self.pending:
            self._take(trainer, trainer.current_epoch, stopped_at=trainer.current_epoch)

    def on_fit_end(self, trainer, pl_module) -> None:
        guard = next((cb for cb in trainer.callbacks if isinstance(cb, DivergenceGuard)), None)
        if guard is not None and guard.diverged_at:
            return  # the shorter jobs train separately (and diverge as they will)
        done = trainer.current_epoch  # epochs completed
        for budget in [b for b in self.pending if b >= done > 0]:  # done, or stopped early before the budget:
            self._take(trainer, budget, stopped_at=done)  # a separate run would have stopped here too

    def _take(self, trainer, budget: int, stopped_at: int) -> None:
        """The run folder's checkpoints (hard links: later epochs replace or delete the originals) and logs (copies:
        later epochs append to them) as the snapshot for the ``budget``-epoch job, marked complete last."""
        last = self.folder.last_checkpoint
        if not last.is_file():
            log.info("no %s to share (callbacks.last_checkpoint is off?); the %d-epoch job trains separately",
                     last.name, budget)
            self.pending.remove(budget)
            return
        target = snapshot_dir(self.sweep, self.job, budget)
        shutil.rmtree(target, ignore_errors=True)  # an incomplete one of an earlier, killed start
        (target / CHECKPOINTS).mkdir(parents=True)
        for checkpoint in {last, *filter(None, [_best_so_far(trainer)])}:
            if checkpoint.is_file():
                _link_or_copy(checkpoint, target / CHECKPOINTS / checkpoint.name)
        for logger in trainer.loggers:
            logger.save()
            flush = getattr(getattr(logger, "experiment", None), "flush", None)
            if callable(flush):
                flush()  # TensorBoard's event file
        for name, source in ((CSV_LOG, self.folder.csv_log), (TENSORBOARD, self.folder.tensorboard)):
            if source.is_dir():
                shutil.copytree(source, target / name)
        done = {"job": self.job, "epochs": budget, "stopped_at": stopped_at}
        (target / SNAPSHOT_DONE).write_text(json.dumps(done) + "\n")  # last: the snapshot is whole
        self.pending.remove(budget)
        log.info("snapshot for the %d-epoch job of the same settings -> %s", budget, target)


def _complete(snapshot: Path) -> bool:
    return (snapshot / SNAPSHOT_DONE).is_file()


def _best_so_far(trainer) -> Path | None:
    monitored = next((cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor), None)
    return Path(monitored.best_model_path) if monitored and monitored.best_model_path else None


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or one without hard links
        shutil.copy2(source, target)


def snapshots_for(cfg: DictConfig, folder: RunFolder, sweep: Path | None, job: int | None) -> PrefixSnapshots | None:
    """The callback for the longest job of a shared group (share.snapshot_epochs set), else None."""
    epochs = list((cfg.get("share") or {}).get("snapshot_epochs") or [])
    if not epochs or sweep is None or job is None:
        return None
    return PrefixSnapshots(folder, sweep, job, epochs)


def adopt(cfg: DictConfig, folder: RunFolder, sweep: Path | None) -> Start | None:
    """For a shorter job of a shared group (share.from_job set) whose snapshot is complete: move the snapshot into
    ``folder`` (fresh, claimed by the caller) and return how to start from it; None to train separately."""
    source = (cfg.get("share") or {}).get("from_job")
    if source is None or sweep is None:
        return None
    budget = int(cfg.trainer.max_epochs)
    snapshot = snapshot_dir(sweep, source, budget)
    try:
        done = json.loads((snapshot / SNAPSHOT_DONE).read_text())
        stopped_at = int(done["stopped_at"])
    except (OSError, ValueError, KeyError, TypeError):
        log.info("no complete snapshot of job %s at epoch %d (%s): this job trains separately", source, budget,
                 snapshot)
        return None
    for name in (CHECKPOINTS, CSV_LOG, TENSORBOARD):
        if (snapshot / name).is_dir():
            os.replace(snapshot / name, folder.path / name)
    shutil.rmtree(snapshot, ignore_errors=True)
    for empty in (snapshot.parent, snapshot.parent.parent):  # <sweep>/.shared/<job#>/, then .shared/ itself
        try:
            empty.rmdir()
        except OSError:  # not empty: other snapshots wait for their jobs
            break
    log.info("the first %d epochs of job %s are this job's: starting from its snapshot", stopped_at, source)
    return Start(checkpoint=folder.last_checkpoint, shared_from=int(source), stop_at=stopped_at, adopted=True)
