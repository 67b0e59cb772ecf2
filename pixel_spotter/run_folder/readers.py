"""A run's side files (.hydra/, predictions.csv, the CSV log) read as untrusted input: types and ranges
checked, a reason instead of a trace. RunFolder's read_* methods call these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import OmegaConf

from pixel_spotter.run_folder.layout import CSV_LOG, CSV_METRICS, HYDRA_CONFIG, OVERRIDES, PREDICTIONS
from pixel_spotter.run_folder.record import _CHECKS, _short
from pixel_spotter.run_folder.yaml_reader import load_yaml

if TYPE_CHECKING:
    from pixel_spotter.run_folder.folder import RunFolder

_MAX_CSV_BYTES = 50_000_000  # read_curves refuses a bigger csv/metrics.csv (a real one: ~100 bytes/epoch)


def read_hydra(folder: RunFolder) -> dict:
    """What .hydra/ says about a run (model, lr, epochs, seed, data, overrides): the report's fallback
    for runs without a complete record. Parsed as plain YAML, unresolved; may raise on a corrupt file."""
    if not folder.config_file.is_file():
        return {}
    cfg = OmegaConf.to_container(load_yaml(folder.config_file), resolve=False)
    plain = lambda d: {k: v for k, v in (d or {}).items() if not str(v).startswith("${")}  # noqa: E731
    record = {"lr": cfg.get("model", {}).get("lr"), "max_epochs": cfg.get("trainer", {}).get("max_epochs"),
              "seed": cfg.get("seed"), "data": plain(cfg.get("data"))}
    if (folder.hydra_dir / HYDRA_CONFIG).is_file():
        hydra_cfg = OmegaConf.to_container(load_yaml(folder.hydra_dir / HYDRA_CONFIG), resolve=False)
        record["model"] = hydra_cfg["hydra"]["runtime"]["choices"].get("model")
    if (folder.hydra_dir / OVERRIDES).is_file():
        record["overrides"] = OmegaConf.to_container(load_yaml(folder.hydra_dir / OVERRIDES))
    return {k: v for k, v in record.items() if v is not None and _CHECKS[k](v)}  # wrong types are dropped

def read_predictions(folder: RunFolder, height, width):
    """(table, problem): the (N, 4) float array x_true, y_true, x_pred, y_pred, checked against the image
    size (true positions whole pixels inside it), or None and why not (None, None: there is no file)."""
    import numpy as np

    if not folder.predictions_file.is_file():
        return None, None
    if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100_000 for v in (height, width)):
        return None, f"{PREDICTIONS} not read: the run records no usable image size"
    try:
        table = np.loadtxt(folder.predictions_file, delimiter=",", skiprows=1, ndmin=2, max_rows=height * width)
    except (ValueError, OSError) as err:
        return None, f"{PREDICTIONS} unreadable ({_short(err)})"
    if table.shape[1:] != (4,) or not len(table):
        return None, f"{PREDICTIONS} is not a table of 4 columns"
    true = table[:, :2]
    inside = (true >= 0).all() and (true[:, 0] < width).all() and (true[:, 1] < height).all()
    if not (np.isfinite(true).all() and (true == np.round(true)).all() and inside):
        return None, f"{PREDICTIONS} holds true positions that are not pixels of the {height}x{width} image"
    return table, None

def read_curves(folder: RunFolder):
    """(curves, problem): the learning curves of csv/metrics.csv, tag ("train/loss", "val/rmse_px", ...;
    train/ and val/ only) -> (epochs, values) float arrays, epochs counted from 1 (1 = after the first
    epoch), one value per epoch: a resumed run logs again the epoch it was killed in, and the later row
    wins. ({}, None): there is no log; ({}, why) when the file is not a log this project writes."""
    import csv
    import io

    import numpy as np

    path = folder.csv_log / CSV_METRICS
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
