"""The project's config composed outside ``@hydra.main`` (tests, benchmarks): the one place that does it.

``train.py`` composes through ``@hydra.main``; everything else calls ``compose(*overrides, output_dir=...)``,
which takes the same override grammar as the command line (``model=heatmap``, ``~logger``, ...).
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

# conf/ sits at the repository root next to train.py, not inside the package.
CONF = Path(__file__).resolve().parents[2] / "conf"


def compose(*overrides: str, output_dir: str | Path, hydra_config: bool = False) -> DictConfig:
    """conf/config.yaml with ``overrides`` applied, writing into ``output_dir`` (which a real run takes from
    Hydra's runtime). ``hydra_config=True``: the result also holds ``cfg.hydra`` and HydraConfig is set from it,
    as inside a real run, for code that reads ``HydraConfig.get()``."""
    GlobalHydra.instance().clear()  # another initialize (an earlier compose, a test) must not leak in
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
            cfg = hydra_compose("config", overrides=[f"output_dir={output_dir}", *overrides],
                                return_hydra_config=hydra_config)
    finally:
        GlobalHydra.instance().clear()
    if hydra_config:
        HydraConfig.instance().set_config(cfg)
    return cfg
