"""Factor effects and seed spread: how much the learning rate, the epochs and the seed move the test error.

Part of the analysis stage: runs are only compared inside one group (model, data setting and weights),
since runs in different groups measure different things.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pixel_spotter.report.analysis import Entry

FACTORS = ("lr", "max_epochs")  # record keys whose effect on the test error is measured


@dataclass(frozen=True)
class FactorEffect:
    """Mean test error per value of one factor within one group of comparable runs of a model."""

    factor: str  # "lr" or "max_epochs"
    model: str
    group: str
    means: list[tuple[object, float, int]]  # (value, mean test error in px, runs averaged), by value
    best: object  # the value with the lowest mean error
    worst: object
    change_pct: float  # how much lower the best value's error is, in % of the worst value's


@dataclass(frozen=True)
class SeedSpread:
    """The same training repeated with several seeds: the range of its results."""

    model: str
    group: str
    lr: float | None
    epochs: int | None
    n_seeds: int
    exact: tuple[float, float]  # (lowest, highest) exact fraction
    euclid: tuple[float, float]  # (lowest, highest) test mean Euclidean error (px)
    train_seconds: tuple[float, float] | None


def factor_effects(entries: list[Entry]) -> dict[str, list[FactorEffect]]:
    """Factor -> its effect in each group of finished runs where it took more than one value."""
    groups = _groups(entries)
    return {factor: [effect for (model, name), group in groups.items()
                     if (effect := _effect(factor, model, name, group))] for factor in FACTORS}


def seed_spreads(entries: list[Entry]) -> list[SeedSpread]:
    """Run-to-run spread where the same training was repeated with several seeds."""
    repeats: dict[tuple, list[Entry]] = {}
    for entry in entries:
        if entry.ok:
            key = (entry.model, entry.group, entry.record.get("lr"), entry.record.get("max_epochs"))
            repeats.setdefault(key, []).append(entry)
    spreads = []
    for (model, group, lr, epochs), mine in repeats.items():
        seeds = {e.record.get("seed") for e in mine}
        if len(seeds) < 2:
            continue
        exact, euclid = [e.test("exact_acc") for e in mine], [e.test() for e in mine]
        times = [e.record["train_seconds"] for e in mine if e.record.get("train_seconds") is not None]
        spreads.append(SeedSpread(model, group, lr, epochs, len(seeds), (min(exact), max(exact)),
                                  (min(euclid), max(euclid)), (min(times), max(times)) if times else None))
    return spreads


def _groups(entries: list[Entry]) -> dict[tuple[str, str], list[Entry]]:
    """Finished runs by (model, data setting and weights): only runs inside one group measure the same thing."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        if entry.ok:
            groups.setdefault((entry.model, entry.group), []).append(entry)
    return dict(sorted(groups.items()))


def _effect(factor: str, model: str, group_name: str, group: list[Entry]) -> FactorEffect | None:
    """Mean test error per value of ``factor``, averaged over the group's other factors (None: one value)."""
    by_value: dict = {}
    for entry in group:
        by_value.setdefault(entry.record.get(factor), []).append(entry.test())
    if len(by_value) < 2:
        return None
    means = {v: float(np.mean(errs)) for v, errs in by_value.items()}
    best, worst = min(means, key=means.get), max(means, key=means.get)
    change = 100 * (means[worst] - means[best]) / means[worst] if means[worst] else 0.0
    return FactorEffect(factor, model, group_name, [(v, means[v], len(by_value[v])) for v in
                                                    sorted(means, key=lambda v: (v is None, v))], best, worst, change)
