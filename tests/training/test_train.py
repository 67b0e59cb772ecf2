"""Training end to end in-process: fast_dev_run per model, the results record, determinism."""

import json

import lightning as L
import numpy as np
import pytest
from conftest import FRAME_MODELS, group_options, model_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pixel_spotter.evaluation.metrics import METRIC_NAMES
from pixel_spotter.run_folder import RunFolder
from pixel_spotter.training.run import build, main, run
from pixel_spotter.training.side_outputs import HparamsRecord, SampleFigure, TestPredictions


@pytest.mark.parametrize("model", group_options("model"))
def test_fast_dev_run(make_cfg, tmp_path, model):
    record = run(make_cfg(*model_overrides(model), "debug=fast"))
    assert record.status == "ok" and record.model == model
    assert {"f1", "jaccard", "exact_frames"} <= set(record.test) if model in FRAME_MODELS else \
        set(METRIC_NAMES) <= set(record.test)
    assert (tmp_path / "results.json").is_file()


def test_results_record_a_real_run(make_cfg, tmp_path):
    record = run(make_cfg("trainer.max_epochs=2", "model.lr=0.002"))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == json.loads(record.to_json())
    assert saved["lr"] == 0.002 and saved["epochs_run"] == 2 and saved["seed"] == 0
    assert saved["data"]["split"] == "position" and saved["test_overlap"] == 0.0
    assert saved["data"]["n_train"] + saved["data"]["n_val"] + saved["data"]["n_test"] == 16 * 16
    assert saved["params"] > 0 and saved["weights_used"] == "random init"
    assert saved["train_seconds"] > 0
    assert saved["inference_ms_per_image"]["batched"] > 0 and saved["inference_ms_per_image"]["single"] > 0
    assert set(METRIC_NAMES) <= set(saved["best_val"]) and set(METRIC_NAMES) <= set(saved["test"])
    assert (tmp_path / saved["best_checkpoint"]).is_file() and saved["best_checkpoint"].startswith("checkpoints/")
    assert saved["versions"]["torch"] and saved["versions"]["lightning"]
    # predictions.csv: one row per test image, truth within the image
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert rows[0] == "x_true,y_true,x_pred,y_pred" and len(rows) - 1 == saved["data"]["n_test"]
    # TensorBoard: per-epoch scalars, the HPARAMS tab and the sample-prediction figure
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("val/rmse_px")) == 2
    assert "hp/test_euclid_px" in events.Tags()["scalars"]
    assert "test/sample_predictions" in events.Tags()["images"]
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
    # CSV log: the same per-epoch curves, counted from epoch 1
    curves, problem = RunFolder(tmp_path).read_curves()
    assert problem is None and {"train/loss", "val/loss", "val/rmse_px", "train/rmse_px"} <= set(curves)
    assert not any(tag.startswith("test/") for tag in curves)
    epochs, values = curves["val/rmse_px"]
    assert list(epochs) == [1.0, 2.0]
    assert np.allclose(values, [e.value for e in events.Scalars("val/rmse_px")])


def _tensorboard_tags(run_dir) -> dict:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return events.Tags()


def test_the_module_holds_no_test_outputs(make_cfg):
    cfg = make_cfg()
    L.seed_everything(cfg.seed)
    datamodule, model, trainer = build(cfg)
    kinds = {type(cb) for cb in trainer.callbacks}
    assert TestPredictions in kinds  # always, whatever conf/callbacks says
    assert {SampleFigure, HparamsRecord} <= kinds  # config (conf/callbacks/default.yaml)
    trainer.fit(model, datamodule=datamodule)
    trainer.test(model, datamodule=datamodule, verbose=False)
    assert not hasattr(model, "test_outputs") and not hasattr(model, "test_predictions")
    assert not [name for name, value in vars(model).items() if isinstance(value, list) and value
                and isinstance(value[0], (tuple, list))]  # no per-batch accumulator of any name
    true, pred = next(cb for cb in trainer.callbacks if isinstance(cb, TestPredictions)).predictions()
    assert true.shape == pred.shape == (len(datamodule.datasets["test"]), 2)


def test_predictions_are_written_without_their_config_callbacks(make_cfg, tmp_path):
    record = run(make_cfg("~callbacks.sample_figure", "~callbacks.hparams_record"))
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert record.ok and len(rows) - 1 == record.data["n_test"]
    tags = _tensorboard_tags(tmp_path)
    assert "test/sample_predictions" not in tags["images"] and "hp/test_euclid_px" not in tags["scalars"]


def test_loggers_are_keyed_by_name(make_cfg, tmp_path):
    datamodule, model, trainer = build(make_cfg())
    assert {type(lg).__name__ for lg in trainer.loggers} == {"TensorBoardLogger", "ResumableCSVLogger"}
    record = run(make_cfg("~logger.csv"))
    assert record.ok and not RunFolder(tmp_path).csv_log.exists()
    tags = _tensorboard_tags(tmp_path)  # the side outputs find TensorBoard among the loggers
    assert "test/sample_predictions" in tags["images"] and "hp/test_euclid_px" in tags["scalars"]


def test_a_run_without_tensorboard_keeps_its_csv_log(make_cfg, tmp_path):
    record = run(make_cfg("~logger.tensorboard"))
    assert record.ok and not (tmp_path / "tensorboard").exists()
    curves, problem = RunFolder(tmp_path).read_curves()
    assert problem is None and list(curves["val/loss"][0]) == [1.0]


def test_a_run_without_loggers(make_cfg, tmp_path):
    datamodule, model, trainer = build(make_cfg("~logger", "~callbacks.lr_monitor"))
    assert trainer.loggers == []
    record = run(make_cfg("~logger", "~callbacks.lr_monitor"))
    assert record.ok and (tmp_path / "predictions.csv").is_file()
    assert not (tmp_path / "tensorboard").exists() and not RunFolder(tmp_path).csv_log.exists()
    assert RunFolder(tmp_path).read_curves() == ({}, None)


def test_same_seed_same_metrics(make_cfg, tmp_path_factory):
    records = [run(make_cfg(f"output_dir={tmp_path_factory.mktemp('r')}", "trainer.max_epochs=2"))
               for _ in range(2)]
    assert records[0].test == records[1].test
    assert records[0].best_val == records[1].best_val
    other = run(make_cfg(f"output_dir={tmp_path_factory.mktemp('r')}", "trainer.max_epochs=2", "seed=1"))
    assert other.test != records[0].test


def test_user_error_in_a_run_is_recorded(make_cfg, tmp_path):
    with pytest.raises(SystemExit, match="error: model.lr"):
        main(make_cfg("model.lr=-1"))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["status"] == "failed" and "model.lr" in saved["error"]


def test_without_a_kept_best_the_last_checkpoint_is_recorded(make_cfg, tmp_path):
    record = run(make_cfg("trainer.max_epochs=2", "callbacks.model_checkpoint.save_top_k=0"))
    assert record.ok and record.best_checkpoint == "checkpoints/last.ckpt"
    assert (tmp_path / record.best_checkpoint).is_file()  # predict can load the weights that were tested


def test_last_checkpoint_is_the_latest_epoch_even_when_the_best_is_older(make_cfg, tmp_path):
    """resume=true (and a requeued launcher job) continues last.ckpt: it must be the final epoch, not the best one
    (Lightning 2.6's save_last=True rewrites last.ckpt only when the best improves)."""
    import torch

    # lr 1e-12: the weights, hence the validation metrics, stay the same, so only epoch 0 is ever the best
    record = run(make_cfg("trainer.max_epochs=3", "model.lr=1e-12"))
    assert record.ok and record.best_checkpoint == "checkpoints/best-epoch000.ckpt"
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2
