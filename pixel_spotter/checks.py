"""The small predicates every config check uses (training/validation.py and each task's own checks): a failed
check is one ConfigError sentence naming the key, the bad value and a fix."""

from __future__ import annotations

import math

from pixel_spotter.errors import ConfigError


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require_int(key: str, value, minimum: int, example) -> None:
    require(is_int(value) and value >= minimum,
            f"{key} must be an integer >= {minimum}, got {value!r}; e.g. {key}={example}")


def plain(value):
    """A config value as plain Python (ListConfig -> list), for dataclass constructors."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(value) if OmegaConf.is_config(value) else value
