"""Sweeps: Hydra launchers, the end-of-sweep summary and hyper-parameter search."""
