"""Bad config values fail before any data or model is built, with one sentence naming key and fix."""

import subprocess
import sys

import pytest
from conftest import ROOT

from pixel_spotter.config import validate
from pixel_spotter.errors import ConfigError


@pytest.mark.parametrize(
    "override, words",
    [
        ("model.lr=0", "model.lr"),
        ("model.lr=-0.001", "model.lr"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("data.fractions=[0.7,0.2,0.2]", "sum to 1"),
        ("data.fractions=[0.9,0.1]", "three numbers"),
        ("data.split=diagonal", "data.split"),
        ("data.heldout_quadrant=middle", "data.heldout_quadrant"),
        ("data.height=4", "too small"),
        ("data.batch_size=0", "data.batch_size"),
        ("model=resnet18 model.net.weights=/no/such/weights.pth", "model.net.weights"),
        ("~logger", "lr_monitor"),
    ],
)
def test_bad_values_are_named(make_cfg, override, words):
    cfg = make_cfg(*override.split())
    with pytest.raises(ConfigError, match=words) as err:
        validate(cfg)
    assert "\n" not in str(err.value)


def test_the_tiny_defaults_are_valid(make_cfg):
    validate(make_cfg())


def _train(*args):
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_cli_bad_value_is_one_line_no_traceback(tmp_path):
    proc = _train("model.lr=-1", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: model.lr must be a number > 0")
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def test_cli_unknown_model_lists_the_choices(tmp_path):
    proc = _train("model=nosuchnet", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert "Available options in 'model'" in proc.stderr and "resnet18" in proc.stderr


@pytest.mark.parametrize("overrides, words", [
    # a constructor's own error (Hydra wraps it in InstantiationException) must still be one line
    (["model=resnet18", "model.net.weights=imagenet"], "error: ImageNet ResNet18 weights could not be loaded"),
    (["model=coordconv", "model.net.separable=true", "model.net.channels=7"], "error: model.net.channels=7"),
])
def test_constructor_errors_are_one_line(make_cfg, overrides, words):
    from pixel_spotter.train import main

    with pytest.raises(SystemExit) as exit_:
        main(make_cfg(*overrides))
    message = str(exit_.value.code)
    assert message.startswith(words) and "\n" not in message and "InstantiationException" not in message
