"""The task interface (pixel_spotter.tasks): the registry, each task's own contract, and the commands that
refuse a task they do not apply to."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT

from pixel_spotter import cli, tasks
from pixel_spotter.data.datamodule import PixelDataModule
from pixel_spotter.errors import ConfigError, UserError
from pixel_spotter.serving.exported import contract_task
from pixel_spotter.tasks.base import Task
from pixel_spotter.training.validation import validate

LEGACY = ROOT / "tests" / "fixtures" / "legacy_runs"


def test_the_registry_is_the_task_packages():
    assert tasks.names() == ["emitters", "pixel", "pixels", "spot"]
    assert all(issubclass(tasks.get(name), Task) and tasks.get(name).name == name for name in tasks.names())
    with pytest.raises(ConfigError, match="data.task='movies' is not a task; choose one of emitters, pixel, pixels, "
                                          "spot"):
        tasks.get("movies")
    with pytest.raises(ConfigError, match="is not a task"):
        tasks.get("os.path")  # an untrusted name never becomes an import


def test_configs_name_their_task_and_older_ones_are_inferred(make_cfg):
    assert make_cfg().data.task == "pixel" and make_cfg("data=spot").data.task == "spot"
    assert tasks.name_of({"spot": {"photons": 1}}) == "spot" and tasks.name_of({"augment": None}) == "pixel"
    with pytest.raises(ConfigError, match="data.task='nope' is not a task"):
        validate(make_cfg("data.task=nope"))


def test_a_setting_of_another_task_is_one_line():
    with pytest.raises(ConfigError, match="data.eval_photons is not a setting of the pixel task"):
        PixelDataModule(height=8, width=8, task="pixel", eval_photons=[100])


@pytest.mark.parametrize("name", ["pixel", "spot"])
def test_each_task_renders_images_and_targets_the_datamodule_hands_on(name):
    dm = PixelDataModule(height=8, width=8, task=name, batch_size=4)
    images, target, *_ = next(dm.batches("test"))
    assert images.shape == (len(dm.positions["test"]), 1, 8, 8) and images.dtype == torch.float32
    assert torch.isfinite(images).all() and target.shape == (len(images), 2)
    truth_px = dm.positions["test"].float()
    assert (target * 7 - truth_px).abs().max() <= 0.5 + 1e-6  # within half a pixel of the split's pixel


@pytest.mark.parametrize("name", ["pixel", "spot"])
def test_each_task_reads_back_its_own_export_contract(name):
    task = tasks.get(name)(8, 8)
    probes, described = task.probe_images(limit=10)
    assert probes.shape == (10, 1, 8, 8) and probes.dtype == np.float32 and "8x8" in described
    contract = {"height": 8, "width": 8, "task": name, **task.contract()}
    assert type(contract_task(contract, Path("m.json"))) is type(task)


def test_an_edited_contract_task_is_refused():
    spot = {"height": 8, "width": 8, "task": "spot", **tasks.get("spot")(8, 8).contract()}
    with pytest.raises(UserError, match="says task 'pixel' but holds another task's input fields"):
        contract_task({**spot, "task": "pixel"}, Path("m.json"))  # counts read as [0, 1] images: wrong answers
    with pytest.raises(UserError, match="input_scale must be a finite number > 0"):
        contract_task({**spot, "input_scale": -1.0}, Path("m.json"))
    with pytest.raises(UserError, match="names the task '../../evil', which is none of .*pixel.*spot"):
        contract_task({**spot, "task": "../../evil"}, Path("m.json"))


def test_robustness_refuses_a_spot_run_in_one_line(tmp_path, capsys):
    run = shutil.copytree(LEGACY / "spot_12", tmp_path / "spot_12")
    assert cli.main(["robustness", str(run), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "spot-task run" in err and "pass pixel-task runs only" in err
    assert not (tmp_path / "robustness.csv").exists()
