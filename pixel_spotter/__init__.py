"""pixel-spotter: Lightning + Hydra experiments for single-pixel coordinate regression."""

__version__ = "0.1.0"
