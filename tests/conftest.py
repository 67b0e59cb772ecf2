"""Shared fixtures: compose the *real* configs (pixel_spotter.training.compose), small and offline."""

from __future__ import annotations

import contextlib
import os
import signal

# One torch thread per process, this one and every subprocess it starts (train.py, pixel-spotter), unless
# OMP_NUM_THREADS is set: the tests' networks and batches are tiny, and on a small shared machine a thread per
# core spent more time waiting than computing (the not-slow suite took over twice as long, some tests 10x).
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported

import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from pixel_spotter.training.compose import CONF, compose

ROOT = Path(__file__).resolve().parents[1]
# Small, fast settings every test run starts from (16x16 = 256 positions, one epoch, CPU).
TINY = ["data.height=16", "data.width=16", "trainer.max_epochs=1", "trainer.accelerator=cpu",
        "callbacks.progress_bar.refresh_rate=0"]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture
def one_thread():
    """One torch thread for the test, restored after. The spot physics runs small batches: intra-op threads only
    add overhead, and on a shared 2-core machine they made the ML-fit tests 20x slower (threads waiting on each
    other). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SPOT_ONLY_MODELS = {"spot_fit"}  # models that fit photon counts: they need data=spot (their own check says so)
FRAME_MODELS = {"frame_heatmap": "data=pixels", "frame_emitters": "data=emitters"}  # models that answer a set per
# image, and the frame task each takes; and the other way round, the frame model each frame task takes
FRAME_TASK_MODELS = {task.removeprefix("data="): f"model={model}" for model, task in FRAME_MODELS.items()}


def model_overrides(model: str) -> list[str]:
    """``model=<model>`` plus what that model needs to be valid (data=spot for the photon-count models, its frame
    task for a frame model)."""
    needs = ["data=spot"] if model in SPOT_ONLY_MODELS else [FRAME_MODELS[model]] if model in FRAME_MODELS else []
    return [f"model={model}", *needs]


def one_answer_models() -> list[str]:
    """The models that answer one (x, y) per image (what predict and export take)."""
    return [m for m in group_options("model") if m not in FRAME_MODELS]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    """No test touches the network or the user's torch hub cache: downloads fail as they do offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", no_network)


@pytest.fixture
def make_cfg(tmp_path):
    """make_cfg(*overrides) -> composed config writing into tmp_path, with HydraConfig set like a real run."""

    def _make(*overrides: str, tiny: bool = True):
        return compose(*(TINY if tiny else []), *overrides, output_dir=tmp_path, hydra_config=True)

    return _make


def _heatmap_command(run_dir: Path, size: int, epochs: int) -> list[str]:
    return [sys.executable, "train.py", "model=heatmap", f"data.height={size}", f"data.width={size}",
            f"trainer.max_epochs={epochs}", "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0",
            f"hydra.run.dir={run_dir}"]


def train_heatmap_run(run_dir: Path, size: int, epochs: int) -> Path:
    """A real, finished heatmap run of ``size``x``size`` images in ``run_dir``, trained by ``train.py`` in a
    subprocess (for tests of what reads run folders: predict, export). Prefer the session's shared runs below."""
    subprocess.run(_heatmap_command(run_dir, size, epochs), cwd=ROOT, check=True, capture_output=True, timeout=300)
    return run_dir


# Trained runs shared by the whole session, each trained once, also when the session runs on several processes
# (pytest-xdist): one worker claims each run and trains it, the others wait for it (each training it again doubled
# the subprocesses at the session's start, and the tests run beside them ran up to 4 times slower). Treat them as
# read-only: a test that changes a run works on a copy (shutil.copytree), as the tests of predict do. Those the
# selected tests need start in the background when the session does (subprocesses, on the core the one-thread
# tests leave idle), and a test that asks for one waits for it to finish.

SWEEP_TINY = ["trainer.max_epochs=1", "data.height=16", "data.width=16"]
# runs ``command`` (argv[2:]) with its output into argv[1], then writes its exit status beside it (LOG.rc, by a
# rename: a reader never sees half a number): what every worker waits for, as only one of them started it
_RUN_AND_RECORD = ("import pathlib, subprocess, sys; log = pathlib.Path(sys.argv[1]); "
                   "code = subprocess.call(sys.argv[2:], stdout=log.open('w'), stderr=subprocess.STDOUT); "
                   "part = log.with_suffix('.rc.part'); part.write_text(str(code)); "
                   "part.replace(log.with_suffix('.rc'))")


def _start(command: list[str], log: Path) -> subprocess.Popen:
    """``command`` running from the repository root in a session of its own (teardown stops it and its children),
    its output into ``log`` and its exit status, when it ends, into ``log`` with the suffix .rc."""
    return subprocess.Popen([sys.executable, "-c", _RUN_AND_RECORD, str(log), *command], cwd=ROOT,
                            start_new_session=True)


def _wait(log: Path, timeout: int, allowed=(0,)) -> None:
    """Wait for the job logging into ``log`` (whichever worker started it) and check its exit status."""
    status, deadline = log.with_suffix(".rc"), time.monotonic() + timeout
    while not status.exists():
        assert time.monotonic() < deadline, f"{log}: the job has not ended after {timeout} s"
        time.sleep(0.2)
    code = int(status.read_text())
    assert code in allowed, f"{log} exited {code}:\n{log.read_text()[-3000:]}"


SWEEP_JOBS = {"grid": ["model=cnn,resnet18", "model.lr=1e-4,1e-3"],
              "failing": ["model=resnet18", "model.net.weights=/does/not/exist"]}


def _start_sweeps(base: Path) -> list[subprocess.Popen]:
    """2 models x 2 lrs ("grid") and one job that fails validation ("failing"), side by side."""
    return [_start([sys.executable, "train.py", "-m", *overrides, *SWEEP_TINY, f"hydra.sweep.dir={base / name}"],
                   base / f"{name}.log") for name, overrides in SWEEP_JOBS.items()]


def _finish_sweeps(base: Path) -> dict[str, Path]:
    for name in SWEEP_JOBS:
        # A sweep with a failed job exits 1 by design (SweepSummary); the grid must succeed outright.
        _wait(base / f"{name}.log", 600, allowed=(0,) if name == "grid" else (0, 1))
    return {name: base / name for name in SWEEP_JOBS}


def _start_heatmap(size: int, epochs: int):
    def start(base: Path) -> list[subprocess.Popen]:
        return [_start(_heatmap_command(base / "run", size, epochs), base / "train.log")]
    return start


def _finish_heatmap(base: Path) -> Path:
    _wait(base / "train.log", 300)
    return base / "run"


SHARED_RUNS = {  # fixture name -> (start(folder) -> its processes, finish(folder) -> what the fixture gives)
    "sweeps": (_start_sweeps, _finish_sweeps),
    "heatmap_run_32": (_start_heatmap(32, epochs=3), _finish_heatmap),
    "heatmap_run_16": (_start_heatmap(16, epochs=1), _finish_heatmap),
}
_STARTED: list[subprocess.Popen] = []  # the shared runs this process started


def pytest_collection_modifyitems(config, items):
    """The tests that use a shared run go last (in their order), so that it trains while the others run."""
    items.sort(key=lambda item: bool(SHARED_RUNS.keys() & set(getattr(item, "fixturenames", ()))))


def _shared_folder(name: str, tmp_path_factory) -> Path:
    """Where shared run ``name`` trains: one folder for all workers of the session (a worker's base temporary
    folder is one of the session's), or in the session's own without workers."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared_runs" / name


def _claim(name: str, tmp_path_factory) -> Path:
    """The folder of shared run ``name``, started by this process unless another worker has claimed it first (the
    folder's creation is the claim: one of several racing workers succeeds)."""
    folder = _shared_folder(name, tmp_path_factory)
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return folder
    _STARTED.extend(SHARED_RUNS[name][0](folder))
    return folder


@pytest.fixture(scope="session", autouse=True)
def _shared_jobs(request, tmp_path_factory):
    """Claims and starts, when the session does, the shared runs that its selected tests use; at the end waits
    for those this process started (another worker may still need them), or stops them when running alone."""
    used = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    for name in SHARED_RUNS.keys() & used:
        _claim(name, tmp_path_factory)
    yield
    for proc in _STARTED:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=600)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _shared(name: str, tmp_path_factory):
    return SHARED_RUNS[name][1](_claim(name, tmp_path_factory))


@pytest.fixture(scope="session")
def sweeps(_shared_jobs, tmp_path_factory) -> dict[str, Path]:
    """Two real sweeps (folders by name): "grid", 2 models x 2 lrs, and "failing", one job that fails validation;
    the report's tests."""
    return _shared("sweeps", tmp_path_factory)


@pytest.fixture(scope="session")
def heatmap_run_32(_shared_jobs, tmp_path_factory) -> Path:
    """A finished 32x32 heatmap run, 3 epochs (exact on clean images): predict and export."""
    return _shared("heatmap_run_32", tmp_path_factory)


@pytest.fixture(scope="session")
def heatmap_run_16(_shared_jobs, tmp_path_factory) -> Path:
    """A finished 16x16 heatmap run, 1 epoch: robustness and the end-to-end command tests."""
    return _shared("heatmap_run_16", tmp_path_factory)


def cli_run(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``pixel-spotter ARGS`` in this process, as the console script runs it (``cli.main``), from ``cwd`` when given:
    its exit status, stdout and stderr. An exception that escapes is printed as the traceback a user would see,
    exit status 1 (what the console script does), so a test asserting one line fails on it. A subprocess costs
    about 5 s of imports (torch, Lightning) on a 2-core machine: commands are run here, and only the tests of
    what needs a process of its own (the entry point, signals, a killed job) start one."""
    import contextlib
    import io
    import traceback

    from pixel_spotter import cli

    argv = [str(a) for a in args]
    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if cwd is not None:
                os.chdir(cwd)
            code = cli.main(argv)
        except SystemExit as stop:  # argparse's own exits
            code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        except Exception:
            traceback.print_exc()
            code = 1
        finally:
            os.chdir(before)
    return subprocess.CompletedProcess(["pixel-spotter", *argv], code, out.getvalue(), err.getvalue())


def run_in_process(folder: Path, *overrides: str):
    """Train and test one run into ``folder`` in this process, with its .hydra/config.yaml as train.py's Hydra
    writes it (what predict, export, localize and the report read); returns its record."""
    from omegaconf import OmegaConf

    from pixel_spotter.training.run import run

    cfg = compose(*overrides, output_dir=folder, hydra_config=True)
    record = run(cfg)
    (folder / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), folder / ".hydra" / "config.yaml")
    return record


@pytest.fixture(scope="session")
def tiny_spot_run(tmp_path_factory) -> Path:
    """A finished tiny data=spot run (16x16 cnn, 1 epoch of 256 images) with a per-photon evaluation at N = 300
    and 3000 (what `pixel-spotter spots table` reads), trained in this process."""
    folder = tmp_path_factory.mktemp("spot_run")
    record = run_in_process(folder, *TINY, "data=spot", "model=cnn", "data.train_samples_per_epoch=256",
                            "data.eval_repeats=1", "data.eval_photons=[300,3000]", "data.spot.photons=2000",
                            "data.spot.background=10", "data.spot.sigma_psf=1")
    assert record.ok, record.error
    return folder
