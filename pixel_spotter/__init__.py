"""pixel-spotter: Lightning + Hydra experiments for single-pixel coordinate regression."""

# Registers the run_folder.* config resolvers, so every way of composing conf/ (train.py, tests, bench) has them.
from pixel_spotter import run_folder  # noqa: F401

__version__ = "0.1.0"
