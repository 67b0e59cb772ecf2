"""A record tells the truth in the odd corners: a run that trained on nothing is not ok, and a run never
writes into the working directory itself or inside another run's folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, TINY

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import RunFolder


def test_a_run_that_trained_zero_batches_is_failed_not_ok(make_cfg, tmp_path):
    from pixel_spotter.training.run import run

    record = run(make_cfg("+trainer.limit_train_batches=0"))
    assert record.status == "failed" and "trained on 0 batches" in record.error
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


def test_the_working_directory_is_never_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="names the working directory .* itself"):
        with RunFolder(".").claim(resume=False, overrides=[]):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written there


def test_a_run_inside_another_runs_folder_is_refused(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(UserError, match="lies inside the run folder"):
        with RunFolder(tmp_path / "inner").claim(resume=False, overrides=[]):
            pass
    assert not (tmp_path / "inner").exists()


@pytest.mark.slow
def test_an_empty_run_dir_on_the_command_line_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *TINY, "debug=fast", "hydra.run.dir=''"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith("error: hydra.run.dir names")
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize("where", ["''", "."])
def test_a_sweep_into_the_working_directory_is_one_line_and_writes_nothing(tmp_path, where):
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", *TINY, "seed=0,1",
                           f"hydra.sweep.dir={where}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: hydra.sweep.dir names the working directory")
    assert list(tmp_path.iterdir()) == []
