"""Training end to end in-process: fast_dev_run per model, the results record, determinism."""

import json

import pytest
from conftest import group_options
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pixel_spotter.metrics import METRIC_NAMES
from pixel_spotter.train import main, run


@pytest.mark.parametrize("model", group_options("model"))
def test_fast_dev_run(make_cfg, tmp_path, model):
    record = run(make_cfg(f"model={model}", "debug=fast"))
    assert record.status == "ok" and record.model == model
    assert set(METRIC_NAMES) <= set(record.test)
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
