"""The run folder: the one module that knows its layout, claims it, writes and reads its record, and
finds runs and job numbers. Nothing else in the project names a run file.

    <run>/                     outputs/<time>_<pid>-<rand>/  or  multirun/<time>_<pid>-<rand>/<job#>_<overrides>/
      .hydra/                  config.yaml, hydra.yaml, overrides.yaml: written here, after the folder is claimed
      results.json             the Results record: status running -> ok | failed | diverged; strict JSON
      predictions.csv          x_true,y_true,x_pred,y_pred per test image
      error.txt                the traceback of a run that failed for a reason other than a user error
      checkpoints/             best-epochNNN.ckpt (by val/euclid_px) and last.ckpt (every epoch, for resume)
      tensorboard/             TensorBoard event files
      csv/metrics.csv          the learning curves, one row per logged step; a resumed run appends to it
      run.lock                 flock-ed by the process writing the run; free = nobody is (any more)
    <sweep>/multirun.yaml      Hydra's sweep config: which jobs a sweep has, started or not
    <sweep>/sweep.lock         flock-ed by the process running the sweep

A run folder read here may come from anywhere, so reading never trusts it: any content of results.json
reads as a Results record (an unreadable one says why), and a checkpoint path must lie inside the run.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pixel_spotter.errors import UserError

try:  # advisory locks; absent on Windows, where concurrent runs are simply not detected
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

# Statuses a run writes ...
RUNNING, OK, FAILED, DIVERGED = "running", "ok", "failed", "diverged"
# ... and the ones only a reader can tell: the writer was killed, never wrote, wrote garbage, never started.
INTERRUPTED, UNFINISHED, UNREADABLE, NOT_STARTED = "interrupted", "unfinished", "unreadable", "not started"

HYDRA_DIR, CONFIG, HYDRA_CONFIG, OVERRIDES = ".hydra", "config.yaml", "hydra.yaml", "overrides.yaml"
RESULTS, PREDICTIONS, ERROR = "results.json", "predictions.csv", "error.txt"
CHECKPOINTS, LAST_CHECKPOINT, TENSORBOARD, LOCK = "checkpoints", "last.ckpt", "tensorboard", "run.lock"
CSV_LOG, CSV_METRICS = "csv", "metrics.csv"  # pixel_spotter/loggers.py writes CSV_METRICS into CSV_LOG
SWEEP_CONFIG, SWEEP_LOCK = "multirun.yaml", "sweep.lock"
_MAX_CSV_BYTES = 50_000_000  # read_curves refuses a bigger csv/metrics.csv (a real one: ~100 bytes/epoch)
# A run's own subfolders never hold runs; skipping them keeps finding runs fast.
_NOT_RUNS = {HYDRA_DIR, CHECKPOINTS, TENSORBOARD, CSV_LOG, "plots", "__pycache__"}
_JOB_DIR = re.compile(r"(\d+)_")  # Hydra job folders are <job#>_<overrides> (conf/hydra/default.yaml)


def unique_tag() -> str:
    """The suffix that makes a new run or sweep folder unique: the pid separates processes that start in
    the same second on one machine, the random part separates machines sharing a disk."""
    return f"{os.getpid()}-{secrets.token_hex(2)}"


# The config names run paths through these, never by file name: conf/hydra (unique folder names; cached,
# so a sweep's jobs agree on their sweep folder), conf/callbacks (checkpoints), conf/logger (tensorboard, csv).
OmegaConf.register_new_resolver("run_folder.unique", unique_tag, use_cache=True, replace=True)
OmegaConf.register_new_resolver("run_folder.checkpoints", lambda run: str(Path(run) / CHECKPOINTS), replace=True)
OmegaConf.register_new_resolver("run_folder.tensorboard", lambda run: str(Path(run) / TENSORBOARD), replace=True)
OmegaConf.register_new_resolver("run_folder.csv_log", lambda run: str(Path(run) / CSV_LOG), replace=True)


# --------------------------------------------------------------------------------------- the record


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric_dict(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and (v is None or _number(v)) for k, v in value.items())


def _optional(check):
    return lambda value: value is None or check(value)


@dataclass
class Results:
    """results.json: what ran, what it cost and what it scored; complete on its own (the report needs
    nothing else to rank runs). Metric values are floats, or None where the run produced a non-finite one."""

    status: str = RUNNING
    error: str | None = None
    model: str | None = None
    net: str | None = None
    job_num: int | None = None
    overrides: list = field(default_factory=list)
    lr: float | None = None
    max_epochs: int | None = None
    seed: int | None = None
    data: dict = field(default_factory=dict)
    weights_requested: str | None = None
    weights_used: str | None = None
    epochs_run: int | None = None
    resumed_from: str | None = None  # the checkpoint this (last) start continued from
    params: int | None = None
    train_seconds: float | None = None
    inference_ms_per_image: dict = field(default_factory=dict)
    test_overlap: float | None = None
    best_checkpoint: str | None = None  # relative to the run folder
    best_val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    device: str | None = None
    versions: dict = field(default_factory=dict)
    hardware: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        """Strict JSON: a non-finite number becomes null (and a run with one is never 'ok')."""
        return json.dumps(_finite(self.as_dict()), indent=2, default=str, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Results:
        """Parse untrusted text; never raises. Anything malformed reads as status 'unreadable' with the reason."""
        try:
            raw = json.loads(text, parse_constant=float)  # tolerate NaN/Infinity written by older versions
        except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
            return cls(status=UNREADABLE, error=f"{RESULTS} is not valid JSON ({_short(err)})")
        if not isinstance(raw, dict):
            return cls(status=UNREADABLE, error=f"{RESULTS} holds a {type(raw).__name__}, not an object")
        wrong = [name for name, check in _CHECKS.items() if name in raw and not check(raw[name])]
        if wrong:
            return cls(status=UNREADABLE, error=f"{RESULTS} has fields of the wrong type: {', '.join(wrong)}")
        record = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        if record.status not in (RUNNING, OK, FAILED, DIVERGED):
            return cls(status=UNREADABLE, error=f"{RESULTS} has an unknown status {_short(record.status)!r}")
        if record.ok and not _all_finite([record.test, record.best_val]):
            record.status, record.error = DIVERGED, "non-finite metrics recorded under status ok"
        if record.ok and not record.test:
            record.status, record.error = UNREADABLE, f"{RESULTS} says ok but holds no test metrics"
        return record


_CHECKS = {
    "status": lambda v: isinstance(v, str),
    "error": _optional(lambda v: isinstance(v, str)),
    "model": _optional(lambda v: isinstance(v, str)),
    "net": _optional(lambda v: isinstance(v, str)),
    "job_num": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "overrides": lambda v: isinstance(v, list) and all(isinstance(o, str) for o in v),
    "lr": _optional(_number),
    "max_epochs": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "seed": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "data": lambda v: isinstance(v, dict),
    "weights_requested": _optional(lambda v: isinstance(v, str)),
    "weights_used": _optional(lambda v: isinstance(v, str)),
    "epochs_run": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "resumed_from": _optional(lambda v: isinstance(v, str)),
    "params": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "train_seconds": _optional(_number),
    "inference_ms_per_image": _metric_dict,
    "test_overlap": _optional(_number),
    "best_checkpoint": _optional(lambda v: isinstance(v, str)),
    "best_val": _metric_dict,
    "test": _metric_dict,
    "device": _optional(lambda v: isinstance(v, str)),
    "versions": lambda v: isinstance(v, dict) and all(isinstance(x, (str, type(None))) for x in v.values()),
    "hardware": lambda v: isinstance(v, dict) and all(isinstance(x, (str, int, type(None))) for x in v.values()),
}
assert set(_CHECKS) == {f.name for f in fields(Results)}, "every Results field needs a type check"


def _finite(value):
    """A copy of ``value`` with every non-finite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _all_finite(metric_dicts: list[dict]) -> bool:
    return all(v is not None and math.isfinite(v) for d in metric_dicts for v in d.values())


def all_finite(metrics: dict) -> bool:
    """True when every value of a metric dict is a finite number (the test for 'diverged')."""
    return _all_finite([metrics])


def _short(text, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------- the folder


@dataclass
class Start:
    """How a claimed run begins: fresh, from a checkpoint (resume), or not at all (already ok)."""

    checkpoint: Path | None = None
    skip: Results | None = None


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
            self._interrupted(record)
        return record

    def _interrupted(self, record: Results) -> None:
        sweep = next((p for p in list(self.path.parents)[:3] if (p / SWEEP_CONFIG).is_file()), None)
        how = (f"the sweep's command plus resume=true hydra.sweep.dir={sweep}" if sweep else
               f"the same command plus resume=true hydra.run.dir={self.path}")
        record.status = INTERRUPTED
        record.error = f"the process stopped without finishing (killed?); continue it with {how}"

    def is_locked(self) -> bool:
        """Whether a live process holds this run's lock (i.e. is writing it now)."""
        if fcntl is None or not (self.path / LOCK).is_file():
            return False
        try:
            fd = os.open(self.path / LOCK, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops a shared lock we may have taken

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
        """What .hydra/ says about a run (model, lr, epochs, seed, data, overrides): the report's fallback
        for runs without a complete record. Parsed as plain YAML, unresolved; may raise on a corrupt file."""
        if not self.config_file.is_file():
            return {}
        cfg = OmegaConf.to_container(OmegaConf.load(self.config_file), resolve=False)
        plain = lambda d: {k: v for k, v in (d or {}).items() if not str(v).startswith("${")}  # noqa: E731
        record = {"lr": cfg.get("model", {}).get("lr"), "max_epochs": cfg.get("trainer", {}).get("max_epochs"),
                  "seed": cfg.get("seed"), "data": plain(cfg.get("data"))}
        if (self.hydra_dir / HYDRA_CONFIG).is_file():
            hydra_cfg = OmegaConf.to_container(OmegaConf.load(self.hydra_dir / HYDRA_CONFIG), resolve=False)
            record["model"] = hydra_cfg["hydra"]["runtime"]["choices"].get("model")
        if (self.hydra_dir / OVERRIDES).is_file():
            record["overrides"] = OmegaConf.to_container(OmegaConf.load(self.hydra_dir / OVERRIDES))
        return {k: v for k, v in record.items() if v is not None and _CHECKS[k](v)}  # wrong types are dropped

    def read_predictions(self, height, width):
        """(table, problem): the (N, 4) float array x_true, y_true, x_pred, y_pred, checked against the image
        size (true positions whole pixels inside it), or None and why not (None, None: there is no file)."""
        import numpy as np

        if not self.predictions_file.is_file():
            return None, None
        if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100_000 for v in (height, width)):
            return None, f"{PREDICTIONS} not read: the run records no usable image size"
        try:
            table = np.loadtxt(self.predictions_file, delimiter=",", skiprows=1, ndmin=2, max_rows=height * width)
        except (ValueError, OSError) as err:
            return None, f"{PREDICTIONS} unreadable ({_short(err)})"
        if table.shape[1:] != (4,) or not len(table):
            return None, f"{PREDICTIONS} is not a table of 4 columns"
        true = table[:, :2]
        inside = (true >= 0).all() and (true[:, 0] < width).all() and (true[:, 1] < height).all()
        if not (np.isfinite(true).all() and (true == np.round(true)).all() and inside):
            return None, f"{PREDICTIONS} holds true positions that are not pixels of the {height}x{width} image"
        return table, None

    def read_curves(self):
        """(curves, problem): the learning curves of csv/metrics.csv, tag ("train/loss", "val/rmse_px", ...;
        train/ and val/ only) -> (epochs, values) float arrays, epochs counted from 1 (1 = after the first
        epoch), one value per epoch: a resumed run logs again the epoch it was killed in, and the later row
        wins. ({}, None): there is no log; ({}, why) when the file is not a log this project writes."""
        import csv
        import io

        import numpy as np

        path = self.csv_log / CSV_METRICS
        name = f"{CSV_LOG}/{CSV_METRICS}"
        if not path.exists():
            return {}, None
        if not path.is_file():  # a directory, FIFO or device
            return {}, f"{name} is not a regular file"
        try:
            with path.open("rb") as f:
                data = f.read(_MAX_CSV_BYTES + 1)  # a log is ~100 bytes per epoch; never read a giant file whole
            if len(data) > _MAX_CSV_BYTES:
                return {}, f"{name} is over {_MAX_CSV_BYTES // 1_000_000} MB"
            # A process killed while appending leaves half a line: only complete lines count.
            text = data[: data.rfind(b"\n") + 1].decode("utf-8")
            reader = csv.DictReader(io.StringIO(text, newline=""))
            header = reader.fieldnames or []
            if "epoch" not in header or len(set(header)) != len(header):
                return {}, f"{name} is not a learning-curve log (no epoch column)"
            tags = [t for t in header if t.startswith(("train/", "val/"))]
            by_epoch: dict[str, dict[int, float]] = {tag: {} for tag in tags}
            for line, row in enumerate(reader, start=2):
                if None in row or None in row.values():  # more or fewer cells than the header
                    return {}, f"{name} line {line} does not match its header"
                values = {tag: float(row[tag]) for tag in tags if row[tag] != ""}
                if not values:  # a row of other metrics (test/, lr-...)
                    continue
                epoch = float(row["epoch"])
                if not (epoch.is_integer() and 0 <= epoch < 10_000_000):
                    return {}, f"{name} line {line} has epoch {_short(row['epoch'])!r}, not a whole number"
                for tag, value in values.items():
                    by_epoch[tag][int(epoch)] = value  # later rows win
        except (OSError, ValueError, csv.Error) as err:  # UnicodeDecodeError is a ValueError
            return {}, f"{name} unreadable ({_short(err)})"
        curves = {}
        for tag, values in by_epoch.items():
            epochs = sorted(values)
            if epochs:
                curves[tag] = np.asarray(epochs, dtype=float) + 1, np.asarray([values[e] for e in epochs], dtype=float)
        return curves, None

    def load_config(self) -> DictConfig:
        """The run's composed config (.hydra/config.yaml), parsed as plain YAML (no code runs)."""
        if not self.config_file.is_file():
            raise UserError(f"{self.config_file} is missing: pass a run folder (outputs/<time>) or a "
                            f"checkpoint inside one (<run>/{CHECKPOINTS}/)")
        try:
            cfg = OmegaConf.load(self.config_file)
        except Exception as err:
            raise UserError(f"{self.config_file} cannot be read ({type(err).__name__}); the run folder is "
                            "corrupt: retrain") from None
        if not isinstance(cfg, DictConfig):
            raise UserError(f"{self.config_file} is not a config mapping; the run folder is corrupt: retrain")
        return cfg

    # -- writing (this process owns the folder between claim() and the end of the run)
    @contextmanager
    def claim(self, resume: bool, overrides: list[str]) -> Iterator[Start]:
        """Own this folder for the duration of the ``with``: one process at a time, never over a finished
        or foreign run unless ``resume``. Yields how to start. Raises UserError (nothing written) on conflict."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            yield self._start(resume, overrides)
        finally:
            self._unlock()

    def _lock(self) -> None:
        self._lock_fd = hold_lock(self.path / LOCK, f"another process is writing {self.path} right now; wait "
                                  "for it, or start this run in a new folder (leave out hydra.run.dir)")

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock; a killed process releases it the same way
            self._lock_fd = None

    def _start(self, resume: bool, overrides: list[str]) -> Start:
        if not self.holds_a_run():
            return Start()
        record = self.read()
        if record.status == RUNNING:  # we hold the lock, so its writer is gone
            self._interrupted(record)
        if not resume:
            raise UserError(f"{self.path} already holds a run (status '{record.status}'); add resume=true to "
                            "continue it, or leave out hydra.run.dir / hydra.sweep.dir to start a new folder")
        comparable = record.status not in (UNFINISHED, UNREADABLE)  # else there is nothing to compare with
        then, now = _comparable(record.overrides), _comparable(overrides)
        if comparable and then != now:
            diff = [f"now {o}" for o in now if o not in then] + [f"was {o}" for o in then if o not in now]
            raise UserError(f"resume=true, but {self.path} holds a run with other settings ({', '.join(diff)}); "
                            "resume with the same overrides, or start a new folder")
        if record.ok:
            return Start(skip=record)
        if record.status != DIVERGED and self.last_checkpoint.is_file():
            return Start(checkpoint=self.last_checkpoint)
        self.clear_outputs()  # nothing to continue from: start over, without the old run's leftovers
        return Start()

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


def hold_lock(path: Path, busy: str) -> int | None:
    """Take an exclusive flock on ``path`` (created if missing) and return its descriptor; closing it, or the
    process dying in any way, releases the lock. UserError(busy) when another process holds it."""
    if fcntl is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise UserError(busy) from None
    return fd


def lock_sweep(sweep: Path) -> int | None:
    """Hold <sweep>/sweep.lock while a sweep runs, so two sweeps never write one sweep folder at once."""
    return hold_lock(Path(sweep) / SWEEP_LOCK, f"another sweep is writing {sweep} right now; wait for it, or leave "
                     "out hydra.sweep.dir to start a new folder")


def _comparable(overrides: list[str]) -> list[str]:
    """Overrides that decide what a run computes: not resume, paths, or Hydra's own settings."""
    skip = ("resume=", "hydra.", "output_dir=", "trainer.max_epochs=")
    return sorted(o for o in overrides if not o.lstrip("+~").startswith(skip))


def _atomic_write(path: Path, text: str) -> None:
    """Write through a temporary file and rename: a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # e.g. a full disk: leave the old file as it was, and no temporary behind
        tmp.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------- finding runs


def is_run_dir(path: Path) -> bool:
    return (path / HYDRA_DIR).is_dir() or (path / RESULTS).is_file()


def find_runs(folder: Path) -> list[Path]:
    """Run folders in ``folder`` (or ``folder`` itself), at any depth, in launch order (2 before 10).

    Depth matters: an override value holding a '/' (model.net.weights=/a/b.pth) makes Hydra nest the
    job folder (``0_...weights=/a/b.pth,...``), so jobs are not always direct children of the sweep.
    """
    folder = Path(folder)
    if is_run_dir(folder):
        return [folder]
    found = []
    for root, dirs, _files in os.walk(folder):
        root = Path(root)
        if root != folder and is_run_dir(root):
            found.append(root)
            dirs.clear()  # a run's own subfolders hold no runs
            continue
        dirs[:] = [d for d in dirs if d not in _NOT_RUNS]
    return sorted(found, key=lambda d: natural_key(str(d.relative_to(folder))))


def natural_key(name: str) -> tuple:
    """Sort key for job names "<num>_<overrides>" and ids: 2 before 10."""
    parts = [p for p in re.split(r"(\d+)", name) if p]
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def job_name(run_dir: Path, sweep: Path) -> str:
    """The job's number within its sweep ("3"); "<folder>/3" when ``sweep`` holds several sweeps; the
    folder's own path when it is no sweep job (a single run)."""
    parts = (run_dir.relative_to(sweep) if run_dir != sweep else Path(run_dir.name)).parts
    for i, part in enumerate(parts):
        match = _JOB_DIR.match(part)
        if match:
            return "/".join([*parts[:i], match.group(1)])
    return "/".join(parts)


@dataclass
class Job:
    """One job of a sweep: its number, and its folder (None when it never started)."""

    name: str
    path: Path | None
    overrides: list[str] = field(default_factory=list)


def sweep_jobs(folder: Path) -> list[Job]:
    """Every job of a sweep folder in launch order: the run folders found, plus the jobs Hydra's
    multirun.yaml lists that have no folder (the sweep was killed before it reached them)."""
    folder = Path(folder)
    found = [Job(job_name(d, folder), d) for d in find_runs(folder)]
    planned = planned_jobs(folder)
    for job in found:
        if job.name.isdigit() and int(job.name) < len(planned):
            job.overrides = planned[int(job.name)]
    names = {job.name for job in found}
    missing = [Job(str(num), None, overrides) for num, overrides in enumerate(planned) if str(num) not in names]
    return sorted(found + missing, key=lambda job: natural_key(job.name))


def planned_jobs(folder: Path) -> list[list[str]]:
    """The override lists of every job Hydra's basic sweeper launches for this sweep, in job order
    (the expansion of hydra.sweeper.params plus the command line); [] when unknown."""
    path = Path(folder) / SWEEP_CONFIG
    if not path.is_file():
        return []
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        hydra_cfg = OmegaConf.load(path).hydra
        if not str(hydra_cfg.sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return []  # other sweepers (Optuna) decide their jobs as they go
        params = [f"{k}={v}" for k, v in (hydra_cfg.sweeper.get("params") or {}).items()]
        args = params + list(hydra_cfg.overrides.task)
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)
        return [list(job) for batch in batches for job in batch]
    except Exception:  # a hand-edited or foreign multirun.yaml: fall back to the folders found
        return []
