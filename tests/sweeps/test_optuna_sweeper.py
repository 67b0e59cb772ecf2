"""Our Optuna sweeper (hydra_plugins/pixel_spotter/optuna_search.py, loop in pixel_spotter/sweeps/optuna_sweeper.py)
driven in-process with a stand-in launcher, so no job trains: the search space from Hydra's override grammar,
trial N as job N in batches of n_jobs, reproducible trials, resume, failed, killed and pruned jobs, and the
one-line refusals. The real sweeps, as subprocesses, are in test_search.py and test_sweep_faults.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import STUDY, Results, RunFolder

NO_EXTRA = "hparams_search=optuna needs the sweep extra: EXTRAS=test,sweep make setup"
optuna = pytest.importorskip("optuna", reason=NO_EXTRA)
State = optuna.trial.TrialState
FloatDistribution, IntDistribution = optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution
Categorical = optuna.distributions.CategoricalDistribution


# -- the search space


def _parse(*arguments: str, params: dict | None = None):
    from pixel_spotter.sweeps.search_space import parse_search

    return parse_search(params, list(arguments))


def test_the_config_space_parses_as_the_old_plugin_searched_it():
    params = {"model.lr": "tag(log, interval(1e-4, 1e-1))", "data.batch_size": "choice(16, 32, 64, 128)"}
    space, fixed = _parse("model=cnn", "+callbacks.x._target_=a.B", params=params)
    assert space == {"model.lr": FloatDistribution(1e-4, 1e-1, log=True),
                     "data.batch_size": Categorical([16, 32, 64, 128])}
    assert fixed == {"model": "cnn", "+callbacks.x._target_": "a.B"} and list(space) == ["model.lr", "data.batch_size"]


@pytest.mark.parametrize("override, expected", [
    ("a=interval(0.5, 2)", FloatDistribution(0.5, 2.0)),
    ("a=interval(1, 8)", IntDistribution(1, 8)),  # integers written: an int parameter (Hydra makes them floats)
    ("a=tag(log, interval(1, 64))", IntDistribution(1, 64, log=True)),
    ("a=interval(1.0, 8.0)", FloatDistribution(1.0, 8.0)),
    ("a=range(1, 5)", IntDistribution(1, 4)),  # Hydra's range: stop excluded
    ("a=range(2, 12, 3)", IntDistribution(2, 11, step=3)),
    ("a=range(0.5, 2.0, 0.5)", FloatDistribution(0.5, 1.5, step=0.5)),
    ("a=shuffle(range(3))", Categorical([1, 0, 2])),  # Hydra's shuffle is seeded by the override
    ("a=1,2", Categorical([1, 2])),
    ("a=choice(x, 'y z', true)", Categorical(["x", "y z", True])),
])
def test_each_sweep_kind_is_its_optuna_distribution(override, expected):
    space, fixed = _parse(override)
    assert fixed == {} and space["a"].__class__ is expected.__class__
    if isinstance(expected, Categorical):
        assert sorted(map(str, space["a"].choices)) == sorted(map(str, expected.choices))
    else:
        assert space["a"] == expected


def test_a_later_override_replaces_an_earlier_one():
    params = {"model.lr": "interval(0.1, 0.2)", "data.batch_size": "32"}
    space, fixed = _parse("model.lr=0.01", "data.batch_size=choice(8,16)", params=params)
    assert fixed == {"model.lr": "0.01"} and space == {"data.batch_size": Categorical([8, 16])}


@pytest.mark.parametrize("params, problem", [
    ({"a": "interval(2, 1)"}, "low <= high"),
    ({"a": "tag(log, interval(0, 1))"}, "low > 0"),
    ({"a": "range(3, 3)"}, "holds no value"),
    ({"a": "choice([1,2],{b:1})"}, None),  # lists and dicts are encoded as override strings: fine
    ({"a": "interval(1"}, "cannot be parsed"),
])
def test_a_space_optuna_cannot_search_is_one_line(params, problem):
    if problem is None:
        assert _parse(params=params)[0]["a"].choices == ("[1,2]", "{b:1}")
        return
    with pytest.raises(UserError, match=problem) as err:
        _parse(params=params)
    assert "\n" not in str(err.value)


def test_job_overrides_parse_back_to_the_sampled_values():
    from pixel_spotter.sweeps.search_space import job_overrides

    assert job_overrides({"a": 0.001, "b": True, "c": None}, {"model": "cnn", "~logger": "null"}) == [
        "a=0.001", "b=true", "c=null", "model=cnn", "~logger"]


# -- the loop, with a launcher that runs nothing


class Launcher:
    """Stands in for Hydra's launcher: each job 'returns' a value computed from its overrides (None for lr < 0)
    and writes its record; the jobs numbered in ``kill`` leave one as a killed job does (running, no lock)."""

    def __init__(self, sweep: Path, kill: tuple[int, ...] = ()):
        self.sweep, self.kill, self.batches = sweep, kill, []

    def launch(self, job_overrides, initial_job_idx):
        from hydra.core.utils import JobReturn, JobStatus

        self.batches.append((initial_job_idx, [list(o) for o in job_overrides]))
        returns = []
        for num, overrides in enumerate(job_overrides, start=initial_job_idx):
            values = dict(o.split("=", 1) for o in overrides if "=" in o)
            lr = float(values["model.lr"])
            value = None if lr < 0 or num in self.kill else lr * float(values.get("data.batch_size", 1))
            self._record(num, Results() if num in self.kill else _outcome(value))
            returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=value))
        return returns

    def _record(self, num: int, record: Results) -> None:  # what find_runs and RunFolder.read see
        folder = RunFolder(self.sweep / f"{num}_job")
        folder.path.mkdir(parents=True, exist_ok=True)
        folder.write(record)


def _outcome(value: float | None) -> Results:
    if value is None:
        return Results(status="failed", error="model.lr must be > 0")
    return Results(status="ok", best_val={"euclid_px": value}, test={"euclid_px": 1.0})


def _search(make_cfg, sweep: Path, *overrides: str, arguments=("model=cnn",), kill=()):
    """One search command, as Hydra runs it: the sweeper instantiated from the composed config (which seeds
    the sampler from the study file), checked, then swept with ``arguments`` (the command line's task overrides)."""
    from hydra.utils import instantiate

    cfg = make_cfg("hparams_search=optuna", f"hydra.sweep.dir={sweep}", *overrides)
    sweeper = instantiate(cfg.hydra.sweeper)
    sweeper.check(cfg)
    sweeper.config, sweeper.launcher = cfg, Launcher(sweep, kill)
    sweeper.sweep(list(arguments))
    return sweeper.launcher


RESUME = ("model=cnn", "resume=true")  # the task overrides of the same command plus resume=true


def _resume(make_cfg, sweep: Path, n_trials: int) -> Launcher:
    return _search(make_cfg, sweep, f"hydra.sweeper.n_trials={n_trials}", "resume=true", arguments=RESUME)


def _study(sweep: Path):
    return optuna.load_study(study_name="pixel-spotter", storage=f"sqlite:///{sweep / STUDY}")


def _params(study) -> list[dict]:
    return [t.params for t in sorted(study.trials, key=lambda t: t.number)]


def test_trials_run_in_batches_of_n_jobs_as_jobs_of_their_numbers(make_cfg, tmp_path):
    sweep = tmp_path / "sweep"
    launcher = _search(make_cfg, sweep, "hydra.sweeper.n_trials=5", "hydra.sweeper.n_jobs=2")
    assert [(first, len(batch)) for first, batch in launcher.batches] == [(0, 2), (2, 2), (4, 1)]
    study = _study(sweep)
    jobs = [overrides for _, batch in launcher.batches for overrides in batch]
    for trial, overrides in zip(sorted(study.trials, key=lambda t: t.number), jobs):
        assert overrides == [f"model.lr={trial.params['model.lr']}",
                             f"data.batch_size={trial.params['data.batch_size']}", "model=cnn"]
        value = trial.params["model.lr"] * trial.params["data.batch_size"]  # what its job returned
        assert trial.state == State.COMPLETE and trial.value == value and trial.user_attrs == {"model": "cnn"}
        assert set(trial.distributions) == {"model.lr", "data.batch_size"}
    assert (sweep / "multirun.yaml").is_file()  # what tells the report a search ran here
    best = (sweep / "optimization_results.yaml").read_text()
    assert f"best_value: {study.best_value}" in best and f"best_trial: {study.best_trial.number}" in best


def test_the_same_command_gives_the_same_trials_and_a_resume_adds_new_ones(make_cfg, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _search(make_cfg, first, "hydra.sweeper.n_trials=3")
    _search(make_cfg, second, "hydra.sweeper.n_trials=3")
    params = _params(_study(first))
    assert len(params) == 3 and _params(_study(second)) == params  # two fresh folders, the same trials

    launcher = _resume(make_cfg, first, 2)
    resumed = _study(first)
    assert [t.number for t in resumed.trials] == [0, 1, 2, 3, 4] and _params(resumed)[:3] == params
    assert all(p not in params for p in _params(resumed)[3:])  # the sampler went on from seed + 3
    assert [first for first, _ in launcher.batches] == [3, 4]  # numbered on: trial N is job N
    assert all(o[-1].lower() == "resume=true" for _, batch in launcher.batches for o in batch)  # Hydra: True


def test_a_failed_job_is_told_fail_and_the_search_goes_on(make_cfg, tmp_path):
    sweep = tmp_path / "sweep"
    _search(make_cfg, sweep, "hydra.sweeper.n_trials=6", arguments=("model.lr=choice(-1,0.001)",))
    trials = _study(sweep).trials
    assert len(trials) == 6 and {t.state for t in trials} == {State.FAIL, State.COMPLETE}
    assert {t.params["model.lr"] for t in trials if t.state == State.FAIL} == {-1}
    assert (sweep / "optimization_results.yaml").is_file()


def test_a_search_where_no_trial_completes_ends_without_a_best_trial(make_cfg, tmp_path, caplog):
    sweep = tmp_path / "sweep"
    _search(make_cfg, sweep, "hydra.sweeper.n_trials=2", arguments=("model.lr=choice(-1,-2)",))  # no exception
    assert [t.state for t in _study(sweep).trials] == [State.FAIL, State.FAIL]
    assert not (sweep / "optimization_results.yaml").exists() and "no trial of study" in caplog.text


def test_a_killed_job_stops_the_search_and_the_resume_runs_it_again(make_cfg, tmp_path, caplog):
    sweep = tmp_path / "sweep"
    _search(make_cfg, sweep, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", kill=(1,))
    study = _study(sweep)
    # job 0 of the batch finished and is told; the killed job 1 stays RUNNING; no second batch
    assert [t.state for t in study.trials] == [State.COMPLETE, State.RUNNING]
    assert "the search stops here" in caplog.text
    killed = study.trials[1]
    launcher = _resume(make_cfg, sweep, 1)
    assert launcher.batches[0] == (1, [[f"model.lr={killed.params['model.lr']}",
                                        f"data.batch_size={killed.params['data.batch_size']}", "model=cnn",
                                        "resume=true"]])  # its own number and values, resuming its folder
    assert launcher.batches[1][0] == 2 and [t.state for t in _study(sweep).trials] == [State.COMPLETE] * 3


def test_a_job_whose_record_says_pruned_is_told_pruned_and_a_non_finite_value_fails():
    from hydra.core.utils import JobReturn, JobStatus

    from pixel_spotter.sweeps.study import PRUNED, tell

    study = optuna.create_study()
    for _ in range(3):
        study.ask()
    tell(study, 0, JobReturn(status=JobStatus.COMPLETED, _return_value=None), status=PRUNED)
    tell(study, 1, JobReturn(status=JobStatus.COMPLETED, _return_value=float("nan")))
    tell(study, 2, JobReturn(status=JobStatus.COMPLETED, _return_value=None), status="failed")
    assert [t.state for t in study.trials] == [State.PRUNED, State.FAIL, State.FAIL]


# -- refused before any trial, in one line


def _refused(make_cfg, sweep: Path, *overrides: str, arguments=("model=cnn",)) -> str:
    with pytest.raises(SystemExit) as exit_:
        _search(make_cfg, sweep, *overrides, arguments=arguments)
    message = str(exit_.value.code)
    assert message.startswith("error: ") and "\n" not in message
    return message


@pytest.mark.parametrize("overrides, arguments, problem", [
    (["optimized_metric=val/exact_acc", "hydra.sweeper.direction=minimize"], ["model=cnn"], "contradicts"),
    (["hydra.sweeper.n_jobs=0"], ["model=cnn"], "n_jobs=0 must be"),
    (["hydra.sweeper.params=null"], ["model=cnn"], "nothing to search"),
    (["+hydra.sweeper.params.a='interval(3, 1)'"], ["model=cnn"], "low <= high"),  # quoted, as in YAML
], ids=["direction", "n_jobs", "no-space", "bad-interval"])
def test_a_search_that_cannot_run_is_refused_before_any_trial(make_cfg, tmp_path, overrides, arguments, problem):
    sweep = tmp_path / "sweep"
    assert problem in _refused(make_cfg, sweep, *overrides, arguments=arguments)
    assert not (sweep / STUDY).exists() and not (sweep / "multirun.yaml").exists()


def test_a_study_of_an_older_optuna_names_the_upgrade(make_cfg, tmp_path):
    sweep = tmp_path / "sweep"
    _search(make_cfg, sweep, "hydra.sweeper.n_trials=1")
    with sqlite3.connect(sweep / STUDY) as db:  # as optuna 2.10 (the old plugin's) left it: an older schema
        db.execute("UPDATE alembic_version SET version_num = 'v2.6.0.a'")
        db.execute("UPDATE version_info SET library_version = '2.10.1'")
    db.close()
    message = _refused(make_cfg, sweep, "hydra.sweeper.n_trials=1", "resume=true", arguments=RESUME)
    assert "written by optuna 2.10.1" in message
    assert f"optuna storage upgrade --storage sqlite:///{sweep / STUDY} " in message  # the fix, runnable as given
