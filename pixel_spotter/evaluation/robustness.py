"""`pixel-spotter robustness RUN [RUN ...]`: each run's best checkpoint on its own test positions, under one
corruption at a time (every other corruption off), over a grid of severities, next to two reference
detectors (``detectors.py``: argmax and the matched filter).

Each RUN is a run folder that finished ok, or a sweep folder (its ok jobs; the others are skipped with a
note). A run's test positions come from its recorded data config (.hydra/config.yaml), validated as
training validates it; the network is rebuilt by ``serving.loading.load_model`` (only pixel_spotter's classes,
weights_only=True), never from an untrusted config.

Images: each test position is rendered ``--repeats`` times per severity, image k of draw r seeded by
``synthesis.sample_seed(data seed, ROBUSTNESS_STREAM, r * N + k)``, so every model and both reference
detectors on a test set see the very same images at a given severity (a paired comparison), and the noise
field and decoy pixels of an image are the same at every severity (only their strength changes). A
corruption that draws nothing at random (blur, background, dimming, and every severity 0) renders each
position once: repeats would only copy it. ``n`` in the CSV is the number of images scored.

Output: ``robustness.csv`` (run_folder.robustness_csv) and ``robustness.png`` (exact % against severity,
one panel per corruption), into ``--out``; by default into the sweep folder when every run is a job of one
sweep (there ``pixel-spotter report SWEEP`` picks the table up), else the current folder.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from pixel_spotter.errors import ConfigError, UserError

# corruption -> (synthesis.Augment field, severities); the first severity is the clean image. Distractor
# pixels are at Augment's default distractor_intensity, half the spot's brightness.
GRID: dict[str, tuple[str, tuple[float, ...]]] = {
    "noise": ("noise_std", (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)),  # Gaussian sigma, image range [0, 1]
    "blur": ("blur_sigma", (0.0, 0.5, 1.0, 1.5, 2.0)),  # Gaussian blur sigma (px), energy preserving
    "background": ("background", (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)),  # constant offset
    "dimming": ("intensity", (1.0, 0.7, 0.5, 0.3, 0.2, 0.1)),  # the image multiplied by this
    "distractors": ("distractors", (0, 1, 2, 3, 4, 5)),  # decoy pixels at half intensity
}
DEVICES = ("cpu", "cuda")
DEFAULT_REPEATS = 4
# Data settings that fix a run's test positions (PixelDataModule arguments); runs equal in all of them share
# their test set, and so their images.
TEST_SET_KEYS = ("height", "width", "split", "fractions", "seed", "heldout_quadrant", "random_train_size",
                 "max_eval_images")


@dataclass
class Subject:
    """One run to benchmark: its name in the table, model name, network (eval mode) and test-set settings."""

    name: str
    model: str
    net: object
    data: dict

    @property
    def test_set(self) -> str:
        return test_set_label(self.data)


def test_set_label(data: dict) -> str:
    """A short, unique description of a test set: '16x16 position seed=0 fractions=0.7/0.15/0.15'."""
    parts = [f"{data['height']}x{data['width']}", data["split"], f"seed={data['seed']}",
             "fractions=" + "/".join(f"{f:g}" for f in data["fractions"])]
    if data["split"] == "quadrant":
        parts.append(f"heldout={data['heldout_quadrant']}")
    if data["split"] == "random":
        parts.append(f"train_size={data['random_train_size']}")
    if data.get("max_eval_images") is not None:
        parts.append(f"max_eval_images={data['max_eval_images']}")
    return " ".join(parts)


def augment_for(corruption: str, severity: float):
    """The synthesis.Augment that applies exactly ``severity`` of ``corruption`` to every image, nothing else."""
    from pixel_spotter.data.augment import Augment

    field, _ = GRID[corruption]
    value = int(severity) if field == "distractors" else float(severity)
    return Augment(**{field: (value, value)})


# ---------------------------------------------------------------------------------------------- the runs


def recorded_data(folder, model_cfg: dict) -> dict:
    """The run's data settings that fix its test positions, from .hydra/config.yaml, checked as training
    checks them (config._validate_data) so that a planted config cannot ask for an impossible split."""
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
    Names are job numbers when all runs are jobs of one sweep, else the paths as given."""
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
                print(f"note: skipping {job} (status '{RunFolder(job).read().status}')", file=sys.stderr)
        if not ok:
            raise UserError(f"no run in {path} finished ok; nothing to benchmark")
        runs += ok
    runs = list(dict.fromkeys(runs))
    sweeps = {sweep_of(run) for run in runs}
    if len(sweeps) == 1 and None not in sweeps:
        sweep = sweeps.pop()
        return [(run, job_name(run.resolve(), sweep)) for run in runs]
    return [(run, str(run)) for run in runs]


def default_out(runs: list[Path]) -> Path:
    """The sweep folder when every run is a job of one sweep, else the current folder."""
    from pixel_spotter.run_folder import sweep_of

    sweeps = {sweep_of(run) for run in runs}
    return sweeps.pop() if len(sweeps) == 1 and None not in sweeps else Path.cwd()


# --------------------------------------------------------------------------------------------- benchmark


def _is_random(corruption: str, severity: float) -> bool:
    """Whether images at this severity hold random draws (noise, decoy positions): else one render suffices."""
    return corruption in ("noise", "distractors") and severity != 0


class _Tally:
    """Running sums for one row: correct answers, Euclidean errors, images."""

    def __init__(self):
        self.correct, self.euclid, self.n = 0, 0.0, 0

    def add(self, pred, true) -> None:
        import torch

        pred = pred.float()
        self.correct += int((torch.round(pred) == true.float()).all(dim=1).sum())
        self.euclid += float(torch.linalg.vector_norm(pred - true.float(), dim=1).sum())
        self.n += len(true)


def benchmark(subjects: list[Subject], repeats: int = DEFAULT_REPEATS, device: str = "cpu",
              batch_size: int = 1024, grid: dict | None = None) -> list:
    """RobustnessRows: per test set, corruption and severity, both reference detectors, then every run
    on that test set, all scored on the same rendered images."""
    import torch

    from pixel_spotter.data.datamodule import PixelDataModule
    from pixel_spotter.data.seeds import ROBUSTNESS_STREAM, sample_seed
    from pixel_spotter.run_folder import REFERENCE_RUN, RobustnessRow
    from pixel_spotter.tasks.pixel.references import DETECTORS, detect
    from pixel_spotter.tasks.pixel.rendering import Synthesizer

    grid = GRID if grid is None else grid
    by_set: dict[str, list[Subject]] = {}
    for subject in subjects:
        by_set.setdefault(subject.test_set, []).append(subject)
    rows = []
    for label, mine in by_set.items():
        d = mine[0].data
        datamodule = PixelDataModule(height=d["height"], width=d["width"], split=d["split"],
                                     fractions=tuple(d["fractions"]), seed=d["seed"],
                                     heldout_quadrant=d["heldout_quadrant"], random_train_size=d["random_train_size"],
                                     max_eval_images=d["max_eval_images"])
        datamodule.setup()
        positions = datamodule.positions["test"]
        n_pos = len(positions)
        for corruption, (_, severities) in grid.items():
            for severity in severities:
                draws = n_pos * (repeats if _is_random(corruption, severity) else 1)
                synth = Synthesizer(d["height"], d["width"], augment_for(corruption, severity))
                blur = float(severity) if corruption == "blur" else 0.0
                tallies = {key: _Tally() for key in (*DETECTORS, *(s.name for s in mine))}
                for start in range(0, draws, batch_size):
                    keys = range(start, min(start + batch_size, draws))
                    xy = positions[[k % n_pos for k in keys]].to(device)
                    images = synth(xy, [sample_seed(d["seed"], ROBUSTNESS_STREAM, k) for k in keys])
                    for name in DETECTORS:
                        tallies[name].add(detect(name, images, blur), xy)
                    with torch.inference_mode():
                        for subject in mine:
                            tallies[subject.name].add(subject.net.predict_pixels(images), xy)
                series = [(REFERENCE_RUN, name, name) for name in DETECTORS]
                series += [(s.name, s.model, s.name) for s in mine]
                for run, model, key in series:
                    t = tallies[key]
                    p = t.correct / t.n
                    euclid = t.euclid / t.n
                    rows.append(RobustnessRow(run=run, model=model, test_set=label, corruption=corruption,
                                              severity=float(severity), n=t.n, exact_acc=p,
                                              exact_se=math.sqrt(p * (1 - p) / t.n),
                                              euclid_px=euclid if math.isfinite(euclid) else None))
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


def run_command(args: argparse.Namespace) -> int:
    import torch

    from pixel_spotter.report.plots_robustness import robustness_plot
    from pixel_spotter.run_folder import ROBUSTNESS_PLOT, write_robustness

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but no CUDA GPU is visible; use --device cpu")
    runs = resolve_runs(args.runs)
    subjects = [load_subject(path, name, args.device) for path, name in runs]
    rows = benchmark(subjects, repeats=args.repeats, device=args.device)
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
