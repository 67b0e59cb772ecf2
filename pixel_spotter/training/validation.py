"""Checks on the composed config, run before any data or model is built.

Each failure is one ConfigError sentence naming the key, the bad value and a fix. Unknown group
options (``model=foo``) never get here: Hydra itself answers them with the list of choices. The
networks' own hyper-parameters (``model.net.*``) are checked by their constructors, in the same style.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from hydra.utils import get_class
from lightning.pytorch.accelerators import AcceleratorRegistry
from omegaconf import DictConfig, ListConfig

from pixel_spotter import tasks
from pixel_spotter.checks import is_int, is_number, require, require_int
from pixel_spotter.data.augment import augment_from_config
from pixel_spotter.data.splits import QUADRANTS, SPLITS, split_sizes
from pixel_spotter.errors import ConfigError
from pixel_spotter.evaluation.metric_names import FRAME_METRIC_NAMES, HIGHER_IS_BETTER, LOSS, METRIC_NAMES
from pixel_spotter.models.regressor import LOSSES, PIXEL_LOSSES
from pixel_spotter.models.resnet import WEIGHT_CHOICES
from pixel_spotter.sweeps.search import check_metric

MAX_SEED = 2**32 - 1  # numpy's seed range, which seed_everything also uses
MAX_PIXELS = 2**26  # positions of one image (8192 x 8192): their int64 index is 1 GiB
MAX_BATCH_PIXELS = 2**27  # pixels rendered in one batch (512 MiB of float32 input; e.g. 512 images of 512x512)


def resume_flag(cfg: DictConfig) -> bool:
    """``resume`` (default false), checked: it is read before the run folder is claimed, so before validate()."""
    resume = cfg.get("resume", False)
    require(isinstance(resume, bool), f"resume must be true or false, got {resume!r}; e.g. resume=true")
    return resume


def validate(cfg: DictConfig) -> None:
    seed = cfg.get("seed")
    require(is_int(seed) and 0 <= seed <= MAX_SEED,
            f"seed must be an integer >= 0 (at most 2**32-1), got {seed!r}; e.g. seed=0")
    resume_flag(cfg)
    _validate_run_settings(cfg)
    _validate_model(cfg.model)
    _validate_data(cfg.data, cfg.model)
    _validate_optimizer(cfg.get("optimizer") or {}, cfg.get("scheduler") or {})
    _validate_trainer(cfg.trainer)
    _validate_callbacks(cfg)


def _validate_run_settings(cfg: DictConfig) -> None:
    metric = cfg.get("optimized_metric", "val/euclid_px")
    check_metric(metric)
    logged = _logged_monitors(cfg.model)
    require(metric in logged, f"optimized_metric={metric} is not a validation metric this model logs; choose one "
                              f"of {', '.join(logged)}")
    threads = cfg.get("threads_per_job")
    if threads is not None:
        require_int("threads_per_job", threads, 1, 1)
    _validate_share(cfg.get("share") or {}, cfg.trainer.get("max_epochs"))


def _validate_share(share, max_epochs) -> None:
    """share.*: epochs is the user's switch; the other two are set per job by the grid sweeper (shared_prefix.py)."""
    require(isinstance(share.get("epochs", True), bool),
            f"share.epochs must be true or false, got {share.get('epochs')!r}; e.g. share.epochs=false")
    epochs = share.get("snapshot_epochs") or []
    require(isinstance(epochs, (list, ListConfig)) and all(is_int(e) and 0 < e < (max_epochs or 0) for e in epochs),
            f"share.snapshot_epochs must list epoch counts below trainer.max_epochs, got {epochs!r}; the sweep sets "
            "it: leave it out")
    source = share.get("from_job")
    require(source is None or (is_int(source) and source >= 0),
            f"share.from_job must be a job number, got {source!r}; the sweep sets it: leave it out")


def _module_class(model: DictConfig):
    try:
        return get_class(model._target_)
    except Exception:  # an unknown module is reported when it is built, in its own words
        return None


def frame_model(model: DictConfig) -> bool:
    """Whether ``model`` is a frame model (it answers a set per image: models/frame_localizer.py)."""
    return bool(getattr(_module_class(model), "frames", False))


def _validate_model(model: DictConfig) -> None:
    lr = model.get("lr")
    require(is_number(lr) and lr > 0, f"model.lr must be a number > 0, got {lr!r}; e.g. model.lr=1e-3")
    if frame_model(model):
        from pixel_spotter.models.frame_checks import check_frame_model

        check_frame_model(model)
        return
    loss = model.get("loss", "mse")
    require(isinstance(loss, str) and loss in (*LOSSES, *PIXEL_LOSSES),
            f"model.loss={loss!r} is unknown; choose one of {', '.join((*LOSSES, *PIXEL_LOSSES))}")
    try:
        net_class = get_class(model.net._target_)
    except Exception:  # an unknown network is reported when it is built, in its own words
        net_class = None
    if loss in PIXEL_LOSSES:
        require(net_class is not None and hasattr(net_class, "score_map"),
                f"model.loss={loss} trains a per-pixel score map, which {model.net.get('_target_')} does not have; "
                "use a heatmap model (e.g. model=heatmap_ce) or model.loss=mse")
    elif model.net.get("readout") == "argmax":
        raise ConfigError(f"model.net.readout=argmax has no gradient for model.loss={loss}; "
                          "use model.loss=cross_entropy (e.g. model=heatmap_ce) or model.net.readout=soft_argmax")
    elif getattr(net_class, "readout_name", None) == "argmax":  # a network that has no other readout
        raise ConfigError(f"{model.net._target_} is read out by its argmax, which has no gradient for "
                          f"model.loss={loss}; use model.loss=cross_entropy")

    weights = model.net.get("weights")
    if weights is not None and str(weights) not in WEIGHT_CHOICES:
        path = Path(str(weights)).expanduser()
        require(path.is_file() and os.access(path, os.R_OK),
                f"model.net.weights={weights!r} is neither one of {', '.join(WEIGHT_CHOICES)} nor a readable file; "
                "fix the path or use model.net.weights=none")


def _validate_data(data: DictConfig, model: DictConfig) -> None:
    for key in ("height", "width"):
        require_int(f"data.{key}", data.get(key), 2, 50)
    net_cls = get_class(model.net._target_)
    min_size = getattr(net_cls, "min_input_size", 1)
    require(min(data.height, data.width) >= min_size,
            f"a {data.height}x{data.width} image is too small for {net_cls.__name__}, which needs at least "
            f"{min_size}x{min_size}; raise data.height/data.width or pick another model")

    require(data.split in SPLITS, f"data.split={data.split!r} is unknown; choose one of {', '.join(SPLITS)}")
    require(data.heldout_quadrant in QUADRANTS,
            f"data.heldout_quadrant={data.heldout_quadrant!r} is unknown; choose one of {', '.join(QUADRANTS)}")
    fractions = data.get("fractions")
    fractions = list(fractions) if isinstance(fractions, (ListConfig, list, tuple)) else fractions
    require(isinstance(fractions, list) and len(fractions) == 3 and all(is_number(f) and f > 0 for f in fractions),
            f"data.fractions must be three numbers > 0 (train, val, test), got {fractions}; "
            "e.g. data.fractions=[0.7,0.15,0.15]")
    require(abs(sum(fractions) - 1) < 1e-6,
            f"data.fractions must sum to 1, got {fractions} (sum {sum(fractions):g}); "
            "e.g. data.fractions=[0.7,0.15,0.15]")
    require_int("data.random_train_size", data.get("random_train_size"), 1, 2500)
    for key, minimum, example in (("batch_size", 1, 64), ("eval_batch_size", 1, 1024), ("num_workers", 0, 0)):
        require_int(f"data.{key}", data.get(key), minimum, example)
    data_seed = data.get("seed")
    require(is_int(data_seed) and 0 <= data_seed <= MAX_SEED,
            f"data.seed must be an integer >= 0 (at most 2**32-1), got {data_seed!r}; e.g. data.seed=0 "
            "(or leave it at ${seed})")
    for key in ("train_samples_per_epoch", "max_eval_images"):
        value = data.get(key)
        require(value is None or (is_int(value) and value >= 1),
                f"data.{key} must be an integer >= 1 or null, got {value!r}; e.g. data.{key}=1000")
    task = tasks.get(tasks.name_of(data))
    if task.frames != frame_model(model):
        raise ConfigError(
            f"data={task.name} has {'a set of' if task.frames else 'one'} answer{'s' if task.frames else ''} per "
            f"image, but {model.get('_target_')} answers {'one (x, y)' if task.frames else 'a set'}; "
            + ("use a frame model (model=frame_heatmap for data=pixels, model=frame_emitters for data=emitters)"
               if task.frames else "use a one-answer model (e.g. model=cnn) or a frame task (data=pixels)"))
    task.check_config(data, model)  # the task's own settings (data.augment, data.spot, ...)
    augment = augment_from_config(data.get("augment"))
    require("augment" in task.settings or augment is None or augment.identity,
            f"the {task.name} task renders its own images and noise; the corruptions of augment= do not apply to "
            "it: use augment=none")
    huber = model.get("huber_bounds")
    require(huber is None or (is_number(huber) and huber > 0),
            f"model.huber_bounds must be a number > 0 (bound standard deviations) or null, got {huber!r}; "
            "e.g. model.huber_bounds=3")
    require(huber is None or (task.weights_images(data) and model.get("loss", "mse") == "mse"),
            "model.huber_bounds measures errors in units of the Cramér–Rao bound: it needs data=spot with "
            "data.loss_weight=crlb and model.loss=mse; or set model.huber_bounds=null")
    require(not model.net.get("refine") or task.counts,
            f"model.net.refine fits a spot's photon counts, which only data=spot has (the {task.name} task's images "
            "are not counts): use data=spot, or model.net.refine=0 (model=spot_patch)")

    _validate_sizes(data, fractions)


def _validate_sizes(data: DictConfig, fractions: list) -> None:
    """What the image size asks of memory, and that every split of the image holds at least one position."""
    height, width, split = data.height, data.width, data.split
    # Nothing is materialized, but the positions are (H*W x 2 int64) and one batch is rendered whole.
    require(height * width <= MAX_PIXELS,
            f"data.height={height} data.width={width} has {height * width:,} positions, above the limit of "
            f"{MAX_PIXELS:,} (8192x8192; their index alone would take over 1 GiB); use a smaller image")
    for key in ("batch_size", "eval_batch_size"):
        pixels = data[key] * height * width
        most = max(1, MAX_BATCH_PIXELS // (height * width))
        require(pixels <= MAX_BATCH_PIXELS,
                f"data.{key}={data[key]} renders {data[key]} images of {height}x{width} at once "
                f"({pixels * 4 / 2**30:.1f} GiB before the network's activations); use data.{key}={most} or less")
    sizes = split_sizes(height, width, split, fractions, data.heldout_quadrant, data.random_train_size,
                        data.get("max_eval_images"))
    empty = [name for name, size in sizes.items() if size < 1]
    if empty:
        which = " and ".join(empty)
        counts = ", ".join(f"{name} {size}" for name, size in sizes.items())
        raise ConfigError(
            f"data.split={split} on a {height}x{width} image with data.fractions={fractions} leaves the {which} "
            f"split{'s' if len(empty) > 1 else ''} empty ({counts}); raise the {which} share of data.fractions "
            "or use a larger image (data.height/data.width)")


def _validate_optimizer(optimizer: DictConfig, scheduler: DictConfig) -> None:
    if "weight_decay" in optimizer:
        wd = optimizer.weight_decay
        require(is_number(wd) and wd >= 0,
                f"optimizer.weight_decay must be a number >= 0, got {wd!r}; e.g. optimizer.weight_decay=0")
    if "factor" in scheduler:
        factor = scheduler.factor
        require(is_number(factor) and 0 < factor < 1,
                f"scheduler.factor must be a number between 0 and 1 (exclusive), got {factor!r}; "
                "e.g. scheduler.factor=0.5")
    if "patience" in scheduler:
        require_int("scheduler.patience", scheduler.patience, 0, 5)
    if "mode" in scheduler:
        require(scheduler.mode == "min",
                f"scheduler.mode must be min (the scheduler watches val/loss, where lower is better), "
                f"got {scheduler.mode!r}; use scheduler.mode=min")


def _validate_trainer(trainer: DictConfig) -> None:
    fast_dev_run = trainer.get("fast_dev_run", False)
    require(isinstance(fast_dev_run, bool) or (is_int(fast_dev_run) and fast_dev_run >= 0),
            f"trainer.fast_dev_run must be true, false or a number of batches >= 0, got {fast_dev_run!r}; "
            "e.g. trainer.fast_dev_run=true")
    if not fast_dev_run:
        require_int("trainer.max_epochs", trainer.get("max_epochs"), 1, 16)

    accelerator = trainer.get("accelerator", "auto")
    known = sorted({"auto", "gpu", *AcceleratorRegistry.keys()})
    require(isinstance(accelerator, str) and accelerator in known,
            f"trainer.accelerator={accelerator!r} is unknown; choose one of {', '.join(known)}")
    if accelerator in ("gpu", "cuda"):
        require(torch.cuda.is_available(),
                f"trainer.accelerator={accelerator} but no CUDA GPU is visible; use trainer.accelerator=cpu or auto")
    elif accelerator == "mps":
        require(torch.backends.mps.is_available(),
                "trainer.accelerator=mps but no Apple MPS device is available; use trainer.accelerator=cpu or auto")
    elif accelerator not in ("auto", "cpu"):
        require(AcceleratorRegistry[accelerator]["accelerator"].is_available(),
                f"trainer.accelerator={accelerator} but no such device is available; "
                "use trainer.accelerator=cpu or auto")

    devices = trainer.get("devices", "auto")
    require(devices == "auto" or (is_int(devices) and devices >= 1),
            f"trainer.devices must be an integer >= 1 or auto, got {devices!r}; e.g. trainer.devices=1")
    if accelerator in ("gpu", "cuda") and devices != "auto":
        visible = torch.cuda.device_count()
        require(devices <= visible,
                f"trainer.devices={devices} but only {visible} CUDA GPU{'s' if visible != 1 else ''} "
                f"{'are' if visible != 1 else 'is'} visible; use trainer.devices={visible} or auto")
    if "log_every_n_steps" in trainer:
        require_int("trainer.log_every_n_steps", trainer.log_every_n_steps, 1, 10)


def _logged_monitors(model: DictConfig) -> tuple[str, ...]:
    """The validation metrics a model logs: a frame model's localization scores, or the pixel metrics."""
    names = FRAME_METRIC_NAMES if frame_model(model) else METRIC_NAMES
    return (f"val/{LOSS}", *(f"val/{n}" for n in names))


def _validate_callbacks(cfg: DictConfig) -> None:
    callbacks = cfg.get("callbacks") or {}
    loggers = cfg.get("logger") or {}  # named loggers (conf/logger); one set to null is none
    if not any(loggers.values() if isinstance(loggers, DictConfig) else [loggers]) and callbacks.get("lr_monitor"):
        raise ConfigError("callbacks.lr_monitor needs a logger; keep the logger, or drop both with "
                          "~logger ~callbacks.lr_monitor")
    for name in ("model_checkpoint", "early_stopping"):
        callback = callbacks.get(name)
        if not callback:
            continue
        monitor, mode = callback.get("monitor"), callback.get("mode", "min")
        logged = _logged_monitors(cfg.model)
        require(isinstance(monitor, str) and monitor in logged,
                f"callbacks.{name}.monitor={monitor!r} is not a validation metric this model logs; "
                f"choose one of {', '.join(logged)}")
        require(mode in ("min", "max"), f"callbacks.{name}.mode must be min or max, got {mode!r}; "
                                         f"e.g. callbacks.{name}.mode=min")
        better = "max" if monitor.removeprefix("val/") in HIGHER_IS_BETTER else "min"
        require(mode == better,
                f"callbacks.{name}.mode={mode} is the wrong direction for {monitor}, where "
                f"{'higher' if better == 'max' else 'lower'} is better; use callbacks.{name}.mode={better}")
