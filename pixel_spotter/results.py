"""results.json: the machine-readable record a run leaves next to its Hydra config.

The report reads only these files (plus TensorBoard scalars and predictions.csv), so a record must
be complete on its own: what ran (overrides, model, data settings), what it cost and what it scored.
"""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

FILENAME = "results.json"
SKIP_DIRS = {"tensorboard", "checkpoints", "plots", ".hydra", "__pycache__"}
PACKAGES = ("torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "omegaconf", "tensorboard")


def format_px(value) -> str:
    """A pixel error for people: 3 decimals, but below 0.0005 px scientific ("1.4e-06", not "0.000"),
    so an exact model and a merely good one never print the same."""
    if value is None:
        return "—"
    return f"{value:.1e}" if 0 < abs(value) < 5e-4 else f"{value:.3f}"


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows (often just 'x86_64')."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    import torch  # here, not at the top: reading results (the report) should not pay torch's import time

    cuda = torch.cuda.is_available()
    return {"cpu": cpu_name(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if cuda else None}


def base_record(cfg: DictConfig, info: dict) -> dict:
    """What is known about a run before it trains (also what a failed run leaves)."""
    model_choice = info["choices"].get("model") or str(cfg.model.net.get("_target_", "?")).rsplit(".", 1)[-1]
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return {
        "status": "running",
        "model": model_choice,
        "net": cfg.model.net.get("_target_"),
        "overrides": info["overrides"],
        "lr": cfg.model.get("lr"),
        "max_epochs": cfg.trainer.get("max_epochs"),
        "seed": cfg.get("seed"),
        "data": {k: v for k, v in data.items() if not k.startswith("_")},
        "weights_requested": cfg.model.net.get("weights"),
        "versions": versions(),
        "hardware": hardware(),
    }


def write(out: Path, record: dict) -> Path:
    path = Path(out) / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def write_failure(out: Path, cfg: DictConfig, info: dict, message: str, trace: str | None) -> Path:
    try:
        record = base_record(cfg, info)
    except Exception:  # the config itself may be what is broken
        record = {"overrides": info["overrides"]}
    record.update(status="failed", error=message)
    if trace:
        (Path(out) / "error.txt").parent.mkdir(parents=True, exist_ok=True)
        (Path(out) / "error.txt").write_text(trace)
    return write(out, record)


def read(path: Path) -> dict:
    """Read one results.json; a missing or unreadable file reads as an unfinished run."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {"status": "unfinished", "error": "no results.json (the job did not finish)"}
    except json.JSONDecodeError as err:
        return {"status": "unfinished", "error": f"results.json is corrupt ({err})"}


def is_run_dir(path: Path) -> bool:
    return (path / ".hydra").is_dir() or (path / FILENAME).is_file()


def find_run_dirs(folder: Path) -> list[Path]:
    """Run folders in ``folder`` (or ``folder`` itself), at any depth.

    Depth matters: an override value holding a '/' (model.net.weights=/a/b.pth) makes Hydra nest the
    job folder (``0_...weights=/a/b.pth,...``), so jobs are not always direct children of the sweep.
    """
    if is_run_dir(folder):
        return [folder]
    found = []
    for root, dirs, _files in os.walk(folder):
        root = Path(root)
        if root != folder and is_run_dir(root):
            found.append(root)
            dirs.clear()  # a run's own subfolders hold no runs
            continue
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
    return found
