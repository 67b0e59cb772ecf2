"""The run folder as untrusted input and as a contended resource: the record reads whatever is in the file
without a trace, writes strict JSON, claims are exclusive, resume rules hold, paths stay inside the run."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import (
    DIVERGED,
    INTERRUPTED,
    OK,
    UNFINISHED,
    UNREADABLE,
    Results,
    RunFolder,
    lock_sweep,
    planned_jobs,
    sweep_jobs,
    unique_tag,
)


def _strict(text: str):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_metrics_are_written_as_null():
    record = Results(status=DIVERGED, test={"euclid_px": float("nan"), "exact_acc": 0.5},
                     best_val={"rmse_px": float("inf")}, train_seconds=float("-inf"))
    saved = _strict(record.to_json())
    assert saved["test"] == {"euclid_px": None, "exact_acc": 0.5}
    assert saved["best_val"] == {"rmse_px": None} and saved["train_seconds"] is None


@pytest.mark.parametrize("content, words", [
    (b"[1, 2, 3]", "holds a list"),
    (b'"ok"', "holds a str"),
    (b"42", "holds a int"),
    (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "not valid JSON"),
    (b"\xff\xfe\x00binary", "not valid JSON"),
    (b'{"status": "ok", "test": {"euclid_px": "small"}}', "wrong type: test"),
    (b'{"status": 7}', "wrong type: status"),
    (b'{"status": "ok", "overrides": "model=cnn"}', "wrong type: overrides"),
    (b'{"status": "ok", "test": [1]}', "wrong type: test"),
    (b'{"status": "splendid"}', "unknown status"),
    (b'{"status": "ok"}', "no test metrics"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),  # nesting deep enough to blow the recursion limit
])
def test_any_content_reads_as_a_record_never_a_trace(tmp_path, content, words):
    (tmp_path / "results.json").write_bytes(content)
    record = RunFolder(tmp_path).read()
    assert record.status == UNREADABLE and words in record.error and not record.ok


def test_a_record_that_is_not_a_regular_file_is_unreadable_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "results.json")  # opening a FIFO for reading would wait forever for a writer
    record = RunFolder(tmp_path).read()
    assert record.status == UNREADABLE and "not a regular file" in record.error


def test_ok_with_nan_written_by_an_old_version_reads_as_diverged(tmp_path):
    (tmp_path / "results.json").write_text('{"status": "ok", "test": {"euclid_px": NaN, "exact_acc": 0.1}}')
    record = RunFolder(tmp_path).read()
    assert record.status == DIVERGED and not record.ok


@pytest.mark.parametrize("test, shown", [
    ({"euclid_px": -3.0, "exact_acc": 0.5}, "test.euclid_px = -3"),
    ({"euclid_px": 1.0, "exact_acc": 1.7}, "test.exact_acc = 1.7"),
    ({"euclid_px": 1.0, "within1_acc": -0.1}, "test.within1_acc = -0.1"),
    ({"euclid_px": 1.0, "rmse_over_crlb": -2.0}, "test.rmse_over_crlb = -2"),
])
def test_a_record_with_impossible_metrics_is_never_ranked(tmp_path, test, shown):
    RunFolder(tmp_path).write(Results(status=OK, test=test))
    record = RunFolder(tmp_path).read()
    assert record.status == UNREADABLE and not record.ok and shown in record.error


def test_possible_edge_values_stay_ok(tmp_path):
    RunFolder(tmp_path).write(Results(status=OK, test={"euclid_px": 0.0, "exact_acc": 1.0, "loss": -0.5},
                                      best_val={"within1_acc": 0.0}))
    assert RunFolder(tmp_path).read().ok  # a loss may be negative (a likelihood); 0 px and 100 % are possible


def test_record_round_trips(tmp_path):
    folder = RunFolder(tmp_path)
    record = Results(status=OK, model="cnn", lr=1e-3, test={"euclid_px": 0.5}, best_checkpoint="checkpoints/b.ckpt")
    folder.write(record)
    assert folder.read() == record
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file of the atomic write is gone


def test_missing_record_is_unfinished(tmp_path):
    assert RunFolder(tmp_path).read().status == UNFINISHED


def test_running_without_a_live_writer_reads_as_interrupted(tmp_path):
    folder = RunFolder(tmp_path)
    with folder.claim(resume=False, overrides=[]):
        folder.write(Results())
        assert folder.read().status == "running"  # this process holds the lock
    assert folder.read().status == INTERRUPTED and "resume=true" in folder.read().error


def test_a_claimed_folder_cannot_be_claimed_twice(tmp_path):
    with RunFolder(tmp_path).claim(resume=False, overrides=[]):
        with pytest.raises(UserError, match="another process is writing"):
            with RunFolder(tmp_path).claim(resume=True, overrides=[]):
                pass
    with RunFolder(tmp_path).claim(resume=False, overrides=[]):  # free again once released
        pass


def test_a_used_folder_needs_resume(tmp_path):
    folder = RunFolder(tmp_path)
    folder.write(Results(status=OK, overrides=["model=cnn"], test={"euclid_px": 1.0}))
    with pytest.raises(UserError, match="resume=true") as err:
        with folder.claim(resume=False, overrides=["model=cnn"]):
            pass
    assert "\n" not in str(err.value)
    with folder.claim(resume=True, overrides=["model=cnn", "resume=true"]) as start:
        assert start.skip is not None and start.skip.ok  # finished ok: nothing to redo
    with pytest.raises(UserError, match="now model=heatmap, was model=cnn"):
        with folder.claim(resume=True, overrides=["model=heatmap"]):
            pass


def test_resume_continues_from_last_checkpoint_unless_diverged(tmp_path):
    folder = RunFolder(tmp_path)
    folder.write(Results(status="running"))
    folder.checkpoints.mkdir()
    with zipfile.ZipFile(folder.last_checkpoint, "w") as archive:  # a checkpoint is a zip archive (whole: checked)
        archive.writestr("archive/data.pkl", b"weights")
    with folder.claim(resume=True, overrides=[]) as start:
        assert start.checkpoint == folder.last_checkpoint
    folder.write(Results(status=DIVERGED))
    with folder.claim(resume=True, overrides=[]) as start:
        # a diverged run's last weights may be NaN: start over, and leave nothing of the old attempt
        assert start.checkpoint is None and not folder.checkpoints.exists() and not folder.results_file.exists()


@pytest.mark.parametrize("recorded", ["../../elsewhere.ckpt", "/etc/passwd", "checkpoints/../../x.ckpt"])
def test_a_recorded_checkpoint_outside_the_run_is_refused(tmp_path, recorded):
    run = tmp_path / "run"
    RunFolder(run).write(Results(status=OK, test={"euclid_px": 1.0}, best_checkpoint=recorded))
    with pytest.raises(UserError, match="outside its run folder"):
        RunFolder(run).best_checkpoint()


def test_a_checkpoint_symlinked_out_of_the_run_is_refused(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.checkpoints.mkdir(parents=True)
    (tmp_path / "secret.ckpt").write_bytes(b"x")
    os.symlink(tmp_path / "secret.ckpt", run.checkpoints / "best.ckpt")
    run.write(Results(status=OK, test={"euclid_px": 1.0}, best_checkpoint="checkpoints/best.ckpt"))
    with pytest.raises(UserError, match="outside its run folder"):
        run.best_checkpoint()


def test_unique_tags_differ():
    assert len({unique_tag() for _ in range(50)}) == 50


def test_planned_jobs_expand_the_sweep_like_hydra(tmp_path):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "    params:\n      model: cnn,heatmap\n  overrides:\n    task:\n    - model.lr=1e-3,1e-2\n    - seed=3\n")
    # in Hydra's launch order, with values as Hydra prints them in job names (1e-3 -> 0.001)
    assert planned_jobs(tmp_path) == [
        (0, ["model=cnn", "model.lr=0.001", "seed=3"]), (1, ["model=cnn", "model.lr=0.01", "seed=3"]),
        (2, ["model=heatmap", "model.lr=0.001", "seed=3"]), (3, ["model=heatmap", "model.lr=0.01", "seed=3"])]
    (tmp_path / "multirun.yaml").write_bytes(b"\x00\x01 not yaml {{{")
    assert planned_jobs(tmp_path) == []  # a corrupt sweep file costs the 'not started' rows, nothing else


def test_jobs_of_several_sweeps_in_one_folder_keep_apart(tmp_path):
    for sweep in ("a", "b"):
        for job in ("0_model=cnn", "1_model=heatmap"):
            RunFolder(tmp_path / sweep / job).write(Results(status=OK, test={"euclid_px": 1.0}))
    RunFolder(tmp_path / "c" / "0_model.net.weights=" / "w.pth,model=resnet18").write(Results())  # '/' nests
    names = [job.name for job in sweep_jobs(tmp_path)]
    assert names == ["a/0", "a/1", "b/0", "b/1", "c/0"]
    assert [job.name for job in sweep_jobs(tmp_path / "a")] == ["0", "1"]


def test_a_sweep_folder_is_locked_while_a_sweep_runs(tmp_path):
    fd = lock_sweep(tmp_path)
    with pytest.raises(UserError, match="another sweep is writing"):
        lock_sweep(tmp_path)
    os.close(fd)
    os.close(lock_sweep(tmp_path))


@pytest.mark.parametrize("rows, words", [
    ("1,2,1.0,2.0\n99,2,1.0,2.0\n", "not pixels of the 16x16 image"),  # a true x outside the image
    ("1.5,2,1.0,2.0\n", "not pixels"),
    ("nan,2,1.0,2.0\n", "not pixels"),
    ("1,2,3\n", "not a table of 4 columns"),
    ("a,b,c,d\n", "unreadable"),
])
def test_planted_predictions_are_refused_with_a_reason(tmp_path, rows, words):
    folder = RunFolder(tmp_path)
    folder.predictions_file.write_text("x_true,y_true,x_pred,y_pred\n" + rows)
    table, problem = folder.read_predictions(16, 16)
    assert table is None and words in problem


def test_predictions_need_a_sane_image_size(tmp_path):
    folder = RunFolder(tmp_path)
    folder.predictions_file.write_text("x_true,y_true,x_pred,y_pred\n1,2,1.5,2.5\n")
    assert folder.read_predictions(16, 16)[0].tolist() == [[1, 2, 1.5, 2.5]]
    for size in ((10**9, 16), ("16", 16), (None, 16), (True, 16)):
        assert folder.read_predictions(*size)[0] is None


def test_hydra_values_of_the_wrong_type_are_dropped(tmp_path):
    folder = RunFolder(tmp_path)
    folder.hydra_dir.mkdir()
    folder.config_file.write_text("model:\n  lr: fast\ntrainer:\n  max_epochs: 3\nseed: [1]\ndata:\n  height: 8\n")
    assert folder.read_hydra() == {"max_epochs": 3, "data": {"height": 8}}


def test_a_failed_write_leaves_the_old_record_and_no_temporary(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path)
    folder.write(Results(status=OK, test={"euclid_px": 1.0}))

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        folder.write(Results(status="failed"))
    assert folder.read().status == OK and not list(tmp_path.glob(".*.tmp"))


def test_a_job_folder_name_of_many_overrides_is_cut_to_what_a_file_system_accepts():
    from pixel_spotter.run_folder.layout import MAX_NAME_BYTES, short_name

    assert short_name("model=cnn,trainer.max_epochs=2") == "model=cnn,trainer.max_epochs=2"
    long_a, long_b = "a=" + "x" * 300 + ",b=1", "a=" + "x" * 300 + ",b=2"
    cut_a, cut_b = short_name(long_a), short_name(long_b)
    assert len(cut_a.encode()) <= MAX_NAME_BYTES and cut_a != cut_b  # distinct overrides: distinct folders
    assert cut_a.startswith("a=xxx") and short_name(long_a) == cut_a  # the same overrides: the same folder
    # a '/' in a value nests folders: each part is cut on its own; multi-byte characters are never split
    nested = short_name("w=/data/" + "é" * 200 + "/net.pth")
    assert [len(p.encode()) <= MAX_NAME_BYTES for p in nested.split("/")] == [True] * 4
    assert nested.split("/")[:2] == ["w=", "data"] and nested.endswith("/net.pth")


def test_a_write_removes_the_temporaries_of_killed_writers_and_keeps_a_live_ones(tmp_path):
    import os
    import subprocess
    import sys

    from pixel_spotter.run_folder import atomic_write

    target = tmp_path / "table.csv"
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    old_dead, fresh_dead = target.with_name(f".table.csv.{gone}.tmp"), target.with_name(f".table.csv.{gone}9.tmp")
    live, other = target.with_name(f".table.csv.{os.getppid()}.tmp"), tmp_path / f".other.csv.{gone}.tmp"
    for path in (old_dead, fresh_dead, live, other):
        path.write_text("half")
    for path in (old_dead, live, other):
        os.utime(path, (1, 1))  # untouched for decades
    atomic_write(target, "whole\n")
    assert target.read_text() == "whole\n" and not old_dead.exists()
    # a dead pid's fresh file may be a live writer's on another machine; a live process's, and another
    # target's, are not this write's to remove
    assert fresh_dead.exists() and live.exists() and other.exists()
