"""Head to head and overlap: one model's best run against another's on the same data setting (with paired
per-image differences and matched settings), and random-split runs against position-split runs of the same training.

Part of the analysis stage: ``analysis.analyze`` calls these once and keeps their results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pixel_spotter.report.analysis import Entry
    from pixel_spotter.report.load import Run

# The write-ups' baseline CNN: by default every other model is compared head to head with it (when it is present).
BASELINE = "cnn"


@dataclass(frozen=True)
class Paired:
    """Mean and 95% half-width (normal approximation) of one run's minus another's per-image error."""

    mean: float
    half_width: float
    n: int

    @property
    def significant(self) -> bool:
        return abs(self.mean) > self.half_width


@dataclass(frozen=True)
class Matched:
    """Challenger against baseline over runs with the same lr, epochs, data setting and seed."""

    n: int
    wins: int  # pairs where the challenger had the lower error
    mean_difference: float  # challenger minus baseline (px)


@dataclass(frozen=True)
class Comparison:
    challenger: str
    baseline: str
    setting: str  # the data setting both best runs share ("" when all runs share one)
    challenger_best: Entry
    baseline_best: Entry
    difference: float  # challenger's best minus baseline's best test error (px)
    relative_pct: float | None  # |difference| in % of the baseline's error (None when that is 0)
    paired: Paired | None  # per image, when both best runs were tested on the same positions
    matched: Matched | None
    weights_used: list[str]  # what the challenger's finished runs really used


@dataclass(frozen=True)
class OverlapCheck:
    """A run tested partly on training positions, against position-split runs of the same training."""

    run: Entry
    references: list[Entry]  # finished position-split runs, same model, lr, epochs and image size
    reference_mean: float | None


# ------------------------------------------------------------------------------------------ head to head


def paired(a: Run, b: Run) -> Paired | None:
    """a's minus b's per-image error, when both runs were tested on the same positions; None otherwise."""
    pa, pb = a.predictions, b.predictions
    if pa is None or pb is None or len(pa) != len(pb):
        return None
    oa, ob = np.lexsort((pa[:, 0], pa[:, 1])), np.lexsort((pb[:, 0], pb[:, 1]))
    if not np.array_equal(pa[oa, :2], pb[ob, :2]):
        return None
    diff = a.errors[oa] - b.errors[ob]
    half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.inf
    return Paired(float(diff.mean()), float(half), len(diff))


def _matched(entries: list[Entry], challenger: str, baseline: str) -> Matched | None:
    """Challenger and baseline runs with the same lr, epochs, data and seed."""
    key = lambda e: (e.record.get("lr"), e.record.get("max_epochs"), e.setting, e.record.get("seed"))  # noqa: E731
    base = {key(e): e for e in entries if e.ok and e.model == baseline}
    pairs = [(e, base[key(e)]) for e in entries if e.ok and e.model == challenger and key(e) in base]
    if not pairs:
        return None
    return Matched(len(pairs), sum(c.test() < b.test() for c, b in pairs),
                   float(np.mean([c.test() - b.test() for c, b in pairs])))


def default_pairs(models: list[str]) -> list[tuple[str, str]]:
    """Every model present against the write-ups' baseline cnn, when the baseline is present."""
    return [(m, BASELINE) for m in models if m != BASELINE] if BASELINE in models else []


def compare(entries: list[Entry], by_setting: dict[tuple[str, str], Entry], pairs) -> tuple[list[Comparison], list]:
    """Each (challenger, baseline) pair on every data setting where both have a finished run: runs on
    different settings (e.g. the position and the quadrant split) measure different things, so a best run
    is only ever compared with the other model's best on the same setting."""
    done, missing = [], []
    settings = list(dict.fromkeys(setting for _, setting in by_setting))
    for challenger, baseline in pairs:
        found = False
        for setting in settings:
            c, b = by_setting.get((challenger, setting)), by_setting.get((baseline, setting))
            if c is None or b is None:
                continue
            found = True
            here = [e for e in entries if e.setting == setting]
            diff = c.test() - b.test()
            weights = sorted({str(e.record.get("weights_used")) for e in entries if e.ok and e.model == challenger})
            done.append(Comparison(challenger, baseline, setting, c, b, diff,
                                   100 * abs(diff) / b.test() if b.test() else None,
                                   paired(c.run, b.run), _matched(here, challenger, baseline), weights))
        if not found:
            missing.append((challenger, baseline))
    return done, missing


# --------------------------------------------------------------------------------------------- overlap


def _same_training(a: Entry, b: Entry) -> bool:
    return a.model == b.model and all(a.record.get(k) == b.record.get(k) for k in ("lr", "max_epochs")) and all(
        a.data.get(k) == b.data.get(k) for k in ("height", "width"))


def overlaps(entries: list[Entry]) -> list[OverlapCheck]:
    """How much the random split's train/test overlap flatters the score."""
    checks = []
    for entry in (e for e in entries if e.ok and e.overlap):
        refs = [e for e in entries if e.ok and e.data.get("split") == "position" and _same_training(e, entry)]
        checks.append(OverlapCheck(entry, refs, float(np.mean([e.test() for e in refs])) if refs else None))
    return checks
