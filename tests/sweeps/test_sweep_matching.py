"""Sweep jobs are matched by their override set, not their position: a resumed sweep given its values in another
order finds its finished jobs (and skips them), new values get new numbers; and a sweep of too many jobs is
refused in one line, by the sweep and by every reader of a planted sweep folder."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY

from pixel_spotter import report
from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import RunFolder, planned_jobs
from pixel_spotter.run_folder.jobs import MAX_JOBS, expand_sweep, number_jobs, override_set
from pixel_spotter.run_folder.record import Results

FAST = [*TINY, "~logger", "~callbacks.lr_monitor"]


def _job(sweep, num: int, overrides: list[str]) -> None:
    folder = RunFolder(sweep / f"{num}_{','.join(sorted(overrides))}")
    folder.write(Results(status="ok", test={"euclid_px": 1.0}, overrides=overrides))


def test_a_job_keeps_the_number_of_the_folder_that_ran_its_overrides(tmp_path):
    _job(tmp_path, 0, ["model=cnn", "seed=0"])
    _job(tmp_path, 1, ["model=cnn", "seed=1"])
    jobs = [["seed=1", "model=cnn", "resume=true"], ["seed=2", "model=cnn"], ["seed=0", "model=cnn"]]
    assert number_jobs(tmp_path, jobs) == [(1, jobs[0]), (2, jobs[1]), (0, jobs[2])]


def test_new_jobs_never_share_a_number_with_a_folder(tmp_path):
    _job(tmp_path, 0, ["seed=0"])
    _job(tmp_path, 5, ["seed=5"])
    (tmp_path / "3_seed=3").mkdir()  # a folder whose overrides cannot be read still holds its number
    (tmp_path / "3_seed=3" / ".hydra").mkdir()
    numbered = number_jobs(tmp_path, [["seed=7"], ["seed=0"], ["seed=0"], ["seed=8"]])
    assert [num for num, _ in numbered] == [6, 0, 7, 8]  # the same overrides twice: a second, new job


def test_a_new_sweep_is_numbered_as_hydra_numbers_it(tmp_path):
    jobs = expand_sweep(["model=cnn,heatmap", "seed=0,1"])
    assert number_jobs(tmp_path / "new", jobs) == list(enumerate(jobs))


def test_the_order_values_come_in_is_not_part_of_a_job():
    assert override_set(["a=1", "b=2", "hydra.job.num=3"]) == override_set(["resume=true", "b=2", "a=1"])
    assert override_set(["a=1"]) != override_set(["a=2"])


def test_a_huge_sweep_is_refused_before_it_is_expanded():
    started = time.perf_counter()
    with pytest.raises(UserError, match=r"1,000,000,000 jobs, more than the 10,000"):
        expand_sweep(["seed=range(0,1000000000)"])
    with pytest.raises(UserError, match=f"more than the {MAX_JOBS:,}"):
        expand_sweep(["seed=range(0,200)", "model.lr=range(0,1,0.01)"])  # 200 x 100
    assert time.perf_counter() - started < 5  # counted, never listed (listing a billion would take minutes)
    assert len(expand_sweep(["seed=range(0,10)", "x=range(0,1,0.25)", "m=a,b"])) == 80


def test_a_planted_huge_sweep_costs_its_not_started_rows_with_a_warning(tmp_path, capsys):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "    params:\n      seed: range(0,1000000000)\n  overrides:\n    task: []\n")
    _job(tmp_path, 0, ["seed=0"])
    assert planned_jobs(tmp_path) == []
    assert "more than the 10,000" in capsys.readouterr().err
    assert [run.id for run in report.collect([tmp_path])] == ["0"]


def test_train_refuses_a_huge_sweep_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "train.py", "-m", "seed=range(0,1000000000)",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: the sweep has 1,000,000,000 jobs")
    assert not (tmp_path / "sweep").exists()  # refused before the sweep took its folder


@pytest.mark.slow
def test_a_resumed_sweep_in_another_order_skips_its_finished_jobs(tmp_path):
    sweep = tmp_path / "sweep"

    def run_sweep(*overrides):
        return subprocess.run([sys.executable, "train.py", "-m", *overrides, *FAST, f"hydra.sweep.dir={sweep}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)

    assert run_sweep("model.lr=0.001,0.002").returncode == 0
    folders = {p.name: (p / "results.json").stat().st_mtime_ns for p in sweep.glob("*_*")}
    resumed = run_sweep("model.lr=0.003,0.002,0.001", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert {name: (sweep / name / "results.json").stat().st_mtime_ns for name in folders} == folders  # skipped
    runs = {run.id: run.record["overrides"] for run in report.collect([sweep])}
    assert sorted(runs) == ["0", "1", "2"]
    assert "model.lr=0.003" in runs["2"] and "model.lr=0.001" in runs["0"]
    assert "3 jobs, 3 ok" in resumed.stdout


def test_a_job_that_differs_only_in_its_epoch_budget_is_named(tmp_path):
    from pixel_spotter.run_folder.jobs import other_budget

    _job(tmp_path, 0, ["model=cnn", "trainer.max_epochs=3"])
    _job(tmp_path, 1, ["model=heatmap", "trainer.max_epochs=3"])
    jobs = [["model=cnn", "trainer.max_epochs=5"], ["model=heatmap", "trainer.max_epochs=3"], ["model=coordconv"]]
    numbered = number_jobs(tmp_path, jobs)
    assert [num for num, _ in numbered] == [2, 1, 3]
    assert other_budget(tmp_path, numbered) == [(2, 0)]
