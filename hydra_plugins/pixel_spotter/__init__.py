"""Hydra plugins of pixel-spotter (Hydra discovers plugins only under hydra_plugins); see launchers.py."""
