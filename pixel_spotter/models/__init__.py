"""Networks: each maps images (N, 1, H, W) in [0, 1] to normalized (x, y) in [0, 1], shape (N, 2).

A network may set two class/instance attributes that the rest of the project reads:
- ``min_input_size``: the smallest H and W it can take (checked before any training);
- ``weights_used``: where its initial weights came from (recorded in results.json).

Constructors check their own hyper-parameters with the helpers below: a nonsense value is one
ConfigError line naming ``model.net.<key>`` as the user writes it (``build()`` unwraps it from Hydra's).
"""

from __future__ import annotations

from pixel_spotter.errors import ConfigError


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require_int(key: str, value, example, minimum: int = 1, odd: bool = False, maximum: int | None = None) -> None:
    """Raise one ConfigError line unless ``value`` (the user's ``model.net.<key>``) is an int >= minimum (odd),
    and <= maximum when given (a run folder's config is untrusted: a huge value must not hang or exhaust memory)."""
    if not (_is_int(value) and value >= minimum and (value % 2 == 1 or not odd)
            and (maximum is None or value <= maximum)):
        kind = "an odd integer" if odd else "an integer"
        limits = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ConfigError(f"model.net.{key} must be {kind} {limits}, got {value!r}; e.g. model.net.{key}={example}")


def require_bool(key: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"model.net.{key} must be true or false, got {value!r}; e.g. model.net.{key}=false")


def require_channel_list(channels) -> list:
    """``model.net.channels`` as a non-empty list of integers >= 1, or one ConfigError line."""
    from omegaconf import ListConfig

    shown = list(channels) if isinstance(channels, (ListConfig, list, tuple)) else channels
    if not (isinstance(channels, (ListConfig, list, tuple)) and len(channels) >= 1
            and all(_is_int(c) and c >= 1 for c in channels)):
        raise ConfigError(f"model.net.channels must be a non-empty list of integers >= 1, got {shown!r}; "
                          "e.g. model.net.channels=[32,64,128]")
    return shown


def require_dropout(dropout) -> None:
    if not (isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and 0 <= dropout < 1):
        raise ConfigError(f"model.net.dropout must be a number in [0, 1), got {dropout!r}; e.g. model.net.dropout=0.3")
