"""YAML from a run or sweep folder is untrusted: read it with limits, so a planted file cannot stall a command.

A few hundred bytes of YAML aliases (a "billion laughs" file) expand into gigabytes once loaded, and a huge file
takes as long to parse. Every config pixel-spotter writes is a few kB without a single alias; a file beyond
``MAX_BYTES`` or with more than ``MAX_ALIASES`` aliases is refused in one line before it is loaded.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from pixel_spotter.errors import UserError

MAX_BYTES = 2_000_000  # ours: 3-10 kB
MAX_ALIASES = 50  # ours: none; a hand-edited file may use a few anchors


def load_yaml(path: Path):
    """``OmegaConf.load(path)`` (plain YAML, no code runs), after the size and alias limits above."""
    import yaml

    path = Path(path)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise UserError(f"{path} is {size:,} bytes, more than any config pixel-spotter writes ({MAX_BYTES:,}); "
                        "it was not read (a planted file?): retrain, or restore the file")
    text = path.read_text(encoding="utf-8", errors="replace")
    aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        aliases += isinstance(event, yaml.AliasEvent)
        if aliases > MAX_ALIASES:
            raise UserError(f"{path} holds more than {MAX_ALIASES} YAML aliases, which a config pixel-spotter "
                            "writes never has; it was not loaded (a planted file?): retrain, or restore the file")
    return OmegaConf.load(path)
