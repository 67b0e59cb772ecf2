"""Resume knows what it resumes: a copied folder continues from its own files, the stored identity is the whole
composed config (an edited config file is refused, naming the keys), and a larger trainer.max_epochs on a
finished run continues it, while a smaller one is refused (never exit 0 having done nothing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import TINY

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import RunFolder
from pixel_spotter.training.compose import compose
from pixel_spotter.training.run import run

FAST = [*TINY, "model=cnn", "~logger", "~callbacks.lr_monitor", "~callbacks.sample_figure", "~callbacks.hparams_record"]


def _run(folder: Path, *overrides: str):
    return run(compose(*FAST, *overrides, output_dir=folder, hydra_config=True))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 1-epoch run; tests work on copies of it."""
    folder = tmp_path_factory.mktemp("identity") / "original"
    assert _run(folder).ok
    return folder


def _copy(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "copy"))


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file()}


def _unbeatable_best(last: Path) -> None:
    """Make the best score stored in ``last`` one no later epoch can beat, so the best must stay epoch 0's."""
    import torch

    checkpoint = torch.load(last, weights_only=True)
    for state in checkpoint["callbacks"].values():
        if "best-epoch" in str(state.get("best_model_path")):
            state["best_model_score"] = torch.tensor(0.0)
            state["best_k_models"] = {k: torch.tensor(0.0) for k in state["best_k_models"]}
    torch.save(checkpoint, last)


def test_a_copied_folder_continues_from_its_own_checkpoints(finished, tmp_path):
    before = _snapshot(finished)
    copy = _copy(finished, tmp_path)
    _unbeatable_best(copy / "checkpoints" / "last.ckpt")
    record = _run(copy, "trainer.max_epochs=2", "resume=true")
    assert record.ok and record.epochs_run == 2 and record.resumed_from == "checkpoints/last.ckpt"
    # The kept best (epoch 0, moved with the folder) is still the best: not the original's file, and not
    # epoch 1's either (which Lightning makes the best when it forgets the kept ones after a move).
    assert record.best_checkpoint == "checkpoints/best-epoch000.ckpt"
    assert RunFolder(copy).best_checkpoint() == copy / "checkpoints" / "best-epoch000.ckpt"
    assert _snapshot(finished) == before  # the original folder was neither read for weights nor written


def test_a_copied_folder_whose_best_checkpoint_is_missing_chooses_a_new_best(finished, tmp_path):
    copy = _copy(finished, tmp_path)
    for best in (copy / "checkpoints").glob("best-*.ckpt"):
        best.unlink()
    record = _run(copy, "trainer.max_epochs=2", "resume=true")
    assert record.ok and RunFolder(copy).best_checkpoint().is_file()
    assert ".." not in record.best_checkpoint


def test_an_edited_config_is_refused_naming_the_keys(finished, tmp_path):
    copy = _copy(finished, tmp_path)
    stored = copy / ".hydra" / "config.yaml"  # what an edit of conf/model/cnn.yaml changes between two starts
    stored.write_text(stored.read_text().replace("lr: 0.001", "lr: 0.05", 1))
    with pytest.raises(UserError, match=r"another config \(model\.lr: was 0\.05, now 0\.001\)"):
        _run(copy, "resume=true")
    assert RunFolder(copy).read().ok  # nothing written


def test_an_override_that_changes_the_config_is_refused(finished, tmp_path):
    copy = _copy(finished, tmp_path)
    with pytest.raises(UserError, match=r"data\.batch_size: was 64, now 32"):
        _run(copy, "resume=true", "data.batch_size=32")


def test_the_same_budget_skips_a_finished_run(finished, tmp_path):
    copy = _copy(finished, tmp_path)
    before = _snapshot(copy)
    record = _run(copy, "resume=true")
    assert record.ok and record.epochs_run == 1 and _snapshot(copy) == before


def test_a_smaller_budget_is_refused(finished, tmp_path):
    copy = _copy(finished, tmp_path)
    _run(copy, "trainer.max_epochs=2", "resume=true")
    with pytest.raises(UserError, match=r"never shortened.*trainer\.max_epochs=2"):
        _run(copy, "resume=true", "trainer.max_epochs=1")


def test_a_larger_budget_without_a_last_checkpoint_is_refused(finished, tmp_path):
    copy = _copy(finished, tmp_path)
    (copy / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(UserError, match=r"kept no last\.ckpt.*start a new folder"):
        _run(copy, "resume=true", "trainer.max_epochs=3")


def test_resume_removes_what_a_killed_write_left(finished, tmp_path):
    copy = _copy(finished, tmp_path)
    partial = copy / "checkpoints" / ".last.ckpt.4242-0badf00d.partial"  # training/checkpoint_io.py's name
    partial.write_bytes(b"half a checkpoint")
    record_tmp = copy / ".results.json.4242.tmp"  # run_folder/folder.py's
    record_tmp.write_text("{")
    assert _run(copy, "resume=true").ok
    assert not partial.exists() and not record_tmp.exists()
    assert (copy / "checkpoints" / "last.ckpt").is_file()


def test_a_run_killed_in_its_test_after_an_early_stop_resumes_to_the_test_alone(tmp_path):
    import json

    # early stopping ends it after epoch 2 of 3 (no epoch improves by 1e9); then, as if killed during its test,
    # its record still says 'running' with the epochs its training ended at (written when the fit ended)
    stop = ["trainer.max_epochs=3", "callbacks=early_stopping", "callbacks.early_stopping.patience=1",
            "+callbacks.early_stopping.min_delta=1e9"]
    folder = tmp_path / "run"
    whole = _run(folder, *stop)
    assert whole.ok and whole.epochs_run == 2
    record = json.loads((folder / "results.json").read_text())
    record.update(status="running", test={}, best_val={})
    (folder / "results.json").write_text(json.dumps(record))
    resumed = _run(folder, *stop, "resume=true")
    assert resumed.ok and resumed.resumed_from == "checkpoints/last.ckpt"
    assert resumed.epochs_run == 2 and resumed.test == whole.test  # tested where it stopped, not trained on
