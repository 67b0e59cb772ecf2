"""The CSV log across starts (ResumableCSVLogger) and reading it back (RunFolder.read_curves), untrusted."""

import os

import numpy as np
import pytest

from pixel_spotter import run_folder
from pixel_spotter.run_folder import RunFolder
from pixel_spotter.training.loggers import ResumableCSVLogger


def _logger(run_dir) -> ResumableCSVLogger:
    return ResumableCSVLogger(save_dir=RunFolder(run_dir).csv_log, name="", version="")


def _metrics_file(run_dir):
    return RunFolder(run_dir).csv_log / run_folder.CSV_METRICS


def _log_epoch(logger, epoch: int, loss: float, step: int) -> None:
    logger.log_metrics({"val/loss": loss, "epoch": epoch}, step=step)
    logger.log_metrics({"train/loss": 2 * loss, "epoch": epoch}, step=step)
    logger.save()


def test_a_new_logger_in_the_same_folder_keeps_the_rows(tmp_path):
    first = _logger(tmp_path)
    _log_epoch(first, 0, 0.5, 2)
    _log_epoch(first, 1, 0.4, 5)  # killed after this epoch's rows, before its checkpoint
    second = _logger(tmp_path)  # the resumed run, from the checkpoint of epoch 0
    second.log_metrics({"lr-Adam": 0.001}, step=3)  # a column the file did not have: the header widens
    _log_epoch(second, 1, 0.3, 5)
    _log_epoch(second, 2, 0.2, 8)
    second.finalize("success")
    lines = _metrics_file(tmp_path).read_text().splitlines()
    assert lines[0] == "epoch,lr-Adam,step,train/loss,val/loss" and len(lines) == 1 + 2 * 4 + 1

    curves, problem = RunFolder(tmp_path).read_curves()
    assert problem is None and set(curves) == {"train/loss", "val/loss"}
    epochs, values = curves["val/loss"]
    assert list(epochs) == [1.0, 2.0, 3.0]  # every epoch once, counted from 1
    assert np.allclose(values, [0.5, 0.3, 0.2])  # the later row of epoch 2 wins
    assert np.allclose(curves["train/loss"][1], [1.0, 0.6, 0.4])


def test_a_half_written_last_line_is_dropped(tmp_path):
    first = _logger(tmp_path)
    _log_epoch(first, 0, 0.5, 2)
    with _metrics_file(tmp_path).open("a") as f:
        f.write("1,5,0.8")  # killed mid-append: no newline, a number cut short
    assert list(RunFolder(tmp_path).read_curves()[0]["val/loss"][0]) == [1.0]
    second = _logger(tmp_path)
    _log_epoch(second, 1, 0.4, 5)
    curves, problem = RunFolder(tmp_path).read_curves()
    assert problem is None and list(curves["val/loss"][0]) == [1.0, 2.0]
    assert np.allclose(curves["val/loss"][1], [0.5, 0.4])


def test_no_log_is_no_curves_and_no_problem(tmp_path):
    assert RunFolder(tmp_path).read_curves() == ({}, None)


GARBAGE = {
    "binary": b"\xff\xfe\x00\x01garbage\n\x80\x81\n",
    "empty": b"",
    "no newline": b"epoch,val/loss",
    "no epoch column": b"step,val/loss\n1,0.5\n",
    "duplicate columns": b"epoch,val/loss,val/loss\n0,0.5,0.4\n",
    "ragged row": b"epoch,step,val/loss\n0,1,0.5,7\n",
    "short row": b"epoch,step,val/loss\n0,1\n",
    "not a number": b"epoch,step,val/loss\n0,1,lots\n",
    "fractional epoch": b"epoch,step,val/loss\n0.5,1,0.3\n",
    "negative epoch": b"epoch,step,val/loss\n-1,1,0.3\n",
    "huge epoch": b"epoch,step,val/loss\n1e300,1,0.3\n",
    "nan epoch": b"epoch,step,val/loss\nnan,1,0.3\n",
    "giant field": b"epoch,step,val/loss\n0,1," + b"9" * 200_000 + b"\n",
    "json": b'{"epoch": 0, "val/loss": 0.5}\n',
}


@pytest.mark.parametrize("content", GARBAGE.values(), ids=GARBAGE.keys())
def test_read_curves_never_raises_on_a_planted_file(tmp_path, content):
    path = _metrics_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    curves, problem = RunFolder(tmp_path).read_curves()
    assert curves == {}
    if content and b"\n" in content:  # a file with at least one complete line that is not a curve log
        assert problem and run_folder.CSV_METRICS in problem


def test_read_curves_refuses_what_is_not_a_regular_file(tmp_path):
    path = _metrics_file(tmp_path)
    path.mkdir(parents=True)
    curves, problem = RunFolder(tmp_path).read_curves()
    assert curves == {} and problem == f"{run_folder.CSV_LOG}/{run_folder.CSV_METRICS} is not a regular file"
    path.rmdir()
    os.mkfifo(path)  # reading a FIFO would block forever
    curves, problem = RunFolder(tmp_path).read_curves()
    assert curves == {} and "not a regular file" in problem


def test_read_curves_refuses_a_giant_file(tmp_path, monkeypatch):
    monkeypatch.setattr(run_folder.readers, "_MAX_CSV_BYTES", 100)
    path = _metrics_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("epoch,step,val/loss\n" + "0,1,0.5\n" * 20)
    curves, problem = RunFolder(tmp_path).read_curves()
    assert curves == {} and "over" in problem


def test_a_logger_over_a_garbage_file_starts_it_again(tmp_path):
    path = _metrics_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00\x01garbage\n")
    logger = _logger(tmp_path)
    _log_epoch(logger, 0, 0.5, 2)
    curves, problem = RunFolder(tmp_path).read_curves()
    assert problem is None and list(curves["val/loss"][0]) == [1.0]
