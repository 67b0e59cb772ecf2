"""Every `pixel-spotter` command, end to end on tiny settings, through cli.main: the files it writes, the numbers it
prints (in range) and its exit status, so a broken tool fails CI. Trained runs are the session's (conftest)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, cli_run
from PIL import Image

from pixel_spotter import cli

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: floor and spots bench set torch's threads


def _run(capsys, *args) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``pixel-spotter ARGS``."""
    proc = cli_run(*args)  # conftest: in this process
    return proc.returncode, proc.stdout, proc.stderr


def _rows(out: str, first: set[str]) -> dict[str, list[str]]:
    """Table rows of ``out`` whose first cell is in ``first``, by that cell."""
    return {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in first}


def _png(path, x, y, size):
    image = np.zeros((size, size), dtype=np.uint8)
    image[y, x] = 255
    Image.fromarray(image).save(path)
    return path


# --------------------------------------------------------------------- commands on trained runs (conftest's)


def test_report_of_a_sweep(sweeps, tmp_path, capsys):
    status, out, err = _run(capsys, "report", sweeps["grid"], "--out", tmp_path)
    assert status == 0, err
    assert "\r" not in err  # no progress bar when stderr is not a terminal
    assert f"report: {tmp_path / 'report.md'}" in out
    with (tmp_path / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    records = {str(p.parent): json.loads(p.read_text()) for p in sweeps["grid"].rglob("results.json")}
    assert len(rows) == len(records) == 4 and {r["model"] for r in rows} == {"cnn", "resnet18"}
    for row in rows:
        assert float(row["test.exact_acc"]) == records[row["path"]]["test"]["exact_acc"]
        assert 0 <= float(row["test.euclid_px"]) <= 16 * 2 ** 0.5
    assert "resnet18" in (tmp_path / "report.md").read_text() and (tmp_path / "report.html").stat().st_size > 1000
    assert any((tmp_path / "plots").glob("*.png"))


@pytest.mark.slow
def test_predict_and_export(heatmap_run_16, tmp_path, capsys):
    image = _png(tmp_path / "a.png", 3, 12, size=16)
    status, out, err = _run(capsys, "predict", heatmap_run_16, image, "--json")
    assert status in (0, 3), err  # 3: answered with a warning
    [answer] = json.loads(out)
    assert 0 <= answer["x"] <= 15 and 0 <= answer["y"] <= 15
    status, out, err = _run(capsys, "export", heatmap_run_16, "--format", "torchscript", "--out", tmp_path / "m.pt")
    assert status == 0 and f"wrote {tmp_path / 'm.pt'}" in out, err
    contract = json.loads((tmp_path / "m.pt.json").read_text())
    assert (contract["height"], contract["width"], contract["format"]) == (16, 16, "torchscript")
    status, out, err = _run(capsys, "predict", tmp_path / "m.pt", image, "--json")
    assert status in (0, 3) and json.loads(out)[0]["x"] == pytest.approx(answer["x"], abs=1e-3), err


@pytest.mark.slow
def test_robustness_of_a_run(heatmap_run_16, tmp_path, capsys):
    status, out, err = _run(capsys, "robustness", heatmap_run_16, "--out", tmp_path, "--repeats", "1")
    assert status == 0, err
    with (tmp_path / "robustness.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["model"] for r in rows} == {"argmax", "matched_filter", "matched_filter_bank", "heatmap"}
    assert {r["corruption"] for r in rows} >= {"noise", "blur+noise", "blur+noise clipped", "blur+noise 8-bit"}
    assert all(0 <= float(r["exact_acc"]) <= 1 for r in rows)
    assert (tmp_path / "robustness.png").stat().st_size > 1000


# ------------------------------------------------------------------------------------------------------ spots


def test_spots_table_and_its_old_spelling(tiny_spot_run, tmp_path, capsys):
    status, out, err = _run(capsys, "spots", "table", tiny_spot_run, "--plot", tmp_path / "a.png")
    assert status == 0, err
    rows = _rows(out, {"300", "3000"})
    assert set(rows) == {"300", "3000"} and all(float(v) > 0 for row in rows.values() for v in row[1:])
    assert (tmp_path / "a.png").stat().st_size > 1000
    old = _run(capsys, "spots", tiny_spot_run, "--plot", tmp_path / "b.png")  # before `spots` had sub-commands
    assert old[0] == 0 and old[1].replace("b.png", "a.png") == out and (tmp_path / "b.png").is_file()
    status, out, err = _run(capsys, "spots", "table", tiny_spot_run / "checkpoints")
    assert status == 2 and len(err.strip().splitlines()) == 1 and out == ""


def test_spots_table_of_a_folder_whose_name_is_not_utf8(tiny_spot_run, tmp_path):
    """A real terminal's stdout cannot encode such a name (it was a UnicodeEncodeError): it is shown escaped."""
    copy = shutil.copytree(tiny_spot_run, os.fsdecode(os.fsencode(tmp_path) + b"/spot-\xff"))
    proc = subprocess.run([sys.executable, "-m", "pixel_spotter.cli", "spots", "table", copy, "--plot",
                           tmp_path / "p.png"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "(spot-\\udcff)" in proc.stdout


def test_spots_floor_prints_a_row_per_photon_count(capsys):
    status, out, err = _run(capsys, "spots", "floor", "data.height=12", "data.width=12", "--spots", "12",
                            "--photons", "300", "3000", "--fixed", "background=10", "sigma_psf=1")
    assert status == 0, err
    assert "12x12, background 10-10/px" in out and "sigma_psf 1-1 px" in out
    rows = _rows(out, {"300", "3000"})
    assert [rows[n][1] for n in ("300", "3000")] == ["12", "12"]
    assert all(0 < float(row[3]) < 3 for row in rows.values())  # floor / CRLB: near 1 at these photon counts
    assert err == ""  # no progress bar when stderr is not a terminal


@pytest.mark.parametrize("args, words", [
    (["--fixed", "sigma_psf=abc"], "each a number > 0"),
    (["--fixed", "background=-1"], "each a number > 0"),
    (["--prior", "train"], "invalid choice"),
    (["--spots", "1"], "--spots must be at least 2"),
    (["data.height=abc", "--spots", "4"], "error: data.height must be an integer"),
    (["data.nosuch=1", "--spots", "4"], "error: Could not override 'data.nosuch'"),
])
def test_spots_floor_bad_input_is_one_line(capsys, args, words):
    status, out, err = _run(capsys, "spots", "floor", *args)
    assert status == 2 and words in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and out == ""


def test_spots_bench(capsys):
    status, out, err = _run(capsys, "spots", "bench", "--spots", "64", "--size", "16", "--photons", "1000",
                            "--repeats", "1", "--threads", "1")
    assert status == 0, err
    row = _rows(out, {"1000"})["1000"]
    crlb, ml, centroid, converged, per_s = map(float, row[1:])
    assert 0 < crlb < 0.2 and 0.7 < ml < 1.6 and centroid > 0.7 and converged > 0.9 and per_s > 0


# ------------------------------------------------------------------------------------------------- benchmarks


def test_bench_of_one_tiny_model(capsys):
    status, out, err = _run(capsys, "bench", "--models", "cnn", "--budget-s", "2", "--size", "16", "--epochs", "1")
    assert status == 0, err
    assert "1 model(s) x 2 s budget" in err  # the longest it can take, before it starts
    assert "16x16, position split (179 train / 38 val / 39 test)" in out
    rows = _rows(out, {"cnn", "argmax"})
    assert int(rows["cnn"][1].replace(",", "")) > 1000  # parameters
    exact = re.search(r"(\d+\.\d)%", " ".join(rows["cnn"][2:]))
    assert exact and 0 <= float(exact.group(1)) <= 100
    assert rows["argmax"][-2:] == ["1", "x"] or rows["argmax"][-1] == "1x"


def test_bench_overhead_tiny(capsys):
    status, out, err = _run(capsys, "bench-overhead", "1", "1", "--size", "16")
    assert status == 0, err
    assert "16x16, 1 epochs (179 train / 38 val images, batch 64)" in out
    seconds = {name: float(value) for name, value in re.findall(r"(bare PyTorch loop|Lightning pipeline)\s*:\s*"
                                                                 r"([\d.]+) s", out)}
    assert set(seconds) == {"bare PyTorch loop", "Lightning pipeline"} and all(v > 0 for v in seconds.values())
    ratio = float(re.search(r"ratio pipeline / bare: ([\d.]+)", out).group(1))
    pipeline, bare = seconds["Lightning pipeline"], seconds["bare PyTorch loop"]  # printed to 0.01 s
    assert (pipeline - 0.005) / (bare + 0.005) - 1e-3 <= ratio <= (pipeline + 0.005) / max(bare - 0.005, 1e-9) + 1e-3


# --------------------------------------------------------------------------------------------------- progress


class _Terminal:
    def isatty(self):
        return True

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def test_progress_is_drawn_only_on_a_terminal_and_not_with_json(monkeypatch):
    assert cli.progress(total=3).disable  # pytest's stderr is no terminal
    monkeypatch.setattr("sys.stderr", _Terminal())
    with cli.progress(total=3) as bar:
        assert not bar.disable
    assert cli.progress(total=3, enabled=False).disable  # e.g. a command printing --json
