"""Epoch sweeps that train once: jobs that differ only in trainer.max_epochs train the longest, and the shorter
ones start from its snapshots, with records, checkpoints and curves equal to separately trained jobs'."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, TINY
from omegaconf import OmegaConf

from pixel_spotter.report.cli import make_report
from pixel_spotter.run_folder import RunFolder, find_runs
from pixel_spotter.run_folder.layout import SHARED
from pixel_spotter.sweeps.shared_prefix import _cannot_share, plan
from pixel_spotter.training.compose import compose
from pixel_spotter.training.prefix_snapshots import adopt


def _plain(overrides):
    return OmegaConf.create({"trainer": {"max_epochs": 1}, "model": {"lr": 0.1}})


def test_jobs_that_differ_only_in_their_budget_train_the_longest_once():
    jobs = [(0, ["model=cnn", "trainer.max_epochs=16"]), (1, ["model=cnn", "trainer.max_epochs=64"]),
            (2, ["model=cnn", "trainer.max_epochs=32"]), (3, ["model=resnet18", "trainer.max_epochs=16"]),
            (4, ["model=heatmap"])]
    shared = plan(jobs, _plain)
    assert shared.first == [(1, ["model=cnn", "trainer.max_epochs=64", "share.snapshot_epochs=[16,32]"]),
                            (3, ["model=resnet18", "trainer.max_epochs=16"]), (4, ["model=heatmap"])]
    assert shared.then == [(0, ["model=cnn", "trainer.max_epochs=16", "share.from_job=1"]),
                           (2, ["model=cnn", "trainer.max_epochs=32", "share.from_job=1"])]
    assert shared.separate == []
    # for a launcher that runs a group as one job (submitit): the long job, then those that start from it
    assert shared.chains() == [[shared.first[0], *shared.then], [shared.first[1]], [shared.first[2]]]


def test_the_longest_jobs_are_numbered_first_so_each_phase_is_consecutive():
    from pixel_spotter.run_folder.jobs import launch_order

    grid = [["model=cnn", "trainer.max_epochs=16"], ["model=cnn", "trainer.max_epochs=64"], ["model=heatmap"],
            ["model=resnet18", "trainer.max_epochs=16"], ["model=resnet18", "trainer.max_epochs=64"]]
    assert launch_order(grid) == [grid[1], grid[2], grid[4], grid[0], grid[3]]


def test_the_same_budget_twice_is_not_shared():
    jobs = [(0, ["seed=0", "trainer.max_epochs=2"]), (1, ["seed=0", "trainer.max_epochs=2"])]
    shared = plan(jobs, _plain)
    assert shared.first == jobs and shared.then == []


def test_a_config_that_follows_the_budget_trains_each_job_separately(tmp_path):
    cosine = compose(*TINY, "scheduler=cosine", output_dir=tmp_path)
    assert "scheduler.T_max follows trainer.max_epochs" in _cannot_share(cosine)
    assert "max_steps also bounds" in _cannot_share(compose(*TINY, "+trainer.max_steps=5", output_dir=tmp_path))
    assert _cannot_share(compose(*TINY, "scheduler=plateau", "callbacks=early_stopping", output_dir=tmp_path)) is None
    jobs = [(0, ["trainer.max_epochs=1"]), (1, ["trainer.max_epochs=2"])]
    shared = plan(jobs, lambda overrides: cosine)
    assert shared.first == jobs and shared.then == [] and "jobs 0, 1: scheduler.T_max" in shared.separate[0]


def test_a_job_without_its_snapshot_trains_separately(tmp_path):
    cfg = compose(*TINY, "share.from_job=5", output_dir=tmp_path / "job")
    assert adopt(cfg, RunFolder(tmp_path / "job"), tmp_path) is None
    (tmp_path / SHARED / "5" / "epochs-1").mkdir(parents=True)  # killed before it was complete
    assert adopt(cfg, RunFolder(tmp_path / "job"), tmp_path) is None


def _sweep(folder, *overrides):
    tiny = [o for o in TINY if not o.startswith("trainer.max_epochs=")]
    return subprocess.run([sys.executable, "train.py", "-m", "trainer.max_epochs=1,2,3", *tiny, "model=cnn",
                           *overrides, f"hydra.sweep.dir={folder}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def _records(folder):
    return {json.loads((run / "results.json").read_text())["max_epochs"]: run for run in find_runs(folder)}


@pytest.mark.slow
def test_shared_jobs_equal_separately_trained_ones(tmp_path):
    shared, separate = tmp_path / "shared", tmp_path / "separate"
    done = _sweep(shared)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 job(s) take their epochs from a longer job" in done.stdout + done.stderr
    assert _sweep(separate, "share.epochs=false").returncode == 0
    assert not (shared / SHARED).exists()  # every snapshot was taken by its job
    mine, theirs = _records(shared), _records(separate)
    for budget in (1, 2, 3):
        a, b = RunFolder(mine[budget]).read(), RunFolder(theirs[budget]).read()
        assert a.ok and b.ok and a.epochs_run == b.epochs_run == budget
        assert a.test == b.test and a.best_val == b.best_val  # the CNN has dropout: the random state travelled
        assert a.best_checkpoint == b.best_checkpoint and RunFolder(mine[budget]).best_checkpoint().is_file()
        assert a.shared_from == (None if budget == 3 else 0) and b.shared_from is None  # job 0 trains 3 epochs
        curves, _ = RunFolder(mine[budget]).read_curves()
        expected, _ = RunFolder(theirs[budget]).read_curves()
        assert set(curves) == set(expected)
        for tag, (epochs, values) in expected.items():
            assert list(curves[tag][0]) == list(epochs) and np.allclose(curves[tag][1], values), tag
        assert (mine[budget] / "predictions.csv").read_text() == (theirs[budget] / "predictions.csv").read_text()

    text = make_report([shared], out=tmp_path / "report")["md"].read_text()
    assert "2 runs are the first epochs of a longer run of the same settings" in text and "share." not in text

    before = {run: (run / "results.json").stat().st_mtime_ns for run in mine.values()}
    again = _sweep(shared, "resume=true")
    assert again.returncode == 0 and "3 jobs, 3 ok" in again.stdout
    assert {run: (run / "results.json").stat().st_mtime_ns for run in mine.values()} == before


@pytest.mark.slow
def test_a_job_killed_in_the_test_of_an_early_stopped_snapshot_resumes_without_training_on(tmp_path):
    import os
    import signal

    # early stopping ends the 4-epoch job 0 after epoch 2 (no later epoch improves by 1e9); the 3-epoch job 1
    # adopts that snapshot and is killed during its test. Resumed, it must test the 2 epochs, not train a third
    # (its restored early-stopping state alone would let it train one more before stopping again).
    sweep = tmp_path / "sweep"
    tiny = [o for o in TINY if not o.startswith("trainer.max_epochs=")]
    cmd = [sys.executable, "train.py", "-m", "trainer.max_epochs=3,4", *tiny, "model=cnn", "callbacks=early_stopping",
           "callbacks.early_stopping.patience=1", "+callbacks.early_stopping.min_delta=1e9",
           "+callbacks.crash._target_=crash_callback.KillAt", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "PIXEL_SPOTTER_TEST_KILL": "1:test:0"}
    killed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    runs = _records(sweep)
    assert RunFolder(runs[3]).read().status == "interrupted"
    env.pop("PIXEL_SPOTTER_TEST_KILL")
    again = subprocess.run([*cmd, "resume=true"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    long, short = RunFolder(runs[4]).read(), RunFolder(runs[3]).read()
    assert long.ok and short.ok and long.epochs_run == short.epochs_run == 2
    assert short.shared_from == 0 and short.resumed_from == "checkpoints/last.ckpt"
    assert short.test == long.test and short.best_val == long.best_val  # the same 2 epochs, the same best
