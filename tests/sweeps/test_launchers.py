"""Launchers beyond the default (conf/hydra/launcher/): submitit_local and slurm (threads from cpus_per_task,
GPUs from the trainer, the sbatch script, a requeued job resumes), ray (a GPU it cannot get is refused, a
missing plugin is one line), a parallel sweep that loses a worker to kill -9, and the GPU path. The submitit
and joblib plugins come with the sweep extra; Ray is never installed by an extra (tests need no Ray)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY

from pixel_spotter.sweeps import launchers
from pixel_spotter.sweeps.launchers import gpus, launcher_cpus, ray_gpu_problem, resuming, threads_per_job

NO_SWEEP_EXTRA = "needs the sweep extra: EXTRAS=test,sweep make setup"


def _submitit():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason=f"hydra/launcher=submitit_* {NO_SWEEP_EXTRA}")


def _joblib():
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason=f"hydra/launcher=parallel {NO_SWEEP_EXTRA}")


def test_submitit_jobs_take_their_threads_from_cpus_per_task(make_cfg):
    _submitit()
    cfg = make_cfg("hydra/launcher=submitit_local")
    assert launcher_cpus() == 1 and threads_per_job(cfg) == 1  # submitit_local's default: one per job
    cfg = make_cfg("hydra/launcher=slurm", "hydra.launcher.cpus_per_task=3")
    assert launcher_cpus() == 3 and threads_per_job(cfg) == 3
    assert threads_per_job(make_cfg("hydra/launcher=slurm", "threads_per_job=2")) == 2  # the run's own setting wins


def test_submitit_configs_ask_for_the_gpus_the_trainer_wants(make_cfg):
    _submitit()
    assert make_cfg("hydra/launcher=submitit_local", "trainer=cpu").hydra.launcher.gpus_per_node == 0
    gpu = ["trainer=gpu", "trainer.accelerator=gpu"]  # (TINY sets trainer.accelerator=cpu)
    assert make_cfg("hydra/launcher=submitit_local", *gpu, "trainer.devices=2").hydra.launcher.gpus_per_node == 2
    assert make_cfg("hydra/launcher=slurm", "trainer.accelerator=gpu").hydra.launcher.gpus_per_node == 1
    # accelerator=auto: a cluster's nodes cannot be judged from the submitting machine, so no GPU is asked for
    assert make_cfg("hydra/launcher=slurm", "trainer.accelerator=auto").hydra.launcher.gpus_per_node == 0


def test_gpus_follow_accelerator_and_devices(monkeypatch):
    import torch

    assert gpus("cpu", 4) == 0 and gpus("gpu", [0, 1], here=False) == 2 and gpus("cuda", "0,1", here=False) == 2
    assert gpus("gpu", "auto", here=False) == 1 and gpus("auto", 2, here=False) == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert gpus("auto", 1) == 0 and gpus("gpu", 2) == 2  # asked for explicitly: Lightning then says what is wrong
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert gpus("auto", 1) == 1 and gpus("auto", -1) == 4 and gpus("auto", "auto") == 4


def test_slurm_config_renders_the_expected_sbatch_lines(make_cfg, tmp_path, monkeypatch):
    """The plugin's own launch() builds the Slurm array from our config; the script is caught before sbatch."""
    _submitit()
    from hydra.utils import instantiate
    from submitit.slurm import slurm

    cfg = make_cfg("hydra/launcher=slurm", "trainer=gpu", "trainer.accelerator=gpu", "trainer.devices=2",
                   "hydra.launcher.partition=gpu", "hydra.launcher.cpus_per_task=4",
                   "hydra.launcher.setup=['module load cuda']", f"hydra.sweep.dir={tmp_path}")
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    scripts = []

    class Submitted(Exception):
        pass

    def make_text(self, command, uid):
        scripts.append(original(self, command, uid))
        raise Submitted  # no cluster here: stop before sbatch would run

    original = slurm.SlurmExecutor._make_submission_file_text
    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # "srun exists"
    monkeypatch.setattr(slurm.SlurmExecutor, "_make_submission_file_text", make_text)
    with pytest.raises(Submitted):
        launcher.launch([["model=cnn"], ["model=heatmap"]], initial_job_idx=0)
    lines = scripts[0].splitlines()
    expected = ["#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=4", "#SBATCH --gpus-per-node=2",
                "#SBATCH --time=60", "#SBATCH --mem=8GB", "#SBATCH --array=0-1%2", "#SBATCH --ntasks-per-node=1",
                "#SBATCH --signal=USR2@120", "module load cuda"]
    assert [line for line in expected if line not in lines] == []
    assert str(tmp_path / ".submitit") in scripts[0]  # logs and pickles live in the sweep folder


def test_a_requeued_submitit_job_comes_back_resuming():
    _submitit()
    from hydra_plugins.pixel_spotter.launchers import LocalLauncher, SlurmLauncher

    assert resuming(["model=cnn", "resume=false"]) == ["model=cnn", "resume=true"]
    for launcher in (LocalLauncher(), SlurmLauncher()):
        again = launcher.checkpoint(["model=cnn", "seed=1"], "hydra.sweep.dir", 3, "job_id_for_3", {})
        assert again.function is launcher and again.args[:3] == (["model=cnn", "seed=1", "resume=true"],
                                                                 "hydra.sweep.dir", 3)
        chain = launchers.JobChain(launcher)  # a group that trains once: the whole chain comes back, resuming
        short = ["trainer.max_epochs=1", "share.from_job=0"]
        again = chain.checkpoint([(["trainer.max_epochs=2"], "hydra.sweep.dir", 0, "job_id_for_0", {}),
                                  (short, "hydra.sweep.dir", 1, "job_id_for_1", {})])
        assert again.function is chain
        assert [(job[0], job[2]) for job in again.args[0]] == [
            (["trainer.max_epochs=2", "resume=true"], 0), ([*short, "resume=true"], 1)]


RAY = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"


def test_ray_asking_for_a_gpu_this_machine_lacks_is_refused():
    def ray(num_gpus, address=None):
        return {"_target_": RAY, "ray": {"init": {"address": address}, "remote": {"num_cpus": 1, "num_gpus": num_gpus}}}

    message = ray_gpu_problem(ray(1), cuda_available=lambda: False)
    assert "num_gpus" in message and "trainer=cpu" in message and "\n" not in message
    assert ray_gpu_problem(ray(1), cuda_available=lambda: True) is None
    assert ray_gpu_problem(ray(0), cuda_available=lambda: False) is None
    assert ray_gpu_problem(ray(1, "auto"), cuda_available=lambda: False) is None  # a cluster: its GPUs, not ours
    assert ray_gpu_problem({"_target_": "x.JoblibLauncher"}, cuda_available=lambda: False) is None


def test_the_ray_config_is_refused_before_the_sweep_starts(make_cfg, tmp_path, monkeypatch):
    from pixel_spotter.sweeps.summary import SweepSummary

    sweep = tmp_path / "sweep"
    cfg = make_cfg("hydra/launcher=ray", "trainer.accelerator=gpu", f"hydra.sweep.dir={sweep}")
    assert cfg.hydra.launcher.ray.remote.num_gpus == 1 and launcher_cpus() == 1  # follows the trainer; threads
    monkeypatch.setattr(launchers, "_cuda_available", lambda: False)
    with pytest.raises(SystemExit, match=r"^error: hydra/launcher=ray asks 1 GPU"):
        SweepSummary().on_multirun_start(cfg)
    assert not sweep.exists()  # refused before the sweep folder was even claimed


def test_without_the_ray_plugin_the_ray_launcher_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    message = launchers.missing_extra(["-m", "hydra/launcher=ray", "model=cnn"])
    assert message.startswith("error: hydra/launcher=ray needs hydra-ray-launcher") and "\n" not in message
    assert "pip install hydra-ray-launcher" in message
    for choice in ("hydra/launcher=submitit_local", "hydra/launcher=slurm"):
        assert "EXTRAS=test,sweep make setup" in launchers.missing_extra(["-m", choice])


def test_train_py_names_the_ray_install_in_one_line():
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher"):
        pytest.skip("hydra-ray-launcher is installed here")
    proc = subprocess.run([sys.executable, "train.py", "-m", "hydra/launcher=ray", "model=cnn"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [launchers.missing_extra(["hydra/launcher=ray"])]


def _sweep(tmp_path: Path, *overrides: str, kill: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    env.pop("PIXEL_SPOTTER_TEST_KILL", None)
    if kill:
        env["PIXEL_SPOTTER_TEST_KILL"] = kill  # tests/crash_callback.py: SIGKILL at job:epoch:batch
    return subprocess.run([sys.executable, "train.py", "-m", *TINY, *overrides, f"hydra.sweep.dir={tmp_path}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _statuses(sweep: Path) -> dict[int, str]:
    from pixel_spotter.run_folder import RunFolder, find_runs, job_name

    return {int(job_name(run, sweep)): RunFolder(run).read().status for run in find_runs(sweep)}


@pytest.mark.slow
def test_submitit_local_sweep_runs_each_job_with_its_threads_and_a_group_as_one_job(tmp_path):
    _submitit()
    proc = _sweep(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1", "model=cnn,heatmap",
                  "trainer.max_epochs=1,2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 jobs, 4 ok, 0 not ok" in proc.stdout  # the summary, printed by the submitting process
    records = {int(p.parent.name.split("_")[0]): json.loads(p.read_text()) for p in tmp_path.glob("*/results.json")}
    assert [records[n]["status"] for n in sorted(records)] == ["ok"] * 4
    assert {r["hardware"]["torch_threads"] for r in records.values()} == {1}  # not one thread per core in each
    # each model's 1-epoch job took its epoch from its 2-epoch job, in the same submitit job: two jobs, not four
    assert sorted(r.get("shared_from") is not None for r in records.values()) == [False, False, True, True]
    results = sorted((tmp_path / ".submitit").glob("*/*_result.pkl"))  # submitit's logs live inside the sweep
    assert len(results) == 2, results


@pytest.mark.slow
def test_a_killed_parallel_worker_costs_its_jobs_not_the_sweep(tmp_path):
    _joblib()
    args = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "model=cnn", "model.lr=0.001,0.002,0.003",
            "+callbacks.crash._target_=crash_callback.KillAt"]
    proc = _sweep(tmp_path, *args, kill="0:0:2")  # job 0's worker dies as if OOM-killed
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "a worker process was killed" in proc.stdout + proc.stderr  # logged by the launcher
    assert "sweep: 3 jobs," in proc.stdout  # the summary is printed
    # loky stops every worker of the pool: the jobs running then end interrupted (the launcher names them), job 0
    # and whichever ran beside it (job 1, or job 2 when job 1 had ended already); every other job still ran
    lost = re.search(r"job\(s\) ([\d, ]+) end interrupted", proc.stdout + proc.stderr)
    assert lost, (proc.stdout + proc.stderr)[-3000:]
    lost = {int(num) for num in lost.group(1).split(",")}
    assert 0 in lost and len(lost) <= 2
    assert _statuses(tmp_path) == {num: "interrupted" if num in lost else "ok" for num in range(3)}
    resumed = _sweep(tmp_path, *args, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "3 jobs, 3 ok, 0 not ok" in resumed.stdout


@pytest.mark.slow
def test_gpu_trainer_runs_on_the_gpu(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here (torch.cuda.is_available() is False)")
    # debug=fast sets trainer.accelerator=cpu, so the GPU is named again after it
    proc = subprocess.run([sys.executable, "train.py", "trainer=gpu", "debug=fast", "trainer.accelerator=gpu",
                           "data.height=16", "data.width=16", f"hydra.run.dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["status"] == "ok" and record["device"].startswith("cuda")
