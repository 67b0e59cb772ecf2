"""Every option of every config group composes, and its objects instantiate."""

import subprocess
import sys

import pytest
import torch
from conftest import CONF, FRAME_MODELS, FRAME_TASK_MODELS, ROOT, TINY, group_options, model_overrides
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pixel_spotter.training.run import build
from pixel_spotter.training.validation import validate


@pytest.mark.parametrize("model", group_options("model"))
def test_every_model_builds_and_predicts_normalized_xy(make_cfg, model):
    cfg = make_cfg(*model_overrides(model))
    validate(cfg)
    module = instantiate(cfg.model, height=16, width=16)
    out = module(torch.zeros(3, 1, 16, 16))
    # a frame model answers its maps at every pixel, the others one (x, y)
    assert out.shape == ((3, module.net.outputs, 16, 16) if model in FRAME_MODELS else (3, 2))


@pytest.mark.parametrize("group", ["optimizer", "scheduler", "trainer", "callbacks", "logger", "data"])
def test_every_group_option_composes_and_builds(make_cfg, group):
    for option in group_options(group):
        frame_model = [FRAME_TASK_MODELS[option]] if group == "data" and option in FRAME_TASK_MODELS else []
        cfg = make_cfg(f"{group}={option}", *frame_model)
        validate(cfg)
        datamodule, model, trainer = build(cfg)
        assert model.configure_optimizers() is not None
        assert trainer.max_epochs == 1


@pytest.mark.parametrize("option", group_options("experiment") + group_options("debug"))
def test_named_experiments_and_debug_presets_compose(make_cfg, option):
    group = "experiment" if option in group_options("experiment") else "debug"
    cfg = make_cfg(f"{group}={option}")
    validate(cfg)


def _sweep_jobs(params) -> list[list[str]]:
    """Each job's overrides for a ``hydra.sweeper.params`` mapping, expanded as Hydra's basic sweeper does."""
    overrides = OverridesParser.create().parse_overrides([f"{key}={value}" for key, value in params.items()])
    return BasicSweeper.split_arguments(overrides, None)[0]


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_composes_and_a_sweep_runs_as_one_without_m(make_cfg, experiment):
    cfg = make_cfg(f"experiment={experiment}", tiny=False)
    validate(cfg)
    params = cfg.hydra.sweeper.params or {}
    if not params:
        return  # a named setting, not a sweep: runs once
    # without this `python train.py experiment=<sweep>` (no -m) silently trains the defaults once
    assert cfg.hydra.mode == RunMode.MULTIRUN, f"conf/experiment/{experiment}.yaml: set hydra.mode: MULTIRUN"
    jobs = _sweep_jobs(params)
    assert len(jobs) > 1
    missing = object()
    for job in jobs:  # every job composes, and each swept key is a config group or a key of the job's config
        job_cfg = make_cfg(f"experiment={experiment}", *job, tiny=False)
        validate(job_cfg)
        for key in params:
            assert (CONF / key).is_dir() or OmegaConf.select(job_cfg, key, default=missing) is not missing, (
                f"conf/experiment/{experiment}.yaml sweeps {key!r}, which is neither a config group nor a key")
            if (CONF / key).is_dir():
                assert job_cfg.hydra.runtime.choices[key] in group_options(key)


@pytest.mark.slow
def test_a_sweep_experiment_sweeps_without_m(tmp_path):
    """The real command, no -m: a sweep folder with a job folder, not one run of the defaults in outputs/.
    The sweep is cut to one job: the command line overrides the experiment's data.split, and its seeds."""
    proc = subprocess.run([sys.executable, "train.py", "experiment=exact_in_seconds", *TINY,
                           f"hydra.sweep.dir={tmp_path}", "hydra.sweeper.params.seed=0", "data.split=position"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = [p.name for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(jobs) == 1 and jobs[0].startswith("0_"), jobs
    assert {"model=heatmap", "seed=0", "data.split=position"} <= set(jobs[0].split("_", 1)[1].split(","))
    assert "sweep: 1 jobs, 1 ok" in proc.stdout


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
