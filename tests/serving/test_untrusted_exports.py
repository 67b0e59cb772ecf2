"""Exported files are untrusted: a TorchScript file is a program, so predict runs only what our own exports hold
(unless --trust), and a contract is checked against the copy of its answer-changing fields inside the file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, model_overrides, one_answer_models
from hydra.utils import instantiate

from pixel_spotter import cli
from pixel_spotter.serving import export_writers
from pixel_spotter.serving.exported import IDENTITY, contract_path
from pixel_spotter.serving.torchscript_check import ALLOWED_OPS, check_archive, graph_ops
from pixel_spotter.training.compose import compose

LEGACY = ROOT / "tests" / "fixtures" / "legacy_runs"


@pytest.mark.parametrize("model", one_answer_models())
def test_every_network_exports_to_torchscript_that_the_check_accepts(model, tmp_path):
    """ALLOWED_OPS is complete: every network of conf/model traces to operators it lists (a new network that
    needs another operator fails here, so the list is extended on purpose, not found wanting by a user)."""
    cfg = compose(*model_overrides(model), "data.height=16", "data.width=16", "model.net.weights=none"
                  if model == "resnet18" else "seed=0", output_dir=tmp_path)
    net = instantiate(cfg.model, height=16, width=16).eval()
    path = tmp_path / "m.pt"
    export_writers.write("torchscript", export_writers.pixels_module(net), (16, 16), path, {"task": "pixel"})
    check_archive(path)
    assert graph_ops(torch.jit.load(str(path))) <= ALLOWED_OPS


class _ReadsAFile(torch.nn.Module):
    """A forged 'model': its forward creates (shared=True) and reads a file."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def forward(self, images):
        data = torch.from_file(self.marker, shared=True, size=32, dtype=torch.float32)
        return data[: images.shape[0] * 2].reshape(-1, 2)


class _RunsAtLoad(torch.nn.Module):
    """A forged 'model' with a scripted __setstate__, code that torch.jit.load may run before anything calls it:
    refused from the archive alone, before loading."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def forward(self, images):
        return images.flatten(1)[:, :2]

    @torch.jit.export
    def __getstate__(self):
        return (self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]):
        self.marker = state[0]
        self.training = state[1]
        torch.from_file(self.marker, shared=True, size=8, dtype=torch.float32)


def _forge(module, real_pt: Path, out: Path) -> Path:
    """Save ``module`` as TorchScript beside a copy of a real export's contract with its sha256 recomputed."""
    contract = json.loads(contract_path(real_pt).read_text())
    identity = {"task": contract["task"], "height": contract["height"], "width": contract["width"],
                "input_scale": contract.get("input_scale")}
    torch.jit.script(module).save(str(out), _extra_files={f"{IDENTITY}.json": json.dumps(identity)})
    contract.update(file=out.name, sha256=hashlib.sha256(out.read_bytes()).hexdigest())
    contract_path(out).write_text(json.dumps(contract))
    return out


@pytest.fixture(scope="module")
def real_export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    out = folder / "pixel.pt"
    assert cli.main(["export", str(LEGACY / "pixel_16"), "--format", "torchscript", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("forged", [_ReadsAFile, _RunsAtLoad])
def test_a_forged_torchscript_file_is_never_run(forged, real_export, tmp_path, capsys):
    marker = tmp_path / "marker.bin"
    path = _forge(forged(str(marker)), real_export, tmp_path / "forged.pt")
    np.save(tmp_path / "x.npy", np.zeros((16, 16), np.uint8))
    assert cli.main(["predict", str(path), str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a TorchScript file is a program: it was not run" in err and "--trust" in err
    assert not marker.exists()  # nothing ran: not at load, not at the first call
    if forged is _RunsAtLoad:
        assert "its code defines __getstate__, __setstate__" in err
    else:
        assert "its forward calls" in err and "aten::from_file" in err
        cli.main(["predict", str(path), str(tmp_path / "x.npy"), "--trust"])  # the user's explicit choice
        assert marker.exists()


def test_an_edited_contract_is_refused_not_obeyed(real_export, tmp_path, capsys):
    copy = shutil.copy(real_export, tmp_path / "m.pt")
    contract = json.loads(contract_path(real_export).read_text())
    contract.update(file="m.pt", task="spot", value_range=None, input_scale=7.0)  # read files as photon counts
    contract_path(Path(copy)).write_text(json.dumps(contract))
    np.save(tmp_path / "x.npy", np.zeros((16, 16), np.uint8))
    assert cli.main(["predict", str(copy), str(tmp_path / "x.npy")]) == 2
    assert "does not match the model file" in capsys.readouterr().err


def test_a_planted_giant_contract_is_refused_before_it_is_parsed(real_export, tmp_path, capsys):
    copy = shutil.copy(real_export, tmp_path / "m.pt")
    with contract_path(Path(copy)).open("w") as f:
        f.write('{"pad": "' + "x" * 2_000_000 + '"}')
    np.save(tmp_path / "x.npy", np.zeros((16, 16), np.uint8))
    assert cli.main(["predict", str(copy), str(tmp_path / "x.npy")]) == 2
    assert "not an export contract (a few kB)" in capsys.readouterr().err


def test_a_failed_export_leaves_the_previous_file_as_it_was(real_export, tmp_path, monkeypatch, capsys):
    out = Path(shutil.copy(real_export, tmp_path / "pixel.pt"))
    shutil.copy(contract_path(real_export), contract_path(out))
    before = out.read_bytes(), contract_path(out).read_bytes()
    monkeypatch.setattr("pixel_spotter.serving.export.parity", lambda *args, **kwargs: float("inf"))
    assert cli.main(["export", str(LEGACY / "pixel_16"), "--format", "torchscript", "--out", str(out)]) == 2
    assert "nothing written" in capsys.readouterr().err
    assert (out.read_bytes(), contract_path(out).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pixel.pt", "pixel.pt.json"]  # no partial file left


def test_a_full_disk_during_an_export_is_one_line_and_keeps_the_previous_file(real_export, tmp_path, monkeypatch,
                                                                                capsys):
    import errno

    out = Path(shutil.copy(real_export, tmp_path / "pixel.pt"))
    shutil.copy(contract_path(real_export), contract_path(out))
    before = out.read_bytes()

    def full(module, f, **kwargs):  # half the file, then the disk is full
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.jit, "save", full)
    assert cli.main(["export", str(LEGACY / "pixel_16"), "--format", "torchscript", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "nothing written" in err
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["pixel.pt", "pixel.pt.json"]
