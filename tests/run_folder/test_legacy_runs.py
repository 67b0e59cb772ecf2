"""Run folders written before the package took its areas (tests/fixtures/legacy_runs, made with the code of
version 0.1: configs name pixel_spotter.module.CoordinateRegressor, pixel_spotter.spot_synthesis.SpotParams, ...)
still predict, export, report and resume, and give the answers that code gave (expected*.json/csv, recorded then).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from pixel_spotter import cli

FIXTURES = ROOT / "tests" / "fixtures" / "legacy_runs"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
RUNS = ("pixel_16", "spot_12")


@pytest.fixture
def legacy(tmp_path) -> Path:
    """A writable copy of the fixture runs (reading may not write, but resume does)."""
    for run in RUNS:
        shutil.copytree(FIXTURES / run, tmp_path / run)
        shutil.copy(FIXTURES / f"{run}_image.npy", tmp_path)
    return tmp_path


def test_the_fixture_configs_name_the_old_classes():
    """Guards the fixture itself: it must keep the old names, or the tests below test nothing old."""
    text = (FIXTURES / "spot_12" / ".hydra" / "config.yaml").read_text()
    assert "pixel_spotter.module.CoordinateRegressor" in text and "pixel_spotter.spot_synthesis.SpotParams" in text


@pytest.mark.parametrize("run", RUNS)
def test_a_legacy_run_predicts_what_it_predicted(legacy, run, capsys):
    code = cli.main(["predict", str(legacy / run), str(legacy / f"{run}_image.npy"), "--json"])
    got = json.loads(capsys.readouterr().out)[0]
    want = EXPECTED[run]["predict"]
    assert code in (0, 3)  # 3: answered with a warning (the 1-epoch pixel run misses the pixel, as it did)
    assert got["x"] == pytest.approx(want["x"], abs=1e-4) and got["y"] == pytest.approx(want["y"], abs=1e-4)
    assert (got["warning"] is None) == (want["warning"] is None)


@pytest.mark.parametrize("run,fmt", [("pixel_16", "torchscript"), ("spot_12", "torchscript")])
def test_a_legacy_run_exports_and_the_file_answers_the_same(legacy, run, fmt, capsys):
    out = legacy / f"{run}.pt"
    assert cli.main(["export", str(legacy / run), "--format", fmt, "--out", str(out)]) == 0
    capsys.readouterr()
    contract = json.loads(out.with_name(out.name + ".json").read_text())
    assert contract["run"]["model"].startswith("pixel_spotter.models.")
    cli.main(["predict", str(out), str(legacy / f"{run}_image.npy"), "--json"])
    got = json.loads(capsys.readouterr().out)[0]
    assert got["x"] == pytest.approx(EXPECTED[run]["predict"]["x"], abs=1e-3)


def _numbers(path: Path) -> dict[str, dict[str, float]]:
    """run name -> its deterministic columns of runs.csv (metrics and sizes, not timings or versions)."""
    keep = ("best_val.", "test.", "references.centroid.rmse", "references.ml_fit.rmse", "params", "data.n_")
    rows = {}
    for row in csv.DictReader(path.open()):
        name = Path(row["path"]).name
        rows[name] = {k: float(v) for k, v in row.items() if k.startswith(keep) and v not in ("", None)}
    return rows


def test_a_legacy_report_gives_the_same_numbers(legacy, capsys):
    out = legacy / "report"
    assert cli.main(["report", str(legacy / "pixel_16"), str(legacy / "spot_12"), "--out", str(out)]) == 0
    got, want = _numbers(out / "runs.csv"), _numbers(FIXTURES / "expected_runs.csv")
    assert set(got) == set(RUNS) and got == want


@pytest.mark.slow
def test_an_interrupted_legacy_run_resumes_from_its_last_checkpoint(legacy):
    """Marked 'running' (as a killed run leaves it), the old folder continues from its old last.ckpt under the
    new code and tests its old best checkpoint: the same test numbers as when it was made."""
    run = legacy / "pixel_16"
    record = json.loads((run / "results.json").read_text())
    before = record["test"]
    (run / "results.json").write_text(json.dumps({**record, "status": "running"}))
    overrides = [line[2:] for line in (run / ".hydra" / "overrides.yaml").read_text().splitlines()]
    done = subprocess.run([sys.executable, "train.py", *overrides, f"hydra.run.dir={run}", "resume=true"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = json.loads((run / "results.json").read_text())
    assert after["status"] == "ok" and after["resumed_from"] == "checkpoints/last.ckpt"
    assert after["test"]["euclid_px"] == pytest.approx(before["euclid_px"], rel=1e-6)
