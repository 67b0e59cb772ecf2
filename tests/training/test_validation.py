"""Bad config values fail before any data or model is built, with one sentence naming key and fix."""

import re
import subprocess
import sys

import pytest
from conftest import ROOT, group_options, model_overrides

from pixel_spotter.errors import ConfigError
from pixel_spotter.training.validation import validate


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
        # seed: an integer in numpy's range, never a bool, a float or missing
        ("seed=abc", "seed must be an integer"),
        ("seed=-1", "seed must be an integer"),
        ("seed=null", "seed must be an integer"),
        ("seed=1.5", "seed must be an integer"),
        ("seed=true", "seed must be an integer"),
        ("seed=4294967296", "seed must be an integer"),
        ("data.seed=abc", "data.seed"),
        # data
        ("data.fractions=0.7", "data.fractions must be three numbers"),
        ("data.fractions=[0.7,0.15,abc]", "data.fractions must be three numbers"),
        ("data.num_workers=-1", "data.num_workers"),
        ("data.num_workers=1.5", "data.num_workers"),
        ("data.random_train_size=0", "data.random_train_size"),
        ("data.random_train_size=abc", "data.random_train_size"),
        ("data.height=true", "data.height"),
        ("data.width=16.0", "data.width"),
        ("data.batch_size=true", "data.batch_size"),
        ("data.eval_batch_size=0", "data.eval_batch_size"),
        ("data.height=10000 data.width=10000", "data.height=10000 data.width=10000 has 100,000,000 positions"),
        ("data.height=512 data.width=512", "data.eval_batch_size=1024 renders 1024 images of 512x512 at once "
                                           "(1.0 GiB before the network's activations); use data.eval_batch_size=512"),
        ("data.train_samples_per_epoch=0", "data.train_samples_per_epoch must be an integer >= 1 or null"),
        ("data.max_eval_images=1.5", "data.max_eval_images must be an integer >= 1 or null"),
        ("data.augment_eval=maybe", "data.augment_eval must be true or false"),
        # corruption ranges (synthesis.Augment)
        ("augment=noise data.augment.noise_std=[0.5,0.1]", "data.augment.noise_std must be a range [lo, hi]"),
        ("data.augment.noise_std=-0.1", "data.augment.noise_std must be a range"),
        ("data.augment.blur_sigma=[0,abc]", "data.augment.blur_sigma must be a range"),
        ("data.augment.distractors=[0,2.5]", "data.augment.distractors must be a range [lo, hi] of integers"),
        ("data.augment.intensity=[0,1]", "data.augment.intensity must be a range"),
        ("data.augment.p=2", "data.augment.p must be a number in [0, 1]"),
        ("+data.augment.nois_std=0.1", "data.augment.nois_std is not a corruption setting"),
        # every split mode: no empty train/val/test
        ("model=heatmap data.split=position data.height=2 data.width=2", "leaves the test split empty"),
        ("data.split=position data.fractions=[0.995,0.004,0.001]", "leaves the test split empty"),
        ("data.split=position data.fractions=[0.999,0.0005,0.0005]", "leaves the val and test splits empty"),
        ("data.split=quadrant data.fractions=[0.998,0.001,0.001]", "leaves the val split empty"),
        ("data.split=quadrant data.fractions=[0.001,0.998,0.001]", "leaves the train split empty"),
        ("data.split=random data.fractions=[0.998,0.001,0.001]", "leaves the val and test splits empty"),
        ("model=heatmap data.split=random data.height=3 data.width=3 data.fractions=[0.9,0.05,0.05]",
         "leaves the val and test splits empty"),
        # model and optimization
        ("model.loss=huber", "model.loss"),
        ("model=cnn model.loss=cross_entropy", "model.loss=cross_entropy trains a per-pixel score map"),
        ("model=heatmap model.net.readout=argmax", "model.net.readout=argmax has no gradient for model.loss=mse"),
        ("model=likelihood_bank model.loss=l1", "is read out by its argmax, which has no gradient for model.loss=l1"),
        ("augment=mix data.augment.combine=some", "data.augment.combine='some' is unknown"),
        ("model.loss=1", "model.loss"),
        ("trainer.max_epochs=true", "trainer.max_epochs"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay"),
        ("optimizer=adamw optimizer.weight_decay=abc", "optimizer.weight_decay"),
        ("scheduler=plateau scheduler.factor=1", "scheduler.factor"),
        ("scheduler=plateau scheduler.factor=0", "scheduler.factor"),
        ("scheduler=plateau scheduler.factor=abc", "scheduler.factor"),
        ("scheduler=plateau scheduler.patience=-1", "scheduler.patience"),
        ("scheduler=plateau scheduler.patience=1.5", "scheduler.patience"),
        ("scheduler=plateau scheduler.mode=max", "scheduler.mode"),
        # trainer
        ("trainer.accelerator=banana", "trainer.accelerator"),
        ("trainer.devices=0", "trainer.devices"),
        ("trainer.devices=abc", "trainer.devices"),
        ("trainer.devices=true", "trainer.devices"),
        ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps"),
        ("trainer.log_every_n_steps=abc", "trainer.log_every_n_steps"),
        ("+trainer.fast_dev_run=abc", "trainer.fast_dev_run"),
        # checkpoint / early stopping: a metric that is logged, in the right direction
        ("callbacks.model_checkpoint.monitor=val/nope", "callbacks.model_checkpoint.monitor"),
        ("callbacks.model_checkpoint.monitor=train/loss", "callbacks.model_checkpoint.monitor"),
        ("callbacks.model_checkpoint.monitor=null", "callbacks.model_checkpoint.monitor"),
        ("callbacks.model_checkpoint.mode=best", "callbacks.model_checkpoint.mode"),
        ("callbacks.model_checkpoint.mode=max", "callbacks.model_checkpoint.mode=max is the wrong direction"),
        ("callbacks.model_checkpoint.monitor=val/exact_acc", "use callbacks.model_checkpoint.mode=max"),
        ("callbacks=early_stopping callbacks.early_stopping.monitor=val/typo", "callbacks.early_stopping.monitor"),
        ("callbacks=early_stopping callbacks.early_stopping.mode=sideways", "callbacks.early_stopping.mode"),
        ("callbacks=early_stopping callbacks.early_stopping.mode=max", "early_stopping.mode=max is the wrong"),
        ("callbacks=early_stopping callbacks.early_stopping.monitor=val/within1_acc",
         "use callbacks.early_stopping.mode=max"),
        # resume (++: works whether or not conf/config.yaml already has the key)
        ("++resume=yes", "resume must be true or false"),
        ("++resume=1", "resume must be true or false"),
        ("++resume=null", "resume must be true or false"),
    ],
)
def test_bad_values_are_named(make_cfg, override, words):
    cfg = make_cfg(*override.split())
    with pytest.raises(ConfigError, match=re.escape(words)) as err:
        validate(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("accelerator, available", [
    ("gpu", "torch.cuda.is_available"), ("cuda", "torch.cuda.is_available"), ("mps", "torch.backends.mps.is_available"),
])
def test_an_accelerator_that_is_not_there_is_one_line(make_cfg, monkeypatch, accelerator, available):
    monkeypatch.setattr(available, lambda: False)
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(f"trainer.accelerator={accelerator}"))
    message = str(err.value)
    assert message.startswith(f"trainer.accelerator={accelerator} but no ") and "trainer.accelerator=cpu" in message
    assert "\n" not in message


def test_more_gpus_than_visible_is_one_line(make_cfg, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    validate(make_cfg("trainer.accelerator=gpu", "trainer.devices=1"))
    with pytest.raises(ConfigError, match=r"trainer.devices=2 but only 1 CUDA GPU is visible"):
        validate(make_cfg("trainer.accelerator=gpu", "trainer.devices=2"))


def test_the_tiny_defaults_are_valid(make_cfg):
    validate(make_cfg())


@pytest.mark.parametrize("overrides", [
    *(model_overrides(model) for model in group_options("model")),
    *([*model_overrides(model), f"data.split={split}"] for model in group_options("model")
      for split in ("quadrant", "random")),
    ["scheduler=plateau"], ["optimizer=adamw"], ["callbacks=early_stopping"], ["debug=fast"],
    ["++resume=true"], ["++resume=false"], ["seed=4294967295"], ["trainer.devices=auto"],
    ["callbacks.model_checkpoint.monitor=val/exact_acc", "callbacks.model_checkpoint.mode=max"],
    ["~callbacks.model_checkpoint"],
    ["data.height=2", "data.width=2", "model=heatmap", "data.split=quadrant"],
])
def test_good_settings_still_validate(make_cfg, overrides):
    validate(make_cfg(*overrides))


def test_the_default_image_is_far_below_the_memory_bound(make_cfg):
    validate(make_cfg(tiny=False))  # 50x50, the real defaults


def _train(*args):
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow  # a real train.py subprocess: the user's exact view of a bad value
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
    from pixel_spotter.training.run import main

    with pytest.raises(SystemExit) as exit_:
        main(make_cfg(*overrides))
    message = str(exit_.value.code)
    assert message.startswith(words) and "\n" not in message and "InstantiationException" not in message


@pytest.mark.slow  # a real train.py subprocess
def test_cli_bad_seed_is_one_line_no_traceback(tmp_path):
    proc = _train("seed=abc", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: seed must be an integer >= 0 (at most 2**32-1), got 'abc'; e.g. seed=0"]
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("overrides, words", [
    (["model=cnn", "model.net.channels=[32,0]"], "model.net.channels must be a non-empty list of integers >= 1"),
    (["model=cnn", "model.net.channels=64"], "model.net.channels must be a non-empty list"),
    (["model=cnn", "model.net.channels=[]"], "model.net.channels must be a non-empty list"),
    (["model=cnn", "model.net.channels=[8,true]"], "model.net.channels must be a non-empty list"),
    (["model=cnn", "model.net.channels=[8,8,8,8,8]"], "model.net.channels=[8, 8, 8, 8, 8] pools a 16x16 image"),
    (["model=cnn", "model.net.hidden=0"], "model.net.hidden must be an integer >= 1"),
    (["model=cnn", "model.net.dropout=1"], "model.net.dropout must be a number in [0, 1)"),
    (["model=cnn", "model.net.dropout=-0.1"], "model.net.dropout"),
    (["model=cnn", "model.net.pool_ceil_mode=maybe"], "model.net.pool_ceil_mode must be true or false"),
    (["model=coordconv", "model.net.channels=0"], "model.net.channels must be an integer >= 1"),
    (["model=coordconv", "model.net.channels=abc"], "model.net.channels must be an integer >= 1"),
    (["model=coordconv", "model.net.layers=0"], "model.net.layers must be an integer >= 1"),
    (["model=coordconv", "model.net.kernel_size=2"], "model.net.kernel_size must be an odd integer >= 1"),
    (["model=coordconv", "model.net.separable=1"], "model.net.separable must be true or false"),
    (["model=heatmap", "model.net.channels=0"], "model.net.channels must be an integer >= 1"),
    (["model=heatmap", "model.net.layers=1.5"], "model.net.layers must be an integer >= 1"),
    (["model=heatmap", "model.net.kernel_size=4"], "model.net.kernel_size must be an odd integer >= 1"),
    (["model=heatmap", "model.net.kernel_size=true"], "model.net.kernel_size must be an odd integer >= 1"),
    (["model=heatmap", "model.net.init_temperature=0"], "model.net.init_temperature must be a number > 0"),
    (["model=heatmap", "model.net.init_temperature=-1"], "model.net.init_temperature must be a number > 0"),
    (["model=heatmap", "model.net.learn_temperature=abc"], "model.net.learn_temperature must be true or false"),
    (["model=heatmap_ce", "model.net.readout=max"], "model.net.readout='max' is unknown"),
    (["model=heatmap_ce", "model.net.padding=mirror"], "model.net.padding='mirror' is unknown"),
    (["model=heatmap_ce", "model.net.skip=maybe"], "model.net.skip must be true or false"),
    (["model=cnn_gap", "model.net.channels=[]"], "model.net.channels must be a non-empty list"),
    (["model=cnn_gap", "model.net.dropout=1"], "model.net.dropout must be a number in [0, 1)"),
    (["data=spot", "model=spot_fit", "model.net.refine=-1"], "model.net.refine must be an integer in [0, 100]"),
    (["data=spot", "model=spot_fit", "model.net.refine=1000000"], "model.net.refine must be an integer in [0, 100]"),
    (["data=spot", "model=spot_fit", "model.net.patch=10001"], "model.net.patch must be an odd integer in [3, 33]"),
    (["data=spot", "model=spot_patch", "model.net.smooth=99"], "model.net.smooth must be an odd integer in [1, 33]"),
    (["data=spot", "model=spot_fit", "model.net.sigma_bounds=[3,1]"], "model.net.sigma_bounds must be [lo, hi]"),
    (["data=spot", "model=spot_fit", "model.net.sigma_bounds=1"], "model.net.sigma_bounds must be [lo, hi]"),
    (["data=spot", "model=spot_fit", "model.net.input_scale=0"], "model.net.input_scale must be a number > 0"),
    (["data=spot", "model=spot_fit", "model.net.estimates=false"], "model.net.refine needs model.net.estimates"),
    (["data=spot", "model=spot_fit", "model.net.position=1"], "model.net.position must be true or false"),
    (["data=spot", "model=spot_fit", "model.net.detect_sigma=null"], "model.net.shrink needs model.net.detect_sigma"),
    (["data=spot", "model=spot_fit", "model.net.detect_sigma=0"], "model.net.detect_sigma must be null"),
])
def test_network_hyper_parameters_are_one_line(make_cfg, overrides, words):
    from pixel_spotter.training.run import build

    cfg = make_cfg(*overrides)
    validate(cfg)  # the constructors own these keys; the config check lets them through
    with pytest.raises(ConfigError) as err:
        build(cfg)
    message = str(err.value)
    assert message.startswith(words) and "\n" not in message
