"""The many-pixels task (data=pixels): frames of K bright pixels drawn honestly from their split's positions, the
frame model that finds them (model=frame_heatmap), and the commands that take or refuse its runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import TINY, run_in_process

from pixel_spotter import cli
from pixel_spotter.data.augment import Augment
from pixel_spotter.data.datamodule import PixelDataModule
from pixel_spotter.data.splits import in_quadrant
from pixel_spotter.errors import ConfigError
from pixel_spotter.training.compose import compose
from pixel_spotter.training.validation import validate


def _frames(split="test", **settings):
    dm = PixelDataModule(height=24, width=24, task="pixels", **settings)
    images, sets = [], []
    for batch, truth, _ in dm.batches_truth(split):
        images.append(batch)
        sets.append(truth)
    return dm, torch.cat(images), sets


def test_frames_hold_their_count_of_distinct_bright_pixels_from_the_split_positions_only():
    dm, images, sets = _frames(count=[0, 4])
    truth = sets[0]
    allowed = {tuple(p) for p in dm.positions["test"].tolist()}
    counts = truth.counts.tolist()
    assert set(counts) == {0, 1, 2, 3, 4}  # every count of the range occurs, 0 included
    for i, image in enumerate(images):
        bright = (image[0] == 1.0).nonzero()[:, [1, 0]]  # (x, y)
        pixels = {tuple(p) for p in truth.frame(i).astype(int).tolist()}
        assert len(bright) == counts[i] == len(pixels) and {tuple(p) for p in bright.tolist()} == pixels
        assert pixels <= allowed  # never a training or validation position
    again = _frames(count=[0, 4])[1]
    assert torch.equal(images, again)  # a frame is a function of its seed
    train = next(iter(_frames("val", count=[0, 4])[2]))
    assert not torch.equal(train.xy[:5], truth.xy[:5])


def test_the_quadrant_split_puts_every_test_pixel_in_the_held_out_quadrant():
    dm = PixelDataModule(height=24, width=24, task="pixels", count=[1, 6], split="quadrant")
    _, truth, _ = next(dm.batches_truth("test"))
    xy = truth.xy[truth.mask].long()
    assert len(xy) > 100 and in_quadrant(xy[:, 0], xy[:, 1], 24, 24, "bottom_right").all()
    _, train, _ = next(dm.batches_truth("train"))
    xy = train.xy[train.mask].long()
    assert not in_quadrant(xy[:, 0], xy[:, 1], 24, 24, "bottom_right").any()


def test_the_corruptions_of_augment_apply_and_augment_eval_false_keeps_test_frames_clean():
    noisy = Augment(noise_std=(0.1, 0.1))
    _, images, _ = _frames(count=[2, 2], augment=noisy)
    assert ((images != 0) & (images != 1)).float().mean() > 0.9
    _, clean, _ = _frames(count=[2, 2], augment=noisy, augment_eval=False)
    assert set(clean.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize(("overrides", "message"), [
    (["data=pixels", "model=cnn"], "data=pixels has a set of answers per image, but .*use a frame model"),
    (["model=frame_heatmap"], "data=pixel has one answer per image, but .*FrameLocalizer answers a set"),
    (["data=pixels", "model=frame_heatmap", "data.count=[5,2]"], r"data.count must be \[low, high\]"),
    (["data=pixels", "model=frame_heatmap", "data.tolerance_px=0"], r"data.tolerance_px must be a number"),
    (["data=pixels", "model=frame_heatmap", "model.net.outputs=8"], "model.loss=detection reads 1 maps"),
    (["data=pixels", "model=frame_heatmap", "model.threshold=1.5"], r"model.threshold must be a number in \(0, 1\)"),
    (["data=pixels", "model=frame_heatmap", "model.loss=mse"], "model.loss='mse' is not a frame model's loss"),
    (["data=pixels", "model=frame_heatmap", "callbacks.model_checkpoint.monitor=val/euclid_px"],
     "is not a validation metric this model logs; choose one of val/loss, val/jaccard"),
    (["data=pixels", "model=frame_heatmap", "model.monitor_mode=min"], "the wrong direction for val/f1"),
])
def test_bad_frame_settings_are_one_line(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        validate(compose(*TINY, *overrides, output_dir=tmp_path))


@pytest.fixture(scope="module")
def pixels_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pixels_run")
    return folder, run_in_process(folder, "data=pixels", "model=frame_heatmap", "data.height=32", "data.width=32",
                                  "trainer.max_epochs=3", "trainer.accelerator=cpu",
                                  "callbacks.progress_bar.refresh_rate=0")


def test_the_frame_model_finds_every_test_frames_set_exactly(pixels_run):
    folder, record = pixels_run
    assert record.ok, record.error
    assert record.test["exact_frames"] == 1.0 and record.test["f1"] == 1.0  # clean frames of 0-10 pixels
    assert 0 < record.decode["threshold"] < 1 and record.best_checkpoint.startswith("checkpoints/best-epoch")
    saved = json.loads((folder / "results.json").read_text())
    assert saved["decode"] == record.decode and saved["test"]["tp"] > 100
    assert not (folder / "predictions.csv").exists()  # one row per image does not describe a set


def test_predict_export_and_robustness_refuse_a_frame_run_in_one_line(pixels_run, tmp_path, capsys):
    folder, _ = pixels_run
    image = tmp_path / "x.npy"
    np.save(image, np.zeros((32, 32), dtype=np.float32))
    for argv in (["predict", str(folder), str(image)], ["export", str(folder), "--format", "onnx"],
                 ["robustness", str(folder), "--out", str(tmp_path)]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a frame model's run" in err, argv


def test_the_report_scores_frame_runs_in_their_own_section(pixels_run, tmp_path):
    from pixel_spotter.report.cli import make_report

    folder, record = pixels_run
    copy = shutil.copytree(folder, tmp_path / "run")
    paths = make_report([copy], tmp_path / "report")
    text = paths["md"].read_text()
    assert "## Many bright pixels per frame" in text and "## Runs" not in text
    row = next(line for line in text.splitlines() if "frame_heatmap" in line)
    assert "| 100.0 |" in row and f"| {record.decode['threshold']:.2f} |" in row
    assert "failed" not in text
