"""The robustness grid: one corruption at a time over a range of severities, every run and both reference
detectors scored on the very same rendered images (``benchmark``), and what the second grid
(``robustness_grid_combined.py``, blur x noise) shares with it: the test positions, scoring one cell, its rows.
``robustness.py`` is the command around them."""

from __future__ import annotations

import math
from dataclasses import dataclass

# corruption -> (data.augment.Augment field, severities); the first severity is the clean image. Distractor
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
    """The data.augment.Augment that applies exactly ``severity`` of ``corruption`` to every image, nothing else."""
    from pixel_spotter.data.augment import Augment

    field, _ = GRID[corruption]
    value = int(severity) if field == "distractors" else float(severity)
    return Augment(**{field: (value, value)})


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


def by_test_set(subjects: list[Subject]) -> dict[str, list[Subject]]:
    """The subjects grouped by test set (label -> its runs, in the order given): each group shares its images."""
    groups: dict[str, list[Subject]] = {}
    for subject in subjects:
        groups.setdefault(subject.test_set, []).append(subject)
    return groups


def test_positions(data: dict):
    """(N, 2) test positions of a run's recorded data settings, split as its training split them."""
    from pixel_spotter.data.datamodule import PixelDataModule

    datamodule = PixelDataModule(height=data["height"], width=data["width"], split=data["split"],
                                 fractions=tuple(data["fractions"]), seed=data["seed"],
                                 heldout_quadrant=data["heldout_quadrant"], random_train_size=data["random_train_size"],
                                 max_eval_images=data["max_eval_images"])
    datamodule.setup()
    return datamodule.positions["test"]


def score_cell(mine: list[Subject], positions, synth, draws: int, data_seed: int, detectors: tuple[str, ...],
               blur: float, device: str, batch_size: int) -> dict[str, _Tally]:
    """Render ``draws`` images (image k: position k mod N, seed k of the robustness stream) with ``synth`` and
    tally every detector (the matched filter told ``blur``) and every run on them."""
    import torch

    from pixel_spotter.data.seeds import ROBUSTNESS_STREAM, sample_seed
    from pixel_spotter.tasks.pixel.references import detect

    n_pos = len(positions)
    tallies = {key: _Tally() for key in (*detectors, *(s.name for s in mine))}
    for start in range(0, draws, batch_size):
        keys = range(start, min(start + batch_size, draws))
        xy = positions[[k % n_pos for k in keys]].to(device)
        images = synth(xy, [sample_seed(data_seed, ROBUSTNESS_STREAM, k) for k in keys])
        for name in detectors:
            tallies[name].add(detect(name, images, blur), xy)
        with torch.inference_mode():
            for subject in mine:
                tallies[subject.name].add(subject.net.predict_pixels(images), xy)
    return tallies


def cell_rows(tallies: dict[str, _Tally], mine: list[Subject], detectors: tuple[str, ...], label: str,
              corruption: str, severity: float, severity2: float | None = None) -> list:
    """One RobustnessRow per detector, then per run, from a cell's tallies."""
    from pixel_spotter.run_folder import REFERENCE_RUN, RobustnessRow

    series = [(REFERENCE_RUN, name, name) for name in detectors] + [(s.name, s.model, s.name) for s in mine]
    rows = []
    for run, model, key in series:
        t = tallies[key]
        p, euclid = t.correct / t.n, t.euclid / t.n
        rows.append(RobustnessRow(run=run, model=model, test_set=label, corruption=corruption,
                                  severity=float(severity), n=t.n, exact_acc=p, exact_se=math.sqrt(p * (1 - p) / t.n),
                                  euclid_px=euclid if math.isfinite(euclid) else None,
                                  severity2=None if severity2 is None else float(severity2)))
    return rows


def benchmark(subjects: list[Subject], repeats: int = DEFAULT_REPEATS, device: str = "cpu",
              batch_size: int = 1024, grid: dict | None = None) -> list:
    """RobustnessRows: per test set, corruption and severity, both reference detectors, then every run
    on that test set, all scored on the same rendered images."""
    from pixel_spotter.cli import progress
    from pixel_spotter.tasks.pixel.references import DETECTORS
    from pixel_spotter.tasks.pixel.rendering import Synthesizer

    grid = GRID if grid is None else grid
    groups = by_test_set(subjects)
    rows = []
    bar = progress(total=len(groups) * sum(len(severities) for _, severities in grid.values()),
                   desc="robustness", unit="severity")
    for label, mine in groups.items():
        d = mine[0].data
        positions = test_positions(d)
        for corruption, (_, severities) in grid.items():
            for severity in severities:
                draws = len(positions) * (repeats if _is_random(corruption, severity) else 1)
                synth = Synthesizer(d["height"], d["width"], augment_for(corruption, severity))
                blur = float(severity) if corruption == "blur" else 0.0
                tallies = score_cell(mine, positions, synth, draws, d["seed"], DETECTORS, blur, device, batch_size)
                rows += cell_rows(tallies, mine, DETECTORS, label, corruption, severity)
                bar.update()
    bar.close()
    return rows
