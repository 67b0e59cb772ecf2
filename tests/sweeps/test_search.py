"""Parallel sweeps (hydra/launcher=parallel) and hyperparameter search (hparams_search=optuna): the value a job
returns, threads per job, and real sweeps as subprocesses. The launcher plugins and Optuna come with the sweep
extra (EXTRAS=test,sweep make setup); without it the tests that need one are skipped, saying so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY

from pixel_spotter.errors import ConfigError
from pixel_spotter.sweeps.launchers import cores, jobs_at_once, threads_per_job
from pixel_spotter.sweeps.search import direction
from pixel_spotter.training.validation import validate


def _joblib():
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher",
                        reason="hydra/launcher=parallel needs the sweep extra: EXTRAS=test,sweep make setup")


def _optuna():
    return pytest.importorskip("optuna",
                               reason="hparams_search=optuna needs the sweep extra: EXTRAS=test,sweep make setup")


def test_main_returns_the_best_validation_value(make_cfg, tmp_path):
    from pixel_spotter.training.run import main

    value = main(make_cfg())
    record = json.loads((tmp_path / "results.json").read_text())
    assert isinstance(value, float) and value == record["best_val"]["euclid_px"]
    assert value != record["test"]["euclid_px"]  # validation, never test


def test_main_returns_the_named_metric(make_cfg, tmp_path):
    from pixel_spotter.training.run import main

    value = main(make_cfg("optimized_metric=val/exact_acc"))
    assert value == json.loads((tmp_path / "results.json").read_text())["best_val"]["exact_acc"]


def test_val_loss_is_optimizable_and_is_the_loss_the_best_epoch_logged(make_cfg, tmp_path):
    import csv

    from pixel_spotter.training.run import main

    value = main(make_cfg("optimized_metric=val/loss"))
    record = json.loads((tmp_path / "results.json").read_text())
    assert value == record["best_val"]["loss"]  # returned = recorded (one owner)
    # one epoch: the best checkpoint is that epoch, so its recorded loss is the val/loss Lightning logged then
    logged = [float(r["val/loss"]) for r in csv.DictReader((tmp_path / "csv" / "metrics.csv").open()) if r["val/loss"]]
    assert len(logged) == 1 and value == pytest.approx(logged[0], rel=1e-5)


@pytest.mark.parametrize("metric", ["test/euclid_px", "test/loss", "val/nope", "euclid_px", "loss"])
def test_optimized_metric_must_be_a_recorded_validation_metric(make_cfg, metric):
    with pytest.raises(ConfigError, match="optimized_metric") as err:
        validate(make_cfg(f"optimized_metric={metric}"))
    assert "\n" not in str(err.value) and "val/loss" in str(err.value)  # one line naming the choices


def test_direction_follows_the_metric():
    assert direction("val/euclid_px") == "minimize" and direction("val/loss") == "minimize"
    assert direction("val/exact_acc") == "maximize" and direction("val/within1_acc") == "maximize"


@pytest.mark.parametrize("metric, directions, problem", [
    ("val/exact_acc", ["minimize"], "set it to maximize"),
    ("val/loss", ["MAXIMIZE"], "set it to minimize"),
    ("val/euclid_px", ["minimize", "minimize"], "contradicts"),  # a search optimizes one metric
    ("test/euclid_px", ["minimize"], "never optimizes a test metric"),
])
def test_a_direction_against_the_metric_is_refused(metric, directions, problem):
    from pixel_spotter.sweeps.search import check_search

    with pytest.raises(ConfigError, match=problem):
        check_search(metric, directions)
    check_search("val/exact_acc", ["maximize"])
    check_search("val/loss", ["MINIMIZE"])  # Optuna's enum names


def test_sampler_seed_goes_on_from_the_trials_a_study_holds(tmp_path):
    import sqlite3

    from pixel_spotter.sweeps.search import sampler_seed, trials_held

    db = tmp_path / "optuna.db"
    url = f"sqlite:///{db}"
    assert sampler_seed(7, url, "s") == 7 and not db.exists()  # a new study; asking never creates the file
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE studies (study_id INTEGER, study_name TEXT)")
        con.execute("CREATE TABLE trials (trial_id INTEGER, study_id INTEGER)")
        con.executemany("INSERT INTO studies VALUES (?, ?)", [(1, "s"), (2, "other")])
        con.executemany("INSERT INTO trials VALUES (?, ?)", [(1, 1), (2, 1), (3, 2)])
    con.close()
    assert sampler_seed(7, url, "s") == 9 and sampler_seed(7, url, "new") == 7
    assert trials_held(url, "other") == 1 and trials_held(None, "s") == 0
    (tmp_path / "junk.db").write_text("not a database")
    assert sampler_seed(7, f"sqlite:///{tmp_path / 'junk.db'}", "s") == 7


def test_rerun_command_keeps_what_the_trial_trained_with():
    from pixel_spotter.sweeps.search import rerun_command

    overrides = ["model.lr=0.0031", "data.batch_size=32", "hparams_search=optuna", "model=cnn", "resume=true",
                 "optimized_metric=val/loss", "hydra.sweeper.n_trials=3", "model.net.weights=/a b.pth"]
    assert rerun_command(overrides) == ("python train.py model.lr=0.0031 data.batch_size=32 model=cnn "
                                        "'model.net.weights=/a b.pth'")


def test_threads_per_job_default_and_override(make_cfg):
    cfg = make_cfg()
    assert jobs_at_once() is None and threads_per_job(cfg) is None  # basic launcher: torch's default
    assert threads_per_job(make_cfg("threads_per_job=3")) == 3
    with pytest.raises(ConfigError, match="threads_per_job"):
        validate(make_cfg("threads_per_job=0"))


def test_parallel_launcher_shares_the_cores(make_cfg):
    _joblib()
    cfg = make_cfg("hydra/launcher=parallel", "hydra.launcher.n_jobs=2")
    assert jobs_at_once() == 2 and threads_per_job(cfg) == max(1, cores() // 2)
    assert threads_per_job(make_cfg("hydra/launcher=parallel", "threads_per_job=1")) == 1


def test_optuna_config_composes(make_cfg, tmp_path):
    _optuna()
    from pixel_spotter.run_folder import STUDY

    cfg = make_cfg("hparams_search=optuna", "optimized_metric=val/within1_acc", f"hydra.sweep.dir={tmp_path}")
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize" and sweeper.sampler.seed == cfg.seed
    assert sweeper.storage == f"sqlite:///{tmp_path / STUDY}"  # the file name comes from run_folder/layout.py
    assert sweeper._target_.endswith("OptunaSearch") and set(sweeper.params) == {"model.lr", "data.batch_size"}
    assert make_cfg("hparams_search=optuna", "optimized_metric=val/loss").hydra.sweeper.direction == "minimize"
    assert not [p.name for p in (ROOT / "conf").rglob("*.yaml") if STUDY in p.read_text()]  # named once


def test_a_search_sweep_is_told_by_its_recorded_config(make_cfg, tmp_path):
    _optuna()
    from pixel_spotter.run_folder import save_sweep_config, search_of

    save_sweep_config(make_cfg("hparams_search=optuna", "optimized_metric=val/exact_acc",
                               f"hydra.sweep.dir={tmp_path / 'search'}"))
    search = search_of(tmp_path / "search")
    assert search.metric == "val/exact_acc" and search.params == ("model.lr", "data.batch_size")
    save_sweep_config(make_cfg("model=cnn", f"hydra.sweep.dir={tmp_path / 'grid'}"))
    assert search_of(tmp_path / "grid") is None and search_of(tmp_path / "nothing") is None


def _trial(job: int, lr: str, acc: float | None, test_px: float, status: str = "ok"):
    from pixel_spotter.report.load import Run

    record = {"status": status, "model": "cnn", "lr": float(lr), "data": {"height": 16, "width": 16},
              "overrides": [f"model.lr={lr}", "data.batch_size=32", "hparams_search=optuna", "model=cnn",
                            "optimized_metric=val/exact_acc"],
              "best_val": {} if acc is None else {"exact_acc": acc, "euclid_px": 9.0}}
    if status == "ok":
        record["test"] = {"euclid_px": test_px, "exact_acc": 0.1, "within1_acc": 0.2}
    return Run(path=Path(f"/s/{job}_x"), id=str(job), record=record)


def test_the_report_ranks_a_search_by_its_validation_metric_in_its_direction(tmp_path):
    from pixel_spotter.report import analyze, render
    from pixel_spotter.run_folder import Search

    search = Search(metric="val/exact_acc", params=("model.lr", "data.batch_size"), study=tmp_path / "optuna.db")
    runs = [_trial(0, "0.01", 0.25, 3.0), _trial(1, "0.002", None, 0.0, status="failed"),
            _trial(2, "0.004", 0.75, 5.0), _trial(3, "0.03", 0.5, 1.0)]
    for run in runs:
        run.search = search
    a = analyze(runs)
    (ranking,) = a.searches
    # maximized: the highest validation accuracy first, whatever the test error says (run 3 is best on test)
    assert [(t.rank, t.entry.id, t.value) for t in ranking.trials] == [
        (1, "2", 0.75), (2, "3", 0.5), (3, "0", 0.25), (None, "1", None)]
    assert a.overall.id == "3" and ranking.best.params == {"model.lr": "0.004", "data.batch_size": "32"}
    assert ranking.command == "python train.py model.lr=0.004 data.batch_size=32 model=cnn"
    table = render.search_table(ranking)
    assert table.headers == ["rank", "trial (job)", "status", "val/exact_acc", "model.lr", "data.batch_size"]
    assert table.rows[0][:4] == ["1", "2", "ok", "75.0%"] and table.rows[-1][0] == "—"
    assert table.rows[-1][2].startswith("failed")
    out = tmp_path / "report"
    out.mkdir()
    markdown = (render.write(a, [tmp_path], [], out)["md"]).read_text()
    assert f"```bash\n{ranking.command}\n```" in markdown and "**Best trial** `#2`" in markdown
    assert analyze([_trial(0, "0.01", 0.25, 3.0)]).searches == []  # a plain sweep: no search section


def _sweep(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", "-m", *overrides, *TINY, f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )


def _records(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))}


@pytest.mark.slow
def test_parallel_sweep_runs_both_jobs_with_their_share_of_threads(tmp_path):
    _joblib()
    proc = _sweep(tmp_path, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "model=cnn,heatmap",
                  "data.num_workers=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 jobs, 2 ok, 0 not ok" in proc.stdout  # the summary, printed by the parent process
    records = _records(tmp_path)
    assert len(records) == 2 and all(r["status"] == "ok" for r in records.values())
    assert {r["hardware"]["torch_threads"] for r in records.values()} == {max(1, cores() // 2)}
    assert {r["data"]["num_workers"] for r in records.values()} == {0}  # forced, and recorded as run
    logs = "".join(p.read_text() for p in tmp_path.glob("*/*.log"))
    assert logs.count("data.num_workers=2 -> 0") == 2


def _study(sweep: Path):
    import optuna

    return optuna.load_study(study_name="pixel-spotter", storage=f"sqlite:///{sweep}/optuna.db")


def _trial_params(study) -> list[dict]:
    return [t.params for t in sorted(study.trials, key=lambda t: t.number)]


def _job_numbers(sweep: Path) -> dict[int, dict]:
    """Job number (from the folder name) -> that job's record."""
    return {int(name.split("_", 1)[0]): record for name, record in _records(sweep).items()}


@pytest.mark.slow
def test_optuna_study_best_is_the_best_validation_record_reproducible_and_resumable(tmp_path):
    _optuna()
    from pixel_spotter.report import analyze, collect

    search = ["hparams_search=optuna", "model=cnn", "hydra.sweeper.n_trials=2"]
    first, second = tmp_path / "a", tmp_path / "b"
    proc = _sweep(first, *search)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 jobs, 2 ok, 0 not ok" in proc.stdout
    values = [r["best_val"]["euclid_px"] for r in _records(first).values()]
    study = _study(first)
    assert len(values) == 2 and study.best_value == min(values)  # what the jobs returned: validation values
    assert sorted(t.value for t in study.trials) == sorted(values)
    params = _trial_params(study)

    proc = _sweep(second, *search)  # same sampler seed (seed=0): the same trials
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _trial_params(_study(second)) == params

    proc = _sweep(first, *search)  # a used sweep folder needs resume=true
    assert proc.returncode != 0 and "resume=true" in proc.stderr
    proc = _sweep(first, *search, "resume=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = _study(first)
    assert len(resumed.trials) == 4 and _trial_params(resumed)[:2] == params  # added to, not started over
    assert all(p not in params for p in _trial_params(resumed)[2:])  # new trials, not the first ones again
    # job numbers go on from the study's trials: four folders 0..3, trial N ran as job N with its values
    jobs = _job_numbers(first)
    assert sorted(jobs) == [0, 1, 2, 3] and "4 jobs, 4 ok" in proc.stdout
    for trial in resumed.trials:
        record = jobs[trial.number]
        assert record["job_num"] == trial.number and trial.value == record["best_val"]["euclid_px"]
        assert f"data.batch_size={trial.params['data.batch_size']}" in record["overrides"]

    # the report ranks the same trials by the same numbers, and names the study's best trial
    (ranking,) = analyze(collect([first])).searches
    assert [t.value for t in ranking.trials] == sorted(t.value for t in resumed.trials)
    assert ranking.best.entry.id == str(resumed.best_trial.number) and ranking.best.value == resumed.best_value
    lr = resumed.best_trial.params["model.lr"]
    assert ranking.command.startswith("python train.py ") and f"model.lr={lr}" in ranking.command.split()
    assert "resume=true" not in ranking.command and "hparams_search=optuna" not in ranking.command


@pytest.mark.slow
def test_a_failing_trial_is_recorded_failed_and_the_search_goes_on(tmp_path):
    optuna = _optuna()
    # model.lr=-1 fails validation; with seed=0 the sampler proposes both values within 4 trials
    proc = _sweep(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=4", "model.lr=choice(-1,0.001)",
                  "data.batch_size=32")
    assert proc.returncode == 1, proc.stderr[-3000:]  # the summary fails the sweep: not every job is ok
    assert "4 jobs," in proc.stdout and "model.lr must be" in proc.stdout
    trials = _study(tmp_path).trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 4 and failed and complete
    assert {t.params["model.lr"] for t in failed} == {-1} and {t.params["model.lr"] for t in complete} == {0.001}
    records = _records(tmp_path)
    assert sorted(r["status"] for r in records.values()).count("failed") == len(failed)


@pytest.mark.slow
def test_a_search_where_every_trial_fails_ends_with_the_summary(tmp_path):
    optuna = _optuna()
    from pixel_spotter.report import analyze, collect

    proc = _sweep(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=2", "model.lr=choice(-1,-2)")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Record does not exist" not in proc.stderr
    summary = proc.stdout[proc.stdout.index("sweep: 2 jobs, 0 ok, 2 not ok"):].splitlines()
    assert sum(line.startswith("  failed") and "model.lr must be" in line for line in summary) == 2
    trials = _study(tmp_path).trials
    assert len(trials) == 2 and {t.state for t in trials} == {optuna.trial.TrialState.FAIL}
    (ranking,) = analyze(collect([tmp_path])).searches  # the report: nothing ranked, no best, no command
    assert ranking.best is None and ranking.command is None and [t.rank for t in ranking.trials] == [None, None]


@pytest.mark.slow
def test_a_direction_against_the_metric_stops_the_search_before_any_trial(tmp_path):
    _optuna()
    proc = _sweep(tmp_path, "hparams_search=optuna", "optimized_metric=val/exact_acc",
                  "hydra.sweeper.direction=minimize")
    assert proc.returncode == 1 and not _records(tmp_path)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: hydra.sweeper.direction=minimize contradicts optimized_metric=val/exact_acc")


def test_a_missing_plugin_is_named_with_its_install(monkeypatch):
    import importlib.util

    from pixel_spotter.sweeps import launchers

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    message = launchers.missing_extra(["-m", "hparams_search=optuna", "model=cnn"])
    assert message.startswith("error: hparams_search=optuna needs the optional 'sweep' extra") and "\n" not in message
    assert launchers.missing_extra(["-m", "model=cnn"]) is None
