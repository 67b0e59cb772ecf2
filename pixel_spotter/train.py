"""run(cfg): validate, build data/model/trainer from config, fit, test the best checkpoint, record.

Every run leaves in its folder (``cfg.output_dir``): ``.hydra/`` (the composed config),
``tensorboard/`` (scalars, HPARAMS, sample predictions), ``checkpoints/``, ``predictions.csv``
(test positions and predictions, for the report) and ``results.json`` (written even when the run fails).
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
import warnings
from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from pixel_spotter import results
from pixel_spotter.config import validate
from pixel_spotter.errors import UserError, unwrapped_user_errors
from pixel_spotter.figures import overlay_figure
from pixel_spotter.metrics import pixel_metrics
from pixel_spotter.results import format_px
from pixel_spotter.timing import ms_per_image

log = logging.getLogger(__name__)


def _hydra_info() -> dict:
    """Overrides and group choices of this job (empty when Hydra is not running it)."""
    if not HydraConfig.initialized():
        return {"overrides": [], "choices": {}, "multirun": False}
    hc = HydraConfig.get()
    return {"overrides": list(hc.overrides.task), "choices": dict(hc.runtime.choices),
            "multirun": hc.mode == RunMode.MULTIRUN}


def build(cfg: DictConfig):
    """Instantiate (datamodule, module, trainer) from a validated config."""
    with unwrapped_user_errors():  # e.g. ResNet18's "weights unavailable" stays one line, not a trace
        return _build(cfg)


def _build(cfg: DictConfig):
    datamodule = instantiate(cfg.data)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    model = instantiate(cfg.model, optimizer=instantiate(cfg.optimizer), scheduler=scheduler,
                        height=cfg.data.height, width=cfg.data.width)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    return datamodule, model, trainer


def _best_checkpoint(trainer) -> str | None:
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.best_model_path:
            return cb.best_model_path
    return None


def _metrics(raw: list[dict], stage: str) -> dict:
    return {k.split("/", 1)[1]: float(v) for k, v in (raw[0] if raw else {}).items() if k.startswith(f"{stage}/")}


@torch.inference_mode()
def evaluate(model, dataset, stage: str) -> dict:
    """Pixel metrics of ``model`` on a TensorDataset, computed outside the trainer (nothing is logged)."""
    model.eval()
    metrics = pixel_metrics(stage).to(model.device)
    for images, target in torch.utils.data.DataLoader(dataset, batch_size=1024):
        images, target = images.to(model.device), target.to(model.device)
        metrics.update(model.predict_pixels(images), target * model.px_scale)
    return {k.split("/", 1)[1]: float(v) for k, v in metrics.compute().items()}


def _write_predictions(path: Path, true_xy: torch.Tensor, pred_xy: torch.Tensor) -> None:
    table = np.column_stack([true_xy.numpy(), pred_xy.numpy()])
    np.savetxt(path, table, delimiter=",", header="x_true,y_true,x_pred,y_pred", comments="",
               fmt=["%d", "%d", "%.4f", "%.4f"])


def _log_hparams_and_samples(trainer, record: dict, true_xy, pred_xy, height: int, width: int) -> None:
    """HPARAMS tab: this run's settings with its final metrics (``hp/...``), plus a sample-prediction figure."""
    if not trainer.logger or not hasattr(trainer.logger, "experiment"):
        return
    params = {"model": record["model"], "lr": record["lr"], "max_epochs": record["max_epochs"],
              "epochs_run": record["epochs_run"], "batch_size": record["data"]["batch_size"],
              "split": record["data"]["split"], "weights": record["weights_used"], "seed": record["seed"],
              "params": record["params"]}
    metrics = {f"hp/{stage}_{k}": v for stage in ("best_val", "test") for k, v in record[stage].items()}
    trainer.logger.log_hyperparams(params, metrics)
    fig = overlay_figure(true_xy, pred_xy, height, width, title=f"{record['model']}: test samples (best to worst)")
    trainer.logger.experiment.add_figure("test/sample_predictions", fig, global_step=trainer.global_step)
    plt.close(fig)
    trainer.logger.experiment.flush()


def run(cfg: DictConfig) -> dict:
    """Train and test one configuration; return (and write) its results record."""
    validate(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    info = _hydra_info()
    datamodule, model, trainer = build(cfg)

    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    train_seconds = time.perf_counter() - start

    best = _best_checkpoint(trainer)
    test = _metrics(trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False), "test")
    true_xy, pred_xy = model.test_predictions()  # of the best checkpoint, loaded by trainer.test
    # Lightning's teardown moves the model back to the CPU; evaluate and time it where it trained.
    model.to(trainer.strategy.root_device).eval()
    best_val = evaluate(model, datamodule.datasets["val"], "val")  # same weights; not logged as a new epoch
    images = datamodule.datasets["test"].tensors[0].to(model.device)
    record = results.base_record(cfg, info)
    record.update(
        status="ok",
        epochs_run=int(trainer.current_epoch),
        params=sum(p.numel() for p in model.parameters()),
        weights_used=getattr(model.net, "weights_used", "random init"),
        train_seconds=round(train_seconds, 3),
        inference_ms_per_image={
            "batched": ms_per_image(model, images, batch_size=1024),
            "batch_size": 1024,
            "single": ms_per_image(model, images, batch_size=1, repeats=1, max_images=100),
        },
        test_overlap=datamodule.test_overlap,
        data={**record["data"], **{f"n_{k}": len(v) for k, v in datamodule.positions.items()}},
        best_checkpoint=best,
        best_val=best_val,
        test=test,
        device=str(model.device),
    )
    _write_predictions(out / "predictions.csv", true_xy, pred_xy)
    _log_hparams_and_samples(trainer, record, true_xy.numpy(), pred_xy.numpy(), cfg.data.height, cfg.data.width)
    results.write(out, record)
    return record


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


def main(cfg: DictConfig) -> dict | None:
    """Hydra task: run, and turn failures into a results.json with status 'failed'.

    A single run exits with one line for a user error. In a sweep, a failing job is recorded and the
    sweep goes on (the end-of-sweep summary lists it and sets the exit status).
    """
    quiet_libraries()
    info = _hydra_info()
    try:
        record = run(cfg)
    except Exception as err:
        user_error = isinstance(err, UserError)
        message = str(err) if user_error else f"{type(err).__name__}: {err}"
        results.write_failure(Path(cfg.output_dir), cfg, info, message,
                              None if user_error else traceback.format_exc())
        if info["multirun"]:
            log.error("job failed: %s", message)
            return None
        if user_error:
            sys.exit(f"error: {message}")
        raise
    test = record["test"]
    log.info("test: euclid %s px, rmse %s px, exact %.1f%% -> %s", format_px(test["euclid_px"]),
             format_px(test["rmse_px"]), 100 * test["exact_acc"], Path(cfg.output_dir) / "results.json")
    return record
