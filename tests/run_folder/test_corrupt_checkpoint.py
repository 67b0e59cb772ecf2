"""resume=true on a last.ckpt that a kill or a full disk left empty, cut short or damaged is one line naming the
file and the ways out, not a traceback from inside torch.load."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ROOT

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import RunFolder

LEGACY = ROOT / "tests" / "fixtures" / "legacy_runs"


def _interrupted_copy(tmp_path):
    run = shutil.copytree(LEGACY / "pixel_16", tmp_path / "run")
    record = json.loads((run / "results.json").read_text())
    (run / "results.json").write_text(json.dumps({**record, "status": "running"}))
    return RunFolder(run), record["overrides"]


@pytest.mark.parametrize("damage", ["empty", "half", "flipped"])
def test_a_corrupt_last_checkpoint_is_one_line_with_the_ways_out(tmp_path, damage):
    folder, overrides = _interrupted_copy(tmp_path)
    data = bytearray(folder.last_checkpoint.read_bytes())
    if damage == "empty":
        data = bytearray()
    elif damage == "half":
        data = data[: len(data) // 2]
    else:  # bytes inside a stored tensor: the zip directory is intact, a member's CRC is not
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(64)
    folder.last_checkpoint.write_bytes(bytes(data))
    with pytest.raises(UserError) as err:
        with folder.claim(resume=True, overrides=overrides):
            pass
    message = str(err.value)
    assert "\n" not in message and f"{folder.last_checkpoint} is corrupt" in message
    assert "best-epoch000.ckpt over it" in message and "delete it" in message


def test_a_whole_last_checkpoint_is_resumed_from(tmp_path):
    folder, overrides = _interrupted_copy(tmp_path)
    with folder.claim(resume=True, overrides=overrides) as start:
        assert start.checkpoint == folder.last_checkpoint
