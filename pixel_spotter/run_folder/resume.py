"""Resume rules: how a claimed run folder starts (fresh, from its last checkpoint, or skipped because it is
already ok), why it refuses to, and what an interrupted run's record tells its user to do.

RunFolder.claim() applies them while it holds the run's lock, so no other process changes the folder meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder.identity import describe, differences
from pixel_spotter.run_folder.layout import (
    CHECKPOINTS,
    DIVERGED,
    INTERRUPTED,
    RESULTS,
    RUNNING,
    SWEEP_CONFIG,
    UNFINISHED,
    UNREADABLE,
)
from pixel_spotter.run_folder.record import Results

if TYPE_CHECKING:
    from pixel_spotter.run_folder.folder import RunFolder


@dataclass
class Start:
    """How a claimed run begins: fresh, from a checkpoint (resume), or not at all (already ok)."""

    checkpoint: Path | None = None
    skip: Results | None = None
    extends: int | None = None  # a finished run continued to a larger max_epochs: the epochs it had
    shared_from: int | None = None  # the job of the sweep whose epochs these are (training/prefix_snapshots.py)
    stop_at: int | None = None  # where training ends: the epoch the longer job stopped at for this one (its
    # budget, or an early stop), or the epoch this run had finished training at when it was killed (in its test)
    adopted: bool = False  # the checkpoint is a longer job's snapshot, not this run's own (not a resume)


def mark_interrupted(record: Results, run: Path) -> None:
    """Turn a 'running' record whose writer is gone into 'interrupted', saying how to continue it."""
    sweep = next((p for p in list(run.parents)[:3] if (p / SWEEP_CONFIG).is_file()), None)
    how = (f"the sweep's command plus resume=true hydra.sweep.dir={sweep}" if sweep else
           f"the same command plus resume=true hydra.run.dir={run}")
    record.status = INTERRUPTED
    record.error = f"the process stopped without finishing (killed?); continue it with {how}"


def start(folder: RunFolder, resume: bool, overrides: list[str], config: DictConfig | None = None) -> Start:
    """How the run in ``folder`` (locked by the caller) begins; UserError, with nothing written, when it
    holds a run that ``resume`` does not allow continuing with this composed ``config`` (and ``overrides``)."""
    if not folder.holds_a_run():
        return Start()
    _remove_unfinished_writes(folder)
    record = folder.read()
    if record.status == RUNNING:  # we hold the lock, so its writer is gone
        mark_interrupted(record, folder.path)
    if not resume:
        raise UserError(f"{folder.path} already holds a run (status '{record.status}'); add resume=true to "
                        "continue it, or leave out hydra.run.dir / hydra.sweep.dir to start a new folder")
    if record.status not in (UNFINISHED, UNREADABLE):  # else there is nothing to compare with
        _refuse_another_run(folder, record, overrides, config)
    if record.ok:
        return _finished(folder, record, config)
    if record.status != DIVERGED and folder.last_checkpoint.is_file():
        return Start(checkpoint=_checked_checkpoint(folder), stop_at=_trained(record, config),
                     shared_from=record.shared_from)
    folder.clear_outputs()  # nothing to continue from: start over, without the old run's leftovers
    return Start()


def _trained(record: Results, config: DictConfig | None) -> int | None:
    """The epochs an unfinished run had completed its training with (it records them when its fit ends, before
    its test): resumed, it tests from there and trains no more, also when early stopping ended it before its
    budget (which its restored callbacks alone would not know to repeat). None: it was still training."""
    budget = config.trainer.get("max_epochs") if config is not None else None
    done = record.epochs_run
    if not isinstance(done, int) or done <= 0 or (isinstance(budget, int) and 0 < budget < done):
        return None
    return done


def _remove_unfinished_writes(folder: RunFolder) -> None:
    """What a write killed midway left: a checkpoint's ``.<name>.<pid>-<tag>.partial`` (training/checkpoint_io.py)
    or a record's ``.<name>.<pid>.tmp`` (folder.py), never a file anyone reads. We hold the lock: no writer is
    mid-write now."""
    leftovers = [*folder.checkpoints.glob(".*.partial"), *folder.path.glob(".*.tmp")]
    for path in leftovers:
        path.unlink(missing_ok=True)


def _refuse_another_run(folder: RunFolder, record: Results, overrides: list[str], config: DictConfig | None) -> None:
    """UserError unless ``config`` is the config the folder's run began with (identity.py): the whole composed
    config where the folder kept it, else (a run older than that) its command-line overrides."""
    if config is not None and folder.config_file.is_file():
        diff = differences(folder.load_config(), config)
        if diff:
            raise UserError(f"resume=true, but {folder.path} holds a run with another config ({describe(diff)}); "
                            "resume with the config and overrides it began with, or start a new folder")
        return
    then, now = _comparable(record.overrides), _comparable(overrides)
    if then != now:
        diff = [f"now {o}" for o in now if o not in then] + [f"was {o}" for o in then if o not in now]
        raise UserError(f"resume=true, but {folder.path} holds a run with other settings ({', '.join(diff)}); "
                        "resume with the same overrides, or start a new folder")


def _finished(folder: RunFolder, record: Results, config: DictConfig | None) -> Start:
    """A run that finished ok: skipped under the same epoch budget, continued from its last checkpoint under a
    larger one, refused under a smaller one (a run is never shortened, nor left as it was with exit 0)."""
    now = config.trainer.get("max_epochs") if config is not None else None
    then = record.max_epochs
    if now is None or then is None or now == then:
        return Start(skip=record)
    if not 0 < then < now:  # -1 is "no limit" in Lightning: there is no larger budget to continue to
        raise UserError(f"resume=true with trainer.max_epochs={now}, but {folder.path} already finished ok with "
                        f"trainer.max_epochs={then}, and a finished run is never shortened: resume with "
                        f"trainer.max_epochs={then} (nothing to do), a larger value to train on, or start a new folder")
    if not folder.last_checkpoint.is_file():
        raise UserError(f"resume=true with trainer.max_epochs={now} would continue {folder.path} past its {then} "
                        f"epochs, but it kept no {folder.last_checkpoint.name} (callbacks.last_checkpoint was off): "
                        "start a new folder")
    return Start(checkpoint=_checked_checkpoint(folder), extends=then)


def _checked_checkpoint(folder: RunFolder) -> Path:
    """``last.ckpt``, if it is whole: a kill or a full disk mid-write can leave it empty or cut short, and Lightning
    would then fail deep inside torch.load. A checkpoint is a zip archive; every member's CRC is checked."""
    import zipfile

    last = folder.last_checkpoint
    try:
        with zipfile.ZipFile(last) as archive:
            bad = archive.testzip()
        why = f"its part {bad} is damaged" if bad else None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        why = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    if why is None:
        return last
    best = sorted(p for p in folder.checkpoints.glob("*.ckpt") if p != last)
    fallback = f"copy {best[-1]} over it to continue from the best epoch, " if best else ""
    raise UserError(f"{last} is corrupt ({why}; a kill or a full disk while it was written?), so the run cannot "
                    f"continue from it: {fallback}delete it to start this run over in the same folder (the same "
                    "command with resume=true), or leave out hydra.run.dir to start a new one")


def _comparable(overrides: list[str]) -> list[str]:
    """Overrides that decide what a run computes: not resume, paths, or Hydra's own settings."""
    skip = ("resume=", "hydra.", "output_dir=", "trainer.max_epochs=")
    return sorted(o for o in overrides if not o.lstrip("+~").startswith(skip))


def refuse_unsafe_place(folder) -> None:
    """A run writes only into a folder of its own: never the working directory itself (``hydra.run.dir=''`` or
    ``.``: results.json among the user's files) and never inside another run's folder (its files would mix)."""
    path = Path(folder.path).resolve()
    if path == Path.cwd().resolve():
        raise UserError(f"hydra.run.dir names the working directory {path} itself, so the run would write among "
                        "its files; leave hydra.run.dir out (outputs/<date>/<time>) or name a folder of its own")
    for parent in path.parents:
        if (parent / RESULTS).is_file() or (parent / CHECKPOINTS).is_dir():
            raise UserError(f"{path} lies inside the run folder {parent}; a run inside a run would mix their "
                            "files: choose a folder outside it")
