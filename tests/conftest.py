"""Shared fixtures: compose the *real* configs (pixel_spotter.training.compose), small and offline."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from pixel_spotter.training.compose import CONF, compose

ROOT = Path(__file__).resolve().parents[1]
# Small, fast settings every test run starts from (16x16 = 256 positions, one epoch, CPU).
TINY = ["data.height=16", "data.width=16", "trainer.max_epochs=1", "trainer.accelerator=cpu",
        "callbacks.progress_bar.refresh_rate=0"]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture
def one_thread():
    """One torch thread for the test, restored after. The spot physics runs small batches: intra-op threads only
    add overhead, and on a shared 2-core machine they made the ML-fit tests 20x slower (threads waiting on each
    other). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SPOT_ONLY_MODELS = {"spot_fit"}  # models that fit photon counts: they need data=spot (their own check says so)


def model_overrides(model: str) -> list[str]:
    """``model=<model>`` plus what that model needs to be valid (data=spot for the photon-count models)."""
    return [f"model={model}", *(["data=spot"] if model in SPOT_ONLY_MODELS else [])]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    """No test touches the network or the user's torch hub cache: downloads fail as they do offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", no_network)


@pytest.fixture
def make_cfg(tmp_path):
    """make_cfg(*overrides) -> composed config writing into tmp_path, with HydraConfig set like a real run."""

    def _make(*overrides: str, tiny: bool = True):
        return compose(*(TINY if tiny else []), *overrides, output_dir=tmp_path, hydra_config=True)

    return _make


def train_heatmap_run(run_dir: Path, size: int, epochs: int) -> Path:
    """A real, finished heatmap run of ``size``x``size`` images in ``run_dir``, trained by ``train.py`` in a
    subprocess (for tests of what reads run folders: predict, export)."""
    subprocess.run([sys.executable, "train.py", "model=heatmap", f"data.height={size}", f"data.width={size}",
                    f"trainer.max_epochs={epochs}", "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0",
                    f"hydra.run.dir={run_dir}"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    return run_dir
