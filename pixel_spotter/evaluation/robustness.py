"""`pixel-spotter robustness RUN [RUN ...]`: each run's best checkpoint on its own test positions, next to
reference detectors that learn nothing (``tasks/pixel/references.py``), over two grids (``--grid``, default
both): one corruption at a time (every other corruption off) over a range of severities, next to argmax and
the matched filter (``robustness_grid.py``); and blur sigma x noise sigma together, each cell float, clipped
to [0, 1] and clipped + 8-bit, next to those two and the bank of matched filters over sigma
(``robustness_grid_combined.py``). Runs of a task the grids do not apply to (the spot task) are refused in one
line.

Each RUN is a run folder that finished ok, or a sweep folder (its ok jobs; the others are skipped with a
note). A run's test positions come from its recorded data config (.hydra/config.yaml), validated as
training validates it; the network is rebuilt by ``serving.loading.load_model`` (only pixel_spotter's classes,
weights_only=True), never from an untrusted config.

Images: each test position is rendered ``--repeats`` times per severity, image k of draw r seeded by
``data.seeds.sample_seed(data seed, ROBUSTNESS_STREAM, r * N + k)``, so every model and every reference
detector on a test set see the very same images at a given severity (a paired comparison), and the noise
field and decoy pixels of an image are the same at every severity of both grids (only their strength
changes). A corruption that draws nothing at random (blur, background, dimming, every severity 0 and every
noise-free cell of the combined grid) renders each position once: repeats would only copy it. ``n`` in the CSV
is the number of images scored.

Output: ``robustness.csv`` (run_folder.robustness_csv; a combined cell's row has the blur sigma as severity and
the noise sigma as severity2) and ``robustness.png`` (exact % against severity, one panel per corruption, then
against noise, one panel per blur and rendering), into ``--out``; by default into the sweep folder when every
run is a job of one sweep (there ``pixel-spotter report SWEEP`` picks the table up), else the current folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixel_spotter.errors import ConfigError, UserError
from pixel_spotter.evaluation.robustness_grid import DEFAULT_REPEATS, DEVICES, TEST_SET_KEYS, Subject, benchmark
from pixel_spotter.evaluation.robustness_grid_combined import benchmark_combined

GRIDS = ("single", "combined", "both")

# ---------------------------------------------------------------------------------------------- the runs


def recorded_data(folder, model_cfg: dict) -> dict:
    """The run's data settings that fix its test positions, from .hydra/config.yaml, checked as training
    checks them (training.validation._validate_data) so that a planted config cannot ask for an impossible split."""
    from omegaconf import DictConfig, OmegaConf

    from pixel_spotter.training.validation import _validate_data  # the very checks a run passed before it trained

    cfg = folder.load_config()
    try:
        data = OmegaConf.to_container(cfg.data, resolve=True)
        if not isinstance(data, dict):
            raise TypeError("not a mapping")
        node = OmegaConf.create(data)
        assert isinstance(node, DictConfig)
        _validate_data(node, OmegaConf.create(model_cfg))
    except ConfigError as err:
        raise UserError(f"{folder.config_file} records an invalid data config ({err}); the run folder is "
                        "corrupt: retrain") from None
    except Exception as err:
        raise UserError(f"{folder.config_file} has no usable data section ({type(err).__name__}); the run "
                        "folder is corrupt: retrain") from None
    return {key: data.get(key) for key in TEST_SET_KEYS}


def load_subject(path: Path, name: str, device: str) -> Subject:
    """A finished run's best network on ``device`` and its test-set settings; UserError when it is no ok run."""
    from pixel_spotter.run_folder import RunFolder
    from pixel_spotter.serving.loading import load_model, run_task, trusted_model_config

    folder = RunFolder(path)
    record = folder.read()
    if not record.ok:
        reason = f": {record.error}" if record.error else ""
        raise UserError(f"run {path} has status '{record.status}'{reason}; robustness needs a run that "
                        "finished ok")
    model_cfg, height, width = trusted_model_config(folder)
    task = run_task(folder, height, width)
    if not task.robustness:
        raise UserError(f"run {path} is a {task.name}-task run; the robustness grid corrupts clean one-pixel images "
                        "(the pixel task), which is not what it was trained on: pass pixel-task runs only")
    data = recorded_data(folder, model_cfg)
    net, _ = load_model(path)
    return Subject(name=name, model=record.model or "?", net=net.to(device), data=data)


def resolve_runs(paths: list[Path]) -> list[tuple[Path, str]]:
    """(run folder, its name in the table) for every RUN: a run folder as is, a sweep folder as its ok jobs.
    Names are job numbers when all runs are jobs of one sweep, else the paths as given (escaped where they are
    not UTF-8 or hold control characters: a legend and a terminal can show them)."""
    from pixel_spotter.report.load import printable
    from pixel_spotter.run_folder import RunFolder, find_runs, is_run_dir, job_name, sweep_of

    runs: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise UserError(f"{path} is not a folder; pass run folders (outputs/<time>) or a sweep folder "
                            "(multirun/<time>)")
        if is_run_dir(path):
            runs.append(path)
            continue
        jobs = find_runs(path)
        if not jobs:
            raise UserError(f"{path} is not a run folder and holds no runs; pass run folders (outputs/<time>) "
                            "or a sweep folder (multirun/<time>)")
        ok = [job for job in jobs if RunFolder(job).read().ok]
        for job in jobs:
            if job not in ok:
                status = RunFolder(job).read().status
                print(f"note: skipping {printable(str(job))} (status '{status}')", file=sys.stderr)
        if not ok:
            raise UserError(f"no run in {path} finished ok; nothing to benchmark")
        runs += ok
    runs = list(dict.fromkeys(runs))
    sweeps = {sweep_of(run) for run in runs}
    if len(sweeps) == 1 and None not in sweeps:
        sweep = sweeps.pop()
        return [(run, printable(job_name(run.resolve(), sweep))) for run in runs]
    return [(run, printable(str(run))) for run in runs]


def default_out(runs: list[Path]) -> Path:
    """The sweep folder when every run is a job of one sweep, else the current folder."""
    from pixel_spotter.run_folder import sweep_of

    sweeps = {sweep_of(run) for run in runs}
    return sweeps.pop() if len(sweeps) == 1 and None not in sweeps else Path.cwd()


# --------------------------------------------------------------------------------------------- benchmark


def run_grids(subjects: list[Subject], grid: str, repeats: int, device: str) -> list:
    """The rows of the grids ``grid`` names (single, combined or both: the single grid's rows first)."""
    rows = []
    if grid in ("single", "both"):
        rows += benchmark(subjects, repeats=repeats, device=device)
    if grid in ("combined", "both"):
        rows += benchmark_combined(subjects, repeats=repeats, device=device)
    return rows


# -------------------------------------------------------------------------------------------------- cli


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                        help="run folders that finished ok, or sweep folders (their ok jobs)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write robustness.csv and robustness.png (default: the sweep folder when "
                             "every RUN is a job of one sweep, else the current folder)")
    parser.add_argument("--repeats", type=_positive_int, default=DEFAULT_REPEATS,
                        help=f"renders of each test position per severity of a random corruption (noise, "
                             f"decoys); default {DEFAULT_REPEATS}")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="where to render and run (default cpu)")
    parser.add_argument("--grid", choices=GRIDS, default="both",
                        help="single: one corruption at a time (the fast one); combined: blur x noise, float, "
                             "clipped and 8-bit; both (default)")


def run_command(args: argparse.Namespace) -> int:
    import torch

    from pixel_spotter.report.plots_robustness import robustness_plot
    from pixel_spotter.run_folder import ROBUSTNESS_PLOT, write_robustness

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but no CUDA GPU is visible; use --device cpu")
    runs = resolve_runs(args.runs)
    subjects = [load_subject(path, name, args.device) for path, name in runs]
    rows = run_grids(subjects, args.grid, args.repeats, args.device)
    out = args.out or default_out([path for path, _ in runs])
    try:
        out.mkdir(parents=True, exist_ok=True)
        csv_path = write_robustness(out, rows)
        png_path = robustness_plot(rows, out / ROBUSTNESS_PLOT)
    except OSError as err:
        print(f"error: cannot write into {out}: {err}", file=sys.stderr)
        return 1
    print(f"robustness: {csv_path}\n            {png_path}")
    return 0
