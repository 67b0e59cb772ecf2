"""pixel-spotter: Lightning + Hydra experiments for single-pixel coordinate regression."""

# Registers the config resolvers, so every way of composing conf/ (train.py, tests, bench) has them:
# run_folder.* (conf/hydra, callbacks, logger), search.direction (conf/hparams_search/optuna.yaml) and
# launchers.gpus (conf/hydra/launcher).
from pixel_spotter import launchers, run_folder, search  # noqa: F401

__version__ = "0.1.0"
