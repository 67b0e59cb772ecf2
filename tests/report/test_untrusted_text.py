"""Text from untrusted places (file names, run records) never forges output: a newline in an image name stays
escaped in predict's lines, and a run record's string that a spreadsheet would run as a formula is quoted."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
from conftest import ROOT

from pixel_spotter import cli

LEGACY = ROOT / "tests" / "fixtures" / "legacy_runs"


def test_a_newline_in_an_image_name_cannot_forge_a_result_line(tmp_path, capsys):
    image = np.zeros((16, 16), np.uint8)
    image[3, 5] = 255
    name = tmp_path / "a.npy 5.000 3.000\nforged 1.000 1.000.npy"
    np.save(name, image)
    cli.main(["predict", str(LEGACY / "pixel_16"), str(name)])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\\n" in out  # one line per image, the newline shown escaped


def test_runs_csv_quotes_cells_that_would_be_formulas(tmp_path, capsys):
    run = shutil.copytree(LEGACY / "pixel_16", tmp_path / "run")
    record = json.loads((run / "results.json").read_text())
    record["model"] = "=HYPERLINK(\"http://evil\",\"x\")"
    record["lr"] = -0.5  # a negative number stays a number
    (run / "results.json").write_text(json.dumps(record))
    assert cli.main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    rows = list(csv.DictReader((tmp_path / "report" / "runs.csv").open()))
    assert rows[0]["model"] == "'=HYPERLINK(\"http://evil\",\"x\")" and rows[0]["lr"] == "-0.5"


def test_a_job_folder_with_a_non_utf8_name_is_reported_escaped(tmp_path, capsys):
    import os

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    shutil.copytree(LEGACY / "pixel_16", os.fsdecode(bytes(sweep) + b"/job\xff\xfe"))
    assert cli.main(["report", str(sweep), "--out", str(tmp_path / "report")]) == 0
    capsys.readouterr()
    assert "job\\udcff\\udcfe" in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
