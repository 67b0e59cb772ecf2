"""Sweeps under faults end in the sweep summary (exit 1) or in one `error: ...` line, never a traceback: a killed
submitit job, a search's study file damaged, missing or belonging to another search on resume, and a trial whose
job was killed (run again by the resume). The launcher plugins and Optuna come with the sweep extra
(EXTRAS=test,sweep make setup)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import STUDY, Results, RunFolder, find_runs, job_name

NO_EXTRA = "needs the sweep extra: EXTRAS=test,sweep make setup"
KILL = "+callbacks.crash._target_=crash_callback.KillAt"  # tests/crash_callback.py, armed by PIXEL_SPOTTER_TEST_KILL


def _optuna():
    return pytest.importorskip("optuna", reason=f"hparams_search=optuna {NO_EXTRA}")


def _submitit():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason=f"hydra/launcher=submitit_local {NO_EXTRA}")


def _sweep(sweep: Path, *overrides: str, kill: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    env.pop("PIXEL_SPOTTER_TEST_KILL", None)
    if kill:
        env["PIXEL_SPOTTER_TEST_KILL"] = kill  # SIGKILL at <job>:<epoch>:<batch>
    return subprocess.run([sys.executable, "train.py", "-m", *overrides, *TINY, f"hydra.sweep.dir={sweep}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _statuses(sweep: Path) -> dict[int, str]:
    return {int(job_name(run, sweep)): RunFolder(run).read().status for run in find_runs(sweep)}


def _summary(proc) -> list[str]:
    """The summary's per-job lines (after its 'sweep: N jobs' line)."""
    return proc.stdout[proc.stdout.index("\nsweep: ") + 1:].splitlines()[1:]


def _study(sweep: Path):
    import optuna

    return optuna.load_study(study_name="pixel-spotter", storage=f"sqlite:///{sweep / STUDY}")


def _job(sweep: Path, name: str, record: Results) -> None:
    folder = RunFolder(sweep / name)
    folder.path.mkdir(parents=True)
    folder.write(record)


# -- a killed job under submitit


def test_a_submitit_job_without_a_result_returns_none_instead_of_raising(tmp_path):
    _submitit()
    from hydra.core.utils import JobStatus
    from submitit.core.utils import UncompletedJobError

    from pixel_spotter.sweeps.launchers import _submitit_result

    class Killed:
        paths = type("Paths", (), {"stderr": tmp_path / "0_log.err"})

        def results(self):
            raise UncompletedJobError("Job 1 (task: 0) has not produced any output (state: FINISHED)")

    ret = _submitit_result(Killed(), 3, ["model=cnn"])
    assert ret.status == JobStatus.COMPLETED and ret.return_value is None and ret.overrides == ["model=cnn"]


@pytest.mark.slow
def test_a_killed_submitit_job_ends_in_the_summary_and_a_resume_runs_it_again(tmp_path):
    _submitit()
    args = ["hydra/launcher=submitit_local", "model=cnn", "model.lr=0.001,0.002", KILL]
    proc = _sweep(tmp_path, *args, kill="0:0:1")  # job 0's process dies as if OOM-killed
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "job 0 stopped without a result" in proc.stdout  # the launcher's log line
    summary = _summary(proc)
    assert [line.split()[0] for line in summary[:2]] == ["interrupted", "ok"]  # the other job ran to its end
    assert "resume=true" in summary[0] and _statuses(tmp_path) == {0: "interrupted", 1: "ok"}
    resumed = _sweep(tmp_path, *args, "resume=true")  # what the summary advises
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "2 jobs, 2 ok, 0 not ok" in resumed.stdout and _statuses(tmp_path) == {0: "ok", 1: "ok"}


# -- a search's study on resume


def test_a_damaged_study_file_is_one_line_naming_it(tmp_path):
    _optuna()
    from pixel_spotter.sweeps.study import open_study

    (tmp_path / STUDY).write_bytes(os.urandom(2048))
    with pytest.raises(UserError, match="cannot be read") as err:
        open_study(f"sqlite:///{tmp_path / STUDY}", "pixel-spotter", tmp_path)
    message = str(err.value)
    assert str(tmp_path / STUDY) in message and "new folder" in message and "\n" not in message


def test_a_missing_study_is_refused_only_while_its_jobs_remain(tmp_path):
    _optuna()
    from pixel_spotter.sweeps.study import open_study

    url = f"sqlite:///{tmp_path / STUDY}"
    assert open_study(url, "pixel-spotter", tmp_path) is None and not (tmp_path / STUDY).exists()  # a new search
    _job(tmp_path, "0_model.lr=0.01", Results(status="ok"))
    with pytest.raises(UserError, match="is missing, but .* holds 1 job folder") as err:
        open_study(url, "pixel-spotter", tmp_path)  # a new study would number its trials over job 0
    assert "put the study file back" in str(err.value)


def test_a_study_under_another_name_is_refused_naming_the_one_the_file_holds(tmp_path):
    optuna = _optuna()
    from pixel_spotter.sweeps.study import open_study

    url = f"sqlite:///{tmp_path / STUDY}"
    optuna.create_study(study_name="pixel-spotter", storage=url)
    _job(tmp_path, "0_model.lr=0.01", Results(status="ok"))
    assert open_study(url, "pixel-spotter", tmp_path).study_name == "pixel-spotter"
    with pytest.raises(UserError, match="holds no study 'other'.*hydra.sweeper.study_name=pixel-spotter"):
        open_study(url, "other", tmp_path)


def _held_study(optuna, user_attrs: dict):
    study = optuna.create_study(direction="minimize")
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)  # what tag(log, interval(...)) searches
    study.add_trial(optuna.trial.create_trial(params={"model.lr": 0.01}, distributions={"model.lr": lr},
                                              value=3.0, user_attrs=user_attrs))
    return study, {"model.lr": lr}


def test_a_resume_must_search_what_the_study_searched(make_cfg, tmp_path):
    optuna = _optuna()
    from pixel_spotter.run_folder import save_sweep_config
    from pixel_spotter.sweeps.study import check_same_search

    save_sweep_config(make_cfg("hparams_search=optuna", f"hydra.sweep.dir={tmp_path}"))  # optimized val/euclid_px
    study, space = _held_study(optuna, {"model": "cnn"})
    check_same_search(study, "val/euclid_px", space, {"model": "cnn", "resume": "true"}, tmp_path)  # the same
    categorical = optuna.distributions.CategoricalDistribution
    problems = [  # (metric, space, fixed overrides) of the resumed command -> what the one line must say
        ("val/exact_acc", space, {"model": "cnn"},
         "optimizes optimized_metric=val/euclid_px, but this command has optimized_metric=val/exact_acc"),
        ("val/rmse_px", space, {"model": "cnn"}, "resume with optimized_metric=val/euclid_px"),  # same direction
        ("val/euclid_px", {"model.lr": categorical([0.1, 0.2])}, {"model": "cnn"}, "another space"),
        ("val/euclid_px", {**space, "data.batch_size": categorical([16])}, {"model": "cnn"},
         "data.batch_size: not searched ->"),
        ("val/euclid_px", space, {"model": "heatmap"}, "now model=heatmap, was model=cnn"),
    ]
    for metric, other_space, fixed, expected in problems:
        with pytest.raises(UserError, match="new folder") as err:
            check_same_search(study, metric, other_space, fixed, tmp_path)
        assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def one_trial_search(tmp_path_factory):
    _optuna()
    sweep = tmp_path_factory.mktemp("search") / "sweep"
    proc = _sweep(sweep, "hparams_search=optuna", "model=cnn", "hydra.sweeper.n_trials=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep


def _damage(sweep: Path) -> None:
    (sweep / STUDY).write_bytes(os.urandom(4096))


@pytest.mark.slow
@pytest.mark.parametrize("change, overrides, expected", [
    (_damage, [], "optuna.db cannot be read (DatabaseError: file is not a database)"),
    (lambda sweep: (sweep / STUDY).unlink(), [], "optuna.db is missing"),
    (None, ["optimized_metric=val/exact_acc"], "but this command has optimized_metric=val/exact_acc"),
    (None, ["hydra.sweeper.study_name=other"], "holds no study 'other'"),
    (None, ["model.lr=choice(0.1,0.2)"], "another space"),
    (None, ["model=heatmap"], "now model=heatmap, was model=cnn"),
], ids=["damaged", "missing", "other-metric", "other-name", "other-space", "other-overrides"])
def test_a_resume_with_a_broken_or_other_study_is_one_line(one_trial_search, tmp_path, change, overrides, expected):
    sweep = tmp_path / "sweep"
    shutil.copytree(one_trial_search, sweep)
    if change:
        change(sweep)
    before = {p.name: p.read_bytes() for p in sweep.iterdir() if p.is_file() and p.name != "sweep.lock"}
    proc = _sweep(sweep, "hparams_search=optuna", "model=cnn", "hydra.sweeper.n_trials=1", "resume=true", *overrides)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last and "hydra.sweep.dir" in last  # the fix: a new folder
    assert "sweep: " not in proc.stdout and len(find_runs(sweep)) == 1  # refused before any trial
    assert {p.name: p.read_bytes() for p in sweep.iterdir() if p.is_file() and p.name != "sweep.lock"} == before


# -- a killed trial


def test_a_batch_with_a_killed_job_stops_the_search_before_the_study_is_told(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    from pixel_spotter.sweeps.study import JobsKilled, StopWhenKilled

    class Launcher:
        def launch(self, job_overrides, initial_job_idx):
            return [JobReturn(overrides=list(o), status=JobStatus.COMPLETED, _return_value=None) for o in job_overrides]

    _job(tmp_path, "0_model.lr=0.01", Results(status="ok"))
    _job(tmp_path, "1_model.lr=0.02", Results())  # 'running', and nobody holds its lock: killed
    launcher = StopWhenKilled(Launcher(), tmp_path)
    assert len(launcher.launch([["model.lr=0.01"]], initial_job_idx=0)) == 1
    with pytest.raises(JobsKilled) as err:
        launcher.launch([["model.lr=0.01"], ["model.lr=0.02"]], initial_job_idx=0)
    assert err.value.nums == [1] and len(err.value.returns) == 2  # the batch's returns, to tell the others


def test_an_unfinished_trial_runs_again_as_its_own_job_resuming():
    optuna = _optuna()
    from hydra.core.utils import JobReturn, JobStatus

    from pixel_spotter.sweeps.study import rerun_unfinished

    study = optuna.create_study(direction="minimize")
    study.tell(study.ask(), 2.0)
    killed = study.ask()  # stays RUNNING, as when its job was killed
    killed.suggest_float("model.lr", 1e-4, 1e-1, log=True)
    killed.set_user_attr("model", "cnn")
    launched = []

    class Launcher:
        def launch(self, job_overrides, initial_job_idx):
            launched.append((initial_job_idx, list(job_overrides[0])))
            return [JobReturn(overrides=job_overrides[0], status=JobStatus.COMPLETED, _return_value=1.5)]

    rerun_unfinished(study, Launcher())
    assert launched == [(1, [f"model.lr={killed.params['model.lr']}", "model=cnn", "resume=true"])]
    assert [(t.state.name, t.value) for t in study.trials] == [("COMPLETE", 2.0), ("COMPLETE", 1.5)]


@pytest.mark.slow
def test_a_trial_killed_with_the_search_runs_again_on_resume(tmp_path):
    optuna = _optuna()
    search = ["hparams_search=optuna", "model=cnn", KILL]
    proc = _sweep(tmp_path, *search, "hydra.sweeper.n_trials=2", kill="1:0:1")  # the sweep process dies with job 1
    assert proc.returncode == -9
    assert [t.state for t in _study(tmp_path).trials] == [optuna.trial.TrialState.COMPLETE,
                                                          optuna.trial.TrialState.RUNNING]
    assert _statuses(tmp_path) == {0: "ok", 1: "interrupted"}
    resumed = _sweep(tmp_path, *search, "hydra.sweeper.n_trials=1", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "3 jobs, 3 ok, 0 not ok" in resumed.stdout  # job 1 again, then one new trial as job 2
    records = {int(job_name(run, tmp_path)): RunFolder(run).read() for run in find_runs(tmp_path)}
    trials = _study(tmp_path).trials
    assert sorted(records) == [0, 1, 2] and [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert [t.value for t in trials] == [records[t.number].best_val["euclid_px"] for t in trials]


@pytest.mark.slow
def test_a_trial_killed_under_submitit_stops_the_search_with_the_summary(tmp_path):
    optuna = _optuna()
    _submitit()
    proc = _sweep(tmp_path, "hparams_search=optuna", "hydra/launcher=submitit_local", "model=cnn", KILL,
                  "hydra.sweeper.n_trials=2", kill="0:0:1")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert "the search stops here" in proc.stdout and _summary(proc)[0].startswith("  interrupted 0_")
    # left unfinished, not failed: the resume runs it again (test_a_trial_killed_with_the_search_runs_again_on_resume)
    assert [t.state for t in _study(tmp_path).trials] == [optuna.trial.TrialState.RUNNING]
