"""The report's robustness numbers, from the robustness table (``pixel-spotter robustness``): for each
test set and corruption, the better reference detector (the higher mean exact % over the severity grid)
and, for every run, its largest shortfall below that reference over the grid, in percentage points.

Part of the analysis stage: load.load_robustness reads the table (never raising), this computes, narrative
words it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pixel_spotter.run_folder import RobustnessRow

# How each corruption's severity reads (axis labels, sentences).
SEVERITY_NAMES = {"noise": "noise σ", "blur": "blur σ", "background": "background",
                  "dimming": "intensity", "distractors": "decoy pixels"}


@dataclass(frozen=True)
class Gap:
    """One run's largest shortfall (percentage points of exact %) below the better reference, over the grid."""

    run: str
    model: str
    max_gap_pp: float  # > 0: below the reference at some severity; <= 0: never below it
    at_severity: float  # where the shortfall is largest


@dataclass(frozen=True)
class CorruptionSummary:
    test_set: str
    corruption: str
    reference: str  # the better reference detector ("argmax", "matched_filter"), or both when they tie
    gaps: list[Gap]  # closest to the reference first


@dataclass
class Robustness:
    """The robustness tables of the report's folders: their rows, what they say, and what could not be read."""

    rows: list[RobustnessRow] = field(default_factory=list)
    summaries: list[CorruptionSummary] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "<folder>: ... unreadable: why"

    @property
    def test_sets(self) -> list[str]:
        return list(dict.fromkeys(r.test_set for r in self.rows))


def analyze_robustness(loaded: tuple[list[RobustnessRow], list[str]] | None) -> Robustness | None:
    """What load.load_robustness read (None: no folder has a robustness table) -> rows, summaries, problems."""
    if loaded is None:
        return None
    rows, problems = loaded
    return Robustness(rows=rows, summaries=summarize(rows), problems=problems)


def _curve(rows: list[RobustnessRow]) -> dict[float, float]:
    """severity -> exact % (a later duplicate row wins)."""
    return {r.severity: 100 * r.exact_acc for r in rows}


def summarize(rows: list[RobustnessRow]) -> list[CorruptionSummary]:
    summaries = []
    keys = list(dict.fromkeys((r.test_set, r.corruption) for r in rows))
    for test_set, corruption in keys:
        mine = [r for r in rows if (r.test_set, r.corruption) == (test_set, corruption)]
        references = {}
        for r in mine:
            if r.reference:
                references.setdefault(r.model, []).append(r)
        if not references:
            continue
        curves = {name: _curve(rs) for name, rs in references.items()}
        means = {name: sum(c.values()) / len(c) for name, c in curves.items()}
        top = max(means.values())
        tied = [name for name, mean in means.items() if mean == top]
        best = curves[tied[0]]
        series = list(dict.fromkeys((r.run, r.model) for r in mine if not r.reference))
        gaps = []
        for run, model in series:
            curve = _curve([r for r in mine if (r.run, r.model) == (run, model)])
            shared = [s for s in curve if s in best]
            if shared:
                worst = max(shared, key=lambda s: (best[s] - curve[s], -shared.index(s)))
                gaps.append(Gap(run, model, best[worst] - curve[worst], worst))
        gaps.sort(key=lambda g: g.max_gap_pp)
        summaries.append(CorruptionSummary(test_set, corruption, " = ".join(tied), gaps))
    return summaries


def is_job_name(run: str) -> bool:
    """A job number ("3"), maybe after its sweep's name ("2026-01-01_12-00-00_77-ab12/3"), not a path."""
    return re.fullmatch(r"(?:[^/]+/)?\d+", run) is not None


def series_label(row: RobustnessRow, test_sets: list[str]) -> str:
    """A row's line in tables and legends: 'argmax', '#3 heatmap', 'heatmap (outputs/run)'; ' [set 2]' added
    when there are several test sets."""
    if row.reference:
        text = row.model
    elif is_job_name(row.run):
        text = f"#{row.run} {row.model}"
    else:  # a run folder's path
        text = f"{row.model} ({row.run if len(row.run) <= 30 else '…' + row.run[-29:]})"
    return text + (f" [set {test_sets.index(row.test_set) + 1}]" if len(test_sets) > 1 else "")
