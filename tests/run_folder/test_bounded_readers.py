"""A run folder's YAML is read with limits: an alias bomb or a huge planted file is refused in one line, quickly,
by predict, export and report alike, instead of stalling them."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from conftest import ROOT

from pixel_spotter import cli

LEGACY = ROOT / "tests" / "fixtures" / "legacy_runs"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9))


@pytest.mark.parametrize("planted", ["bomb", "huge"])
@pytest.mark.parametrize("command", ["predict", "export", "report"])
def test_a_planted_config_is_refused_quickly(tmp_path, capsys, planted, command):
    run = shutil.copytree(LEGACY / "pixel_16", tmp_path / "run")
    config = run / ".hydra" / "config.yaml"
    config.write_text(BOMB if planted == "bomb" else "x: " + "y" * 3_000_000 + "\n")
    np.save(tmp_path / "x.npy", np.zeros((16, 16), np.uint8))
    args = {"predict": ["predict", str(run), str(tmp_path / "x.npy")],
            "export": ["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")],
            "report": ["report", str(run), "--out", str(tmp_path / "report")]}[command]
    start = time.perf_counter()
    code = cli.main(args)
    assert time.perf_counter() - start < 30  # a bomb loaded in full would take far longer (or run out of memory)
    err = capsys.readouterr().err
    if command == "report":  # the report notes the unreadable run's config and goes on from its record
        assert code == 0
    else:
        assert code == 2 and err.count("\n") == 1
        assert ("YAML aliases" if planted == "bomb" else "bytes, more than any config") in err
