"""The robustness grid: one corruption at a time over a range of severities, every run and both reference
detectors scored on the very same rendered images (``benchmark``). ``robustness.py`` is the command around it."""

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
    from pixel_spotter.cli import progress

    cells = len(by_set) * sum(len(severities) for _, severities in grid.values())
    bar = progress(total=cells, desc="robustness", unit="severity")
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
                bar.update()
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
    bar.close()
    return rows
