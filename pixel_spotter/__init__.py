"""pixel-spotter: Lightning + Hydra experiments for learned localization (one bright pixel, a sub-pixel spot)."""

# Registers the config resolvers, so every way of composing conf/ (train.py, tests, bench) has them:
# run_folder.* (conf/hydra, callbacks, logger), search.direction (conf/hparams_search/optuna.yaml) and
# launchers.gpus (conf/hydra/launcher).
from pixel_spotter import run_folder  # noqa: F401
from pixel_spotter.sweeps import launchers, search  # noqa: F401

__version__ = "0.1.0"
