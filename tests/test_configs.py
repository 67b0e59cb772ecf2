"""Every option of every config group composes, and its objects instantiate."""

import pytest
import torch
from conftest import group_options
from hydra.utils import instantiate

from pixel_spotter.config import validate
from pixel_spotter.train import build


@pytest.mark.parametrize("model", group_options("model"))
def test_every_model_builds_and_predicts_normalized_xy(make_cfg, model):
    cfg = make_cfg(f"model={model}")
    validate(cfg)
    module = instantiate(cfg.model, height=16, width=16)
    out = module(torch.zeros(3, 1, 16, 16))
    assert out.shape == (3, 2)


@pytest.mark.parametrize("group", ["optimizer", "scheduler", "trainer", "callbacks", "logger", "data"])
def test_every_group_option_composes_and_builds(make_cfg, group):
    for option in group_options(group):
        cfg = make_cfg(f"{group}={option}")
        validate(cfg)
        datamodule, model, trainer = build(cfg)
        assert model.configure_optimizers() is not None
        assert trainer.max_epochs == 1


@pytest.mark.parametrize("option", group_options("experiment") + group_options("debug"))
def test_named_experiments_and_debug_presets_compose(make_cfg, option):
    group = "experiment" if option in group_options("experiment") else "debug"
    cfg = make_cfg(f"{group}={option}")
    validate(cfg)


def test_seed_grid_experiment_is_the_seeds_grid(make_cfg):
    params = make_cfg("experiment=seed_grid").hydra.sweeper.params
    assert set(params["model"].split(",")) == {"cnn", "resnet18"}
    assert {float(v) for v in params["model.lr"].split(",")} == {1e-4, 1e-3}
    assert {int(v) for v in params["trainer.max_epochs"].split(",")} == {16, 32, 64}


def test_separable_coordconv_reads_x_from_x_alone():
    from pixel_spotter.models.coordconv import CoordConvRegressor

    def votes_with_other_y(net, y_channel):
        """Per-pixel (x-vote, y-vote) maps for the real input and for one with the y channel scrambled."""
        inputs = net.features[0](torch.rand(2, 1, 12, 12))
        scrambled = inputs.clone()
        scrambled[:, y_channel] = torch.rand_like(scrambled[:, y_channel])
        return net.features[1:](inputs), net.features[1:](scrambled)

    torch.manual_seed(0)
    real, other = votes_with_other_y(CoordConvRegressor(channels=8, separable=True), y_channel=3)
    assert torch.equal(real[:, 0], other[:, 0])  # the x-vote never sees y
    assert not torch.equal(real[:, 1], other[:, 1])  # the y-vote does
    real, other = votes_with_other_y(CoordConvRegressor(channels=8), y_channel=2)
    assert not torch.equal(real[:, 0], other[:, 0])  # the paper's layout mixes them
