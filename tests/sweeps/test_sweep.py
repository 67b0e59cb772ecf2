"""The README's main command as a real subprocess: `python train.py -m model=cnn,resnet18`, tiny settings."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, TINY
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.slow  # real sweeps as subprocesses


def _sweep(tmp_path, *overrides):
    return subprocess.run(
        [sys.executable, "train.py", "-m", *overrides, *TINY, f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )


def test_card_multirun_leaves_results_and_tensorboard_per_job(tmp_path):
    proc = _sweep(tmp_path, "model=cnn,resnet18")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("."))
    # job folders are named after their overrides, numbered in launch order
    assert ["model=cnn" in jobs[0].name.split(","), "model=resnet18" in jobs[1].name.split(",")] == [True, True]
    for job in jobs:
        record = json.loads((job / "results.json").read_text())
        assert record["status"] == "ok" and record["test"]["euclid_px"] >= 0
        assert (job / ".hydra" / "config.yaml").is_file()
        events = EventAccumulator(str(job / "tensorboard"))
        events.Reload()
        assert "_hparams_/experiment" in events.PluginTagToContent("hparams")
    assert "2 jobs, 2 ok, 0 not ok" in proc.stdout
    listed = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("  ok ")]
    assert listed == [f"{job.name}:" for job in jobs]  # the summary lists jobs in launch order


def test_a_failing_job_does_not_lose_the_others(tmp_path):
    proc = _sweep(tmp_path, "model.lr=1e-3,-1")
    assert proc.returncode == 1
    records = {p.name: json.loads((p / "results.json").read_text()) for p in tmp_path.glob("*model.lr=*")}
    assert sorted(r["status"] for r in records.values()) == ["failed", "ok"]
    assert "1 not ok" in proc.stdout and "model.lr must be" in proc.stdout


def test_a_diverged_job_is_recorded_as_such_and_never_ranked(tmp_path):
    proc = _sweep(tmp_path, "model.lr=1e6,1e-2", "model=cnn")
    assert proc.returncode == 1  # the summary fails the sweep: not every job is ok
    def strict(token):
        pytest.fail(f"results.json holds {token}: not strict JSON")

    records = {p.parent.name: json.loads(p.read_text(), parse_constant=strict) for p in tmp_path.glob("*/results.json")}
    diverged = next(r for name, r in records.items() if "model.lr=1000000.0" in name)
    assert diverged["status"] == "diverged" and "non-finite" in diverged["error"]
    assert "1 not ok" in proc.stdout and "diverged" in proc.stdout

    from pixel_spotter import report

    runs = report.analyze(report.collect([tmp_path])).runs
    assert [r.record["lr"] for r in runs if r.ok] == [0.01]
    assert not next(r for r in runs if r.record["lr"] == 1e6).best_of_model
