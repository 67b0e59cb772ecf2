"""run(cfg): claim the run folder, validate, build data/model/trainer from config, fit (or resume), test
the best checkpoint, record. The folder's layout and record belong to ``run_folder/``; what a run writes
besides its record (predictions.csv, TensorBoard's figure and HPARAMS tab) to ``training/side_outputs.py``.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from pixel_spotter.benchmarks.timing import ms_per_image
from pixel_spotter.errors import UserError, unwrapped_user_errors
from pixel_spotter.evaluation.formatting import test_line
from pixel_spotter.run_folder import DIVERGED, FAILED, OK, Results, RunFolder, Start, all_finite
from pixel_spotter.sweeps.launchers import share_machine
from pixel_spotter.sweeps.search import optimized_value
from pixel_spotter.training.callbacks import (
    CheckpointsFollowTheFolder,
    DivergenceGuard,
    FitClock,
    RngStateInCheckpoint,
)
from pixel_spotter.training.checkpoint_io import with_atomic_checkpoints
from pixel_spotter.training.environment import hardware, versions
from pixel_spotter.training.prefix_snapshots import adopt, snapshots_for
from pixel_spotter.training.side_outputs import TestPredictions, record_hooks
from pixel_spotter.training.validation import resume_flag, validate

log = logging.getLogger(__name__)


def _hydra_info() -> dict:
    """Overrides, group choices and job number of this job (empty when Hydra is not running it)."""
    if not HydraConfig.initialized():
        return {"overrides": [], "choices": {}, "multirun": False, "job_num": None, "sweep": None}
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return {"overrides": list(hc.overrides.task), "choices": dict(hc.runtime.choices), "multirun": multirun,
            "job_num": int(hc.job.num) if multirun and hc.job.get("num") is not None else None,
            "sweep": Path(hc.sweep.dir) if multirun else None}


def build(cfg: DictConfig, extra_callbacks: tuple = ()):
    """Instantiate (datamodule, module, trainer) from a validated config, the trainer with ``extra_callbacks``."""
    with unwrapped_user_errors():  # e.g. ResNet18's "weights unavailable" stays one line, not a trace
        return _build(cfg, extra_callbacks)


def _build(cfg: DictConfig, extra_callbacks: tuple = ()):
    datamodule = instantiate(cfg.data)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    model = instantiate(cfg.model, optimizer=instantiate(cfg.optimizer), scheduler=scheduler,
                        height=cfg.data.height, width=cfg.data.width)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    # Not config: the record's truth (status, resume) and the run folder's contents (predictions.csv)
    # depend on these, whatever callbacks a user picks.
    callbacks += [DivergenceGuard(), RngStateInCheckpoint(), CheckpointsFollowTheFolder(), FitClock(),
                  TestPredictions(cfg.output_dir), *extra_callbacks]
    # Loggers by name (conf/logger: tensorboard, csv): ~logger.csv drops one, ~logger all of them.
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    # trainer.plugins plus AtomicCheckpointIO: every checkpoint is written beside its target, then renamed
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                          plugins=with_atomic_checkpoints(cfg.trainer.get("plugins")))
    return datamodule, model, trainer


def _callback(trainer, kind):
    return next((cb for cb in trainer.callbacks if isinstance(cb, kind)), None)


def _best_checkpoint(trainer) -> str | None:
    # The one that monitors a metric (callbacks.model_checkpoint), not last_checkpoint, which keeps the latest.
    checkpoint = next((cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor), None)
    return checkpoint.best_model_path or None if checkpoint else None


def _metrics(raw: list[dict], stage: str) -> dict:
    return {k.split("/", 1)[1]: float(v) for k, v in (raw[0] if raw else {}).items() if k.startswith(f"{stage}/")}


def evaluate(model, datamodule, stage: str) -> dict:
    """The loss and metrics of ``model`` on the ``stage`` split's images, computed outside the trainer (nothing
    is logged): the module's own ``measure`` (a one-answer model's pixel metrics, a frame model's localization
    scores)."""
    model.eval()
    return model.measure(datamodule, stage)


def base_record(cfg: DictConfig, info: dict) -> Results:
    """What is known about a run before it trains (also what a failed run leaves)."""
    net = cfg.model.net.get("_target_")
    data = OmegaConf.to_container(cfg.data, resolve=True)
    weights = cfg.model.net.get("weights")
    return Results(
        model=info["choices"].get("model") or str(net or "?").rsplit(".", 1)[-1],
        net=net,
        job_num=info["job_num"],
        overrides=info["overrides"],
        lr=cfg.model.get("lr"),
        max_epochs=cfg.trainer.get("max_epochs"),
        seed=cfg.get("seed"),
        data={k: v for k, v in data.items() if not k.startswith("_")},
        weights_requested=None if weights is None else str(weights),
        versions=versions(),
        hardware=hardware(),
    )


def run(cfg: DictConfig) -> Results:
    """Claim the run folder, then train and test one configuration (or, resuming, continue or skip it);
    return its record, which is also written to the folder, whatever happens after the claim."""
    info = _hydra_info()
    folder = RunFolder(cfg.output_dir)
    with folder.claim(resume_flag(cfg), info["overrides"], cfg) as start:  # conflict: nothing written
        if start.skip is not None:
            log.info("%s already finished ok; nothing to resume", folder.path)
            return start.skip
        folder.save_config(cfg)
        try:
            record = base_record(cfg, info)
        except Exception:  # the config itself may be what is broken; validate() below names the problem
            record = Results(overrides=info["overrides"], job_num=info["job_num"])
        folder.write(record)  # status 'running': a reader can now tell a killed run from a missing one
        try:
            validate(cfg)
            if start.checkpoint is None:  # a fresh folder: an epoch sweep's shorter job starts from its snapshot
                start = adopt(cfg, folder, info["sweep"]) or start
            if start.stop_at is not None:  # its training is done (adopted, or finished before a kill): said on
                record.epochs_run, record.shared_from = start.stop_at, start.shared_from  # disk, so that a
                folder.write(record)  # resume after a kill during the test does not train on either
            _train(cfg, folder, start, record, snapshots_for(cfg, folder, info["sweep"], info["job_num"]))
        except Exception as err:
            record.status = FAILED
            record.error = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
            if not isinstance(err, UserError):
                folder.write_error(traceback.format_exc())
            folder.write(record)
            raise
        folder.write(record)
        return record


def _train(cfg: DictConfig, folder: RunFolder, start: Start, record: Results, snapshots=None) -> None:
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model, trainer = build(cfg, (snapshots,) if snapshots else ())
    if start.extends:
        log.info("continuing the finished run from epoch %d to %d", start.extends, cfg.trainer.max_epochs)
    if start.stop_at is not None:  # its budget, where the longer job stopped early, or where this run stopped
        trainer.fit_loop.max_epochs = start.stop_at  # (early stopping) before a kill during its test
    if start.checkpoint and not start.adopted:
        log.info("resuming from %s", start.checkpoint)
        record.resumed_from = os.path.relpath(start.checkpoint, folder.path)

    trainer.fit(model, datamodule=datamodule, ckpt_path=start.checkpoint, weights_only=True)
    if not _callback(trainer, DivergenceGuard).diverged_at:  # training is done: a resume tests, trains no more
        record.epochs_run = int(trainer.current_epoch)
        folder.write(record)
    train_seconds = _callback(trainer, FitClock).seconds  # now: trainer.test restores callback states
    best = _best_checkpoint(trainer)
    if best is None and folder.last_checkpoint.is_file() and not _callback(trainer, DivergenceGuard).diverged_at:
        best = str(folder.last_checkpoint)  # no best kept (save_top_k=0): the final epoch's weights, as saved
    test = _metrics(trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False,
                                 weights_only=True), "test")  # TestPredictions writes predictions.csv
    # Still needed: Lightning's teardown after trainer.test moves the model to the CPU, but best_val and the
    # inference timing below are measured on the device it trained on (record.device names it).
    model.to(trainer.strategy.root_device).eval()
    best_val = evaluate(model, datamodule, "val")  # same weights; not logged as a new epoch
    _record(record, trainer, datamodule, model, folder, best, train_seconds, best_val, test)
    if record.ok:
        datamodule.task.record_results(record, datamodule, model)  # the task's bound and references
    record_hooks(trainer, model, record)  # side outputs that need the complete record (training/side_outputs.py)


def _record(record: Results, trainer, datamodule, model, folder: RunFolder, best: str | None,
            train_seconds: float, best_val: dict, test: dict) -> None:
    """Complete ``record`` with what the trained and tested run measured."""
    diverged_at = _callback(trainer, DivergenceGuard).diverged_at
    if diverged_at or not all_finite(test) or not all_finite(best_val):
        record.status = DIVERGED
        record.error = f"non-finite {'loss at ' + diverged_at if diverged_at else 'test or validation metric'}"
    elif trainer.global_step == 0:  # nothing learned: its test numbers are those of a random network
        record.status = FAILED
        record.error = ("trained on 0 batches (trainer.max_epochs, trainer.limit_train_batches or an empty training "
                        "split); give it at least one training batch")
    else:
        record.status = OK
    # One batch of up to 1024 images, fewer for large images (2**24 pixels: 64 at 512x512), rendered once
    batch = max(1, min(1024, 2**24 // (datamodule.height * datamodule.width)))
    images = datamodule.images("test", model.device, limit=batch)
    record.epochs_run = int(trainer.current_epoch)
    record.params = sum(p.numel() for p in model.parameters())
    record.weights_used = getattr(model.net, "weights_used", "random init")
    record.train_seconds = round(train_seconds, 3)
    record.inference_ms_per_image = {
        "batched": ms_per_image(model, images, batch_size=batch),
        "batch_size": batch,
        "single": ms_per_image(model, images, batch_size=1, repeats=1, max_images=min(100, batch)),
    }
    record.test_overlap = datamodule.test_overlap
    record.data = {**record.data, **{f"n_{k}": len(v) for k, v in datamodule.positions.items()}}
    record.best_checkpoint = os.path.relpath(best, folder.path) if best else None
    record.best_val, record.test = best_val, test
    record.device = str(model.device)
    if getattr(model, "frames", False):  # the detection threshold the test was scored with (chosen on val)
        record.decode = model.decode_record()


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def quiet_libraries() -> None:
    """One copy of each Lightning message (through Hydra's log handlers), minus adverts and noise."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()  # Lightning adds its own; Hydra's root handler suffices
        logging.getLogger(name).propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())
    # In-memory tensors need no loader workers; Lightning's advice to add some would only slow runs.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")


def main(cfg: DictConfig) -> float | None:
    """Hydra task: run, and turn failures into one line (a single run) or a logged, recorded job (a sweep).

    Returns ``optimized_metric`` (a validation metric) of the run's best checkpoint, the value an optimizing
    sweeper (hparams_search=optuna) minimizes or maximizes; None when the job failed or diverged, which the
    Optuna sweeper records as a failed trial. A single run exits with one line for a user error and status 1
    when it diverged. In a sweep a failing or diverged job is recorded and the sweep goes on (the
    end-of-sweep summary lists it and exits 1).
    """
    quiet_libraries()
    share_machine(cfg)  # threads from the launcher's config; no loader workers in a joblib worker
    multirun = _hydra_info()["multirun"]
    try:
        record = run(cfg)
    except Exception as err:
        message = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
        if multirun:
            log.error("job failed: %s", message)
            return None
        if isinstance(err, UserError):
            sys.exit(f"error: {message}")
        raise
    results = RunFolder(cfg.output_dir).results_file
    if not record.ok:
        log.error("%s: %s -> %s", record.status, record.error, results)
        if not multirun:
            sys.exit(f"error: the run {record.status}: {record.error}; see {results}")
        return None
    test = record.test
    log.info("test: %s -> %s", test_line(test), results)
    return optimized_value(record, cfg.get("optimized_metric", "val/euclid_px"))
