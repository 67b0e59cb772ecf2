"""pixel-spotter: Lightning + Hydra experiments for single-pixel coordinate regression."""

# Registers the config resolvers, so every way of composing conf/ (train.py, tests, bench) has them:
# run_folder.* (conf/hydra, callbacks, logger) and search.direction (conf/hparams_search/optuna.yaml).
from pixel_spotter import run_folder, search  # noqa: F401

__version__ = "0.1.0"
