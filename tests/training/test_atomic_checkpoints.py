"""Checkpoint writes are atomic (pixel_spotter/training/checkpoint_io.py): a full disk or a kill mid-write leaves
the previous checkpoint as it was, a folder on another filesystem than $TMPDIR gets whole files, and a real run's
checkpoints load. Also: a run refused its folder writes nothing at all in the working directory (train.log)."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TINY
from omegaconf import OmegaConf

from pixel_spotter.errors import UserError
from pixel_spotter.training.checkpoint_io import AtomicCheckpointIO, partial_path, with_atomic_checkpoints


def _checkpoint(value: float) -> dict:
    return {"state_dict": {"w": torch.full((1000,), value)}, "epoch": int(value)}


def _full_disk_after(n_bytes: int):
    """A torch.save that writes ``n_bytes`` into its file, then fails as a full disk does."""
    def save(obj, f, *args, **kwargs):
        f.write(b"\0" * n_bytes)
        raise OSError(errno.ENOSPC, "No space left on device")
    return save


def _fail(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["torch.save", "fsync", "replace"])
def test_a_full_disk_mid_write_leaves_the_previous_checkpoint_byte_identical(where, tmp_path, monkeypatch):
    last = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(1), last)
    before = last.read_bytes()
    if where == "torch.save":
        monkeypatch.setattr(torch, "save", _full_disk_after(4096))
    else:  # the bytes are written; flushing them to disk, or the rename, fails
        monkeypatch.setattr(os, where, _fail)
    with pytest.raises(OSError, match="No space left"):
        AtomicCheckpointIO().save_checkpoint(_checkpoint(2), last)
    assert last.read_bytes() == before
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"]  # the partial file is gone


def test_a_failed_first_write_leaves_no_file_at_all(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _full_disk_after(10))
    with pytest.raises(OSError):
        AtomicCheckpointIO().save_checkpoint(_checkpoint(1), tmp_path / "best-epoch000.ckpt")
    assert list(tmp_path.iterdir()) == []


_KILLED_WRITER = """
import sys, time, torch
from pixel_spotter.training.checkpoint_io import AtomicCheckpointIO
def slow_save(obj, f, *args, **kwargs):
    f.write(b"\\0" * 4096); f.flush()
    print("writing", flush=True); time.sleep(60)
torch.save = slow_save
AtomicCheckpointIO().save_checkpoint({"epoch": 2}, sys.argv[1])
"""


@pytest.mark.slow
def test_a_kill_mid_write_leaves_the_previous_checkpoint_whole(tmp_path):
    last = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(1), last)
    before = last.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(last)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert last.read_bytes() == before
    assert sorted(tmp_path.glob("*.ckpt")) == [last]  # what a kill leaves is never taken for a checkpoint
    assert [p.name.endswith(".partial") for p in tmp_path.iterdir() if p != last] == [True]


@pytest.fixture
def other_filesystem(tmp_path):
    """A folder on another filesystem than pytest's tmp_path (and $TMPDIR): /dev/shm, a tmpfs, where there is one."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)) or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no writable /dev/shm on another filesystem than the tests' tmp folder")
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="atomic-ckpt-"))
    yield folder
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def test_a_checkpoint_on_another_filesystem_arrives_whole_without_tmpdir(other_filesystem, tmp_path, monkeypatch):
    # $TMPDIR unusable: Lightning's own save (fsspec's transaction) would write there first; ours must not.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmpdir"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "no-such-tmpdir"))
    last = other_filesystem / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(_checkpoint(1), last)
    io.save_checkpoint(_checkpoint(2), last)  # replaces the first
    with zipfile.ZipFile(last) as archive:
        assert archive.testzip() is None
    loaded = io.load_checkpoint(last, weights_only=True)
    assert loaded["epoch"] == 2 and torch.equal(loaded["state_dict"]["w"], torch.full((1000,), 2.0))
    assert [p.name for p in other_filesystem.iterdir()] == ["last.ckpt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(last.stat().st_mode) == 0o666 & ~umask  # as a plain open() (and Lightning) gives


def test_the_partial_file_is_never_named_like_a_checkpoint(tmp_path):
    partial = partial_path(tmp_path / "last.ckpt")
    assert partial.parent == tmp_path  # same folder, so same filesystem: os.replace is atomic
    assert not partial.name.endswith(".ckpt") and partial.name.startswith(".")
    assert partial != partial_path(tmp_path / "last.ckpt")  # two writers never share one


def test_trainer_plugins_are_kept_and_a_checkpoint_io_of_ones_own_refused():
    env = "lightning.pytorch.plugins.environments.LightningEnvironment"
    kept = with_atomic_checkpoints(OmegaConf.create([{"_target_": env}]))
    assert [type(p).__name__ for p in kept] == ["LightningEnvironment", "AtomicCheckpointIO"]
    assert [type(p).__name__ for p in with_atomic_checkpoints(None)] == ["AtomicCheckpointIO"]
    with pytest.raises(UserError, match="holds a CheckpointIO"):
        with_atomic_checkpoints(OmegaConf.create([{"_target_": "lightning.pytorch.plugins.io.TorchCheckpointIO"}]))
    with pytest.raises(UserError, match="must be a list"):
        with_atomic_checkpoints(OmegaConf.create({"_target_": env}))


def test_a_run_writes_its_checkpoints_through_the_atomic_writer(make_cfg):
    from pixel_spotter.training.run import build

    _, _, trainer = build(make_cfg())
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


@pytest.mark.slow
def test_a_real_run_keeps_one_loadable_best_and_last(heatmap_run_32):
    checkpoints = heatmap_run_32 / "checkpoints"
    record = json.loads((heatmap_run_32 / "results.json").read_text())
    best = heatmap_run_32 / record["best_checkpoint"]
    # A best after epoch 0 means earlier bests were written and then removed (save_top_k=1).
    assert best.name != "best-epoch000.ckpt", "the run's best is its first epoch: top-k removal not exercised"
    assert sorted(p.name for p in checkpoints.iterdir()) == sorted([best.name, "last.ckpt"])
    for path in (best, checkpoints / "last.ckpt"):
        loaded = AtomicCheckpointIO().load_checkpoint(path, weights_only=False)
        assert loaded["state_dict"] and loaded["epoch"] <= record["epochs_run"] - 1


@pytest.mark.slow
def test_a_real_run_logs_into_its_own_train_log(heatmap_run_32):
    log = (heatmap_run_32 / "train.log").read_text()
    assert "[pixel_spotter.training.run][INFO] - test: euclid" in log and "Seed set to 0" in log


@pytest.mark.slow
def test_a_run_refused_its_folder_writes_nothing_in_the_working_directory(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *TINY, "debug=fast", "hydra.run.dir=''"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith("error: hydra.run.dir names")
    assert list(tmp_path.iterdir()) == []  # not even an empty train.log (Hydra's job logging: delay)
