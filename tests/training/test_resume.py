"""Crashes and collisions as real processes: kill -9 mid-training and resume to the same metrics, a killed
sweep resumed with its job numbers, runs and sweeps started together in their own folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, TINY

from pixel_spotter import report
from pixel_spotter.run_folder import RunFolder

pytestmark = pytest.mark.slow
# 3 epochs of the CNN (it has dropout, so resuming must restore the random state too); the crash callback
# does nothing unless PIXEL_SPOTTER_TEST_KILL names a job, epoch and batch (tests/crash_callback.py).
BASE = [*TINY, "trainer.max_epochs=3", "model=cnn", "+callbacks.crash._target_=crash_callback.KillAt"]


def _train(*args: str, kill: str | None = None, cwd=ROOT, wait: bool = True):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    env.pop("PIXEL_SPOTTER_TEST_KILL", None)
    if kill:
        env["PIXEL_SPOTTER_TEST_KILL"] = kill
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _last_line(proc) -> str:
    return proc.stderr.strip().splitlines()[-1]


def test_a_killed_run_resumes_to_the_metrics_of_an_uninterrupted_one(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = _train(*BASE, f"hydra.run.dir={killed}", kill="run:1:1")  # SIGKILL in epoch 2, batch 2
    assert proc.returncode == -signal.SIGKILL
    assert RunFolder(killed).read().status == "interrupted"

    again = _train(*BASE, f"hydra.run.dir={killed}")
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert _last_line(again).startswith("error:") and "resume=true" in _last_line(again)

    assert _train(*BASE, f"hydra.run.dir={killed}", "resume=true").returncode == 0
    assert _train(*BASE, f"hydra.run.dir={whole}").returncode == 0
    resumed, uninterrupted = RunFolder(killed).read(), RunFolder(whole).read()
    assert resumed.status == uninterrupted.status == "ok"
    assert resumed.resumed_from == "checkpoints/last.ckpt" and uninterrupted.resumed_from is None
    assert resumed.test == uninterrupted.test and resumed.best_val == uninterrupted.best_val
    assert resumed.epochs_run == uninterrupted.epochs_run == 3
    # The CSV log holds both starts: epoch 1 was logged only before the kill (a logger that deleted the file
    # on resume would have lost it), each epoch reads once, and the curves are the uninterrupted run's.
    curves, problem = RunFolder(killed).read_curves()
    whole_curves, _ = RunFolder(whole).read_curves()
    assert problem is None and set(curves) == set(whole_curves) and "val/rmse_px" in curves
    for tag, (epochs, values) in whole_curves.items():
        assert list(curves[tag][0]) == list(epochs) == [1.0, 2.0, 3.0], tag
        assert np.allclose(curves[tag][1], values, rtol=1e-6, atol=0), tag


def test_a_killed_sweep_resumes_with_its_job_numbers(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "model.lr=0.001,0.002,0.003", *BASE, f"hydra.sweep.dir={sweep}"]
    assert _train(*args, kill="1:1:0").returncode == -signal.SIGKILL  # job 1 dies; job 2 never starts

    runs = {run.id: run.status for run in report.collect([sweep])}
    assert runs == {"0": "ok", "1": "interrupted", "2": "not started"}

    refused = _train(*args)
    assert refused.returncode != 0 and "resume=true" in _last_line(refused) and "Traceback" not in refused.stderr

    done = next(sweep.glob("0_*")) / "results.json"
    before = done.stat().st_mtime_ns
    resumed = _train(*args, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "3 jobs, 3 ok, 0 not ok" in resumed.stdout
    assert done.stat().st_mtime_ns == before  # the finished job was skipped, not redone
    assert RunFolder(next(sweep.glob("1_*"))).read().resumed_from == "checkpoints/last.ckpt"
    assert RunFolder(next(sweep.glob("2_*"))).read().resumed_from is None
    assert sorted(run.id for run in report.collect([sweep])) == ["0", "1", "2"]  # one entry per job
    assert len([p for p in sweep.iterdir() if p.is_dir()]) == 3  # three job folders: nothing renumbered


def test_runs_and_sweeps_started_together_get_their_own_folders(tmp_path):
    procs = [_train(*TINY, cwd=tmp_path, wait=False) for _ in range(2)]
    procs += [_train("-m", "model=cnn", *TINY, cwd=tmp_path, wait=False) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    runs, sweeps = list((tmp_path / "outputs").iterdir()), list((tmp_path / "multirun").iterdir())
    assert len(runs) == 2 and len(sweeps) == 2
    for folder in runs + [job for sweep in sweeps for job in sweep.iterdir() if job.is_dir()]:
        assert RunFolder(folder).read().status == "ok"


def test_two_runs_into_one_explicit_folder_cannot_mix(tmp_path):
    shared = tmp_path / "shared"
    procs = [_train(*TINY, f"hydra.run.dir={shared}", f"seed={seed}", wait=False) for seed in (1, 2)]
    outcomes = [(proc.wait(timeout=300), proc.stderr.read()) for proc in procs]
    assert sorted(code for code, _ in outcomes) == [0, 1]
    loser = next(err for code, err in outcomes if code == 1)
    assert loser.strip().splitlines()[-1].startswith("error:") and "Traceback" not in loser
    winner_seed = 1 if outcomes[0][0] == 0 else 2
    record = RunFolder(shared).read()
    assert record.status == "ok" and record.seed == winner_seed  # the record is the winner's, whole
