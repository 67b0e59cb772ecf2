"""RunFolder: a run folder's paths, its record and other files read safely or written atomically, and
claim() — owning the folder for a run, through locks.py (who writes it) and resume.py (how it starts)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder import readers
from pixel_spotter.run_folder.layout import (
    CHECKPOINTS,
    CONFIG,
    CSV_LOG,
    ERROR,
    HYDRA_CONFIG,
    HYDRA_DIR,
    LAST_CHECKPOINT,
    LOCK,
    OK,
    OVERRIDES,
    PREDICTIONS,
    RESULTS,
    RUNNING,
    TENSORBOARD,
    UNFINISHED,
    UNREADABLE,
)
from pixel_spotter.run_folder.legacy import modernize
from pixel_spotter.run_folder.locks import hold_lock, is_held, release
from pixel_spotter.run_folder.record import Results, _short
from pixel_spotter.run_folder.resume import Start, mark_interrupted, refuse_unsafe_place, start
from pixel_spotter.run_folder.yaml_reader import load_yaml


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- layout
    @property
    def hydra_dir(self) -> Path:
        return self.path / HYDRA_DIR

    @property
    def config_file(self) -> Path:
        return self.hydra_dir / CONFIG

    @property
    def results_file(self) -> Path:
        return self.path / RESULTS

    @property
    def predictions_file(self) -> Path:
        return self.path / PREDICTIONS

    @property
    def error_file(self) -> Path:
        return self.path / ERROR

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def csv_log(self) -> Path:
        return self.path / CSV_LOG

    def holds_a_run(self) -> bool:
        return self.results_file.exists() or self.checkpoints.exists()

    # -- reading (untrusted)
    def read(self) -> Results:
        """The record, never raising; 'running' becomes 'interrupted' when no process holds the lock."""
        if self.results_file.exists() and not self.results_file.is_file():  # a directory, FIFO or device
            return Results(status=UNREADABLE, error=f"{RESULTS} is not a regular file")
        try:
            with self.results_file.open("rb") as f:
                text = f.read(10_000_000)  # a record is a few kB; never read a planted giant file whole
        except FileNotFoundError:
            return Results(status=UNFINISHED, error=f"no {RESULTS} (the job did not get far enough to write one)")
        except OSError as err:
            return Results(status=UNREADABLE, error=f"{RESULTS} cannot be read ({_short(err)})")
        record = Results.from_json(text)
        if record.status == RUNNING and not self.is_locked():
            mark_interrupted(record, self.path)
        return record

    def is_locked(self) -> bool:
        """Whether a live process holds this run's lock (i.e. is writing it now)."""
        return is_held(self.path / LOCK)

    def inside(self, candidate: str | Path) -> Path:
        """``candidate`` (relative to the run, or absolute) resolved, if it lies inside this run folder."""
        root = self.path.resolve()
        path = (root / candidate).resolve()  # an absolute candidate replaces root; '..' and links are resolved
        if path != root and root not in path.parents:
            raise UserError(f"{self.results_file} points outside its run folder ({_short(candidate)}); "
                            "the folder was tampered with or moved in pieces: retrain, or pass a checkpoint file")
        return path

    def best_checkpoint(self) -> Path:
        """The checkpoint the run's record names as its best, checked to be a file inside the run."""
        record = self.read()
        if record.status != OK:
            reason = f": {record.error}" if record.error else ""
            raise UserError(f"run {self.path} has status '{record.status}'{reason}; predict needs a run "
                            "that finished ok (or pass one of its checkpoint files explicitly)")
        if not record.best_checkpoint:
            raise UserError(f"run {self.path} records no best checkpoint; retrain it")
        path = self.inside(record.best_checkpoint)
        if not path.is_file():
            raise UserError(f"the best checkpoint {path} recorded by {self.results_file} is missing; "
                            "copy the whole run folder, or retrain")
        return path

    def read_hydra(self) -> dict:
        """What .hydra/ says about the run (readers.read_hydra)."""
        return readers.read_hydra(self)

    def read_predictions(self, height, width):
        """(table, problem) from predictions.csv (readers.read_predictions)."""
        return readers.read_predictions(self, height, width)

    def read_curves(self):
        """(curves, problem) from the CSV log (readers.read_curves)."""
        return readers.read_curves(self)

    def load_config(self) -> DictConfig:
        """The run's composed config (.hydra/config.yaml), parsed as plain YAML (no code runs)."""
        if not self.config_file.is_file():
            raise UserError(f"{self.config_file} is missing: pass a run folder (outputs/<time>) or a "
                            f"checkpoint inside one (<run>/{CHECKPOINTS}/)")
        try:
            cfg = load_yaml(self.config_file)
        except UserError:
            raise
        except Exception as err:
            raise UserError(f"{self.config_file} cannot be read ({type(err).__name__}); the run folder is "
                            "corrupt: retrain") from None
        if not isinstance(cfg, DictConfig):
            raise UserError(f"{self.config_file} is not a config mapping; the run folder is corrupt: retrain")
        return modernize(cfg)  # classes named where they lived before the package took its areas (legacy.py)

    # -- writing (this process owns the folder between claim() and the end of the run)
    @contextmanager
    def claim(self, resume: bool, overrides: list[str], config: DictConfig | None = None) -> Iterator[Start]:
        """Own this folder for the duration of the ``with``: one process at a time, never over a finished
        or foreign run unless ``resume``, and then only under the ``config`` it began with. Yields how to start.
        Raises UserError (nothing written) on conflict."""
        refuse_unsafe_place(self)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = hold_lock(self.path / LOCK, f"another process is writing {self.path} right now; wait "
                                  "for it, or start this run in a new folder (leave out hydra.run.dir)")
        try:
            yield start(self, resume, overrides, config)
        finally:
            release(self._lock_fd)
            self._lock_fd = None

    def clear_outputs(self) -> None:
        """Remove what a previous attempt left (checkpoints, curves, predictions) so a fresh start never mixes."""
        import shutil

        for path in (self.checkpoints, self.tensorboard, self.csv_log):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.predictions_file, self.error_file, self.results_file):
            path.unlink(missing_ok=True)

    def save_config(self, cfg: DictConfig) -> None:
        """.hydra/: the composed config, Hydra's own config and the overrides (what Hydra would have written
        itself; conf/hydra/default.yaml turns that off so an existing run is never overwritten before claim)."""
        from hydra.core.hydra_config import HydraConfig

        self.hydra_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.config_file, OmegaConf.to_yaml(cfg))
        if HydraConfig.initialized():
            hydra_cfg = HydraConfig.get()
            _atomic_write(self.hydra_dir / HYDRA_CONFIG, OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))
            _atomic_write(self.hydra_dir / OVERRIDES, OmegaConf.to_yaml(hydra_cfg.overrides.task))

    def write(self, record: Results) -> Path:
        _atomic_write(self.results_file, record.to_json())
        return self.results_file

    def write_error(self, trace: str) -> None:
        _atomic_write(self.error_file, trace)

    def write_predictions(self, rows: list[tuple[float, float, float, float]]) -> None:
        lines = ["x_true,y_true,x_pred,y_pred"] + [f"{xt:.0f},{yt:.0f},{xp:.4f},{yp:.4f}" for xt, yt, xp, yp in rows]
        _atomic_write(self.predictions_file, "\n".join(lines) + "\n")


STALE_TEMPORARY_S = 600  # a leftover temporary untouched this long, whose process is gone, is removed


def temporary_beside(path: Path) -> Path:
    """The hidden file a write of ``path`` goes through (``.<name>.<pid>.tmp``, renamed over ``path`` once whole),
    after removing what earlier writers of ``path`` that were killed mid-write left: temporaries whose process
    is gone and that nobody touched for ``STALE_TEMPORARY_S`` (a writer on another machine sharing the disk has a
    pid that means nothing here, but a live one keeps its file fresh)."""
    import glob
    import time

    for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = old.name[len(path.name) + 2:-len(".tmp")]
        try:
            stale = pid.isdigit() and not _alive(int(pid)) and time.time() - old.stat().st_mtime > STALE_TEMPORARY_S
            if stale:
                old.unlink()
        except OSError:  # gone meanwhile, or not ours to remove: it is not what we write
            pass
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):  # someone else's process, or no such number: not ours to judge
        return True
    return True


def _atomic_write(path: Path, text: str) -> None:
    """Write through a temporary file and rename: a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(path)
    try:
        with tmp.open("w", encoding="utf-8", errors="backslashreplace") as f:  # a non-UTF-8 file name: escaped
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # e.g. a full disk: leave the old file as it was, and no temporary behind
        tmp.unlink(missing_ok=True)
        raise
