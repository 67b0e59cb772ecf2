"""Checks on the composed config, run before any data or model is built.

Each failure is one ConfigError sentence naming the key, the bad value and a fix. Unknown group
options (``model=foo``) never get here: Hydra itself answers them with the list of choices.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig

from pixel_spotter.data import QUADRANTS, SPLITS
from pixel_spotter.errors import ConfigError
from pixel_spotter.models.resnet import WEIGHT_CHOICES


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate(cfg: DictConfig) -> None:
    data, model, trainer = cfg.data, cfg.model, cfg.trainer

    lr = model.get("lr")
    _require(_is_number(lr) and lr > 0, f"model.lr must be a number > 0, got {lr!r}; e.g. model.lr=1e-3")

    epochs = trainer.get("max_epochs")
    if not trainer.get("fast_dev_run"):
        _require(isinstance(epochs, int) and epochs >= 1,
                 f"trainer.max_epochs must be an integer >= 1, got {epochs!r}; e.g. trainer.max_epochs=16")

    for key in ("height", "width"):
        value = data.get(key)
        _require(isinstance(value, int) and value >= 2, f"data.{key} must be an integer >= 2, got {value!r}")
    net_cls = get_class(model.net._target_)
    min_size = getattr(net_cls, "min_input_size", 1)
    _require(min(data.height, data.width) >= min_size,
             f"a {data.height}x{data.width} image is too small for {net_cls.__name__}, which needs at least "
             f"{min_size}x{min_size}; raise data.height/data.width or pick another model")

    _require(data.split in SPLITS, f"data.split={data.split!r} is unknown; choose one of {', '.join(SPLITS)}")
    _require(data.heldout_quadrant in QUADRANTS,
             f"data.heldout_quadrant={data.heldout_quadrant!r} is unknown; choose one of {', '.join(QUADRANTS)}")
    fractions = list(data.fractions)
    _require(len(fractions) == 3 and all(_is_number(f) and f > 0 for f in fractions),
             f"data.fractions must be three numbers > 0 (train, val, test), got {fractions}")
    _require(abs(sum(fractions) - 1) < 1e-6,
             f"data.fractions must sum to 1, got {fractions} (sum {sum(fractions):g}); "
             "e.g. data.fractions=[0.7,0.15,0.15]")
    if data.split == "position":
        n = data.height * data.width
        _require(min(round(f * n) for f in fractions) >= 1,
                 f"data.fractions={fractions} leave an empty split of the {n} positions; use a larger image")
    for key in ("batch_size", "eval_batch_size"):
        _require(isinstance(data.get(key), int) and data.get(key) >= 1,
                 f"data.{key} must be an integer >= 1, got {data.get(key)!r}")

    if not cfg.get("logger") and (cfg.get("callbacks") or {}).get("lr_monitor"):
        raise ConfigError("callbacks.lr_monitor needs a logger; keep the logger, or drop both with "
                          "~logger ~callbacks.lr_monitor")

    weights = model.net.get("weights")
    if weights is not None and str(weights) not in WEIGHT_CHOICES:
        path = Path(str(weights)).expanduser()
        _require(path.is_file() and os.access(path, os.R_OK),
                 f"model.net.weights={weights!r} is neither one of {', '.join(WEIGHT_CHOICES)} nor a readable file; "
                 "fix the path or use model.net.weights=none")
