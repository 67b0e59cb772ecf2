"""The report's robustness numbers, from the robustness table (``pixel-spotter robustness``): for each
test set and corruption, the better reference detector (the higher mean exact % over the severity grid)
and, for every run, its largest shortfall below that reference over the grid, in percentage points.

The combined grid (rows with a severity2: blur sigma x noise sigma, per rendering) is kept apart
(``Robustness.combined``): its summaries compare every run with the better *realizable* reference, argmax or
the bank of matched filters (neither is told the blur), and, as a bound, with the matched filter told the
true blur; ``combined_lines`` and ``combined_table`` word them.

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


REALIZABLE = ("argmax", "matched_filter_bank")  # references not told the blur: what a deployed detector could do
TOLD = "matched_filter"  # told the true blur: a bound, not a detector one could deploy
RENDERING_NAMES = {"blur+noise": "float", "blur+noise clipped": "clipped", "blur+noise 8-bit": "clipped + 8-bit"}


@dataclass(frozen=True)
class CellGap:
    """One run's largest shortfall (pp of exact %) below a reference over the blur x noise grid, and where."""

    run: str
    model: str
    max_gap_pp: float  # > 0: below the reference somewhere; <= 0: never below it
    blur: float
    noise: float


@dataclass(frozen=True)
class CombinedSummary:
    """One test set and rendering of the blur x noise grid: the better realizable reference, every run's
    largest gap below it (closest first) and, as a bound, below the matched filter told the true blur."""

    test_set: str
    corruption: str  # the rendering: "blur+noise", "blur+noise clipped", "blur+noise 8-bit"
    reference: str  # the better realizable reference, or both joined by " = " when they tie
    gaps: list[CellGap]
    told_gaps: dict[tuple[str, str], CellGap]  # (run, model) -> its gap below matched_filter; {} without one


@dataclass
class Robustness:
    """The robustness tables of the report's folders: their rows, what they say, and what could not be read."""

    rows: list[RobustnessRow] = field(default_factory=list)  # the single-corruption grid's rows
    summaries: list[CorruptionSummary] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "<folder>: ... unreadable: why"
    combined: list[RobustnessRow] = field(default_factory=list)  # the blur x noise grid's rows (severity2 set)
    combined_summaries: list[CombinedSummary] = field(default_factory=list)

    @property
    def test_sets(self) -> list[str]:
        return list(dict.fromkeys(r.test_set for r in (*self.rows, *self.combined)))


def analyze_robustness(loaded: tuple[list[RobustnessRow], list[str]] | None) -> Robustness | None:
    """What load.load_robustness read (None: no folder has a robustness table) -> rows, summaries, problems."""
    if loaded is None:
        return None
    rows, problems = loaded
    single = [r for r in rows if r.severity2 is None]
    combined = [r for r in rows if r.severity2 is not None]
    return Robustness(rows=single, summaries=summarize(single), problems=problems, combined=combined,
                      combined_summaries=summarize_combined(combined))


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


def _cells(rows: list[RobustnessRow]) -> dict[tuple[float, float], float]:
    """(blur, noise) -> exact % (a later duplicate row wins)."""
    return {(r.severity, r.severity2): 100 * r.exact_acc for r in rows}


def _worst_cell(run: str, model: str, curve: dict, best: dict) -> CellGap | None:
    """The cell where ``curve`` falls furthest below ``best`` (the first such cell on a tie); None if none shared."""
    shared = [cell for cell in curve if cell in best]
    if not shared:
        return None
    worst = max(shared, key=lambda c: (best[c] - curve[c], -shared.index(c)))
    return CellGap(run, model, best[worst] - curve[worst], *worst)


def _combined_summary(test_set: str, corruption: str, mine: list[RobustnessRow]) -> CombinedSummary | None:
    """The summary of one test set and rendering; None without a realizable reference's rows."""
    references = {name: _cells([r for r in mine if r.reference and r.model == name])
                  for name in dict.fromkeys(r.model for r in mine if r.reference)}
    realizable = {name: c for name, c in references.items() if name in REALIZABLE and c}
    if not realizable:
        return None
    means = {name: sum(c.values()) / len(c) for name, c in realizable.items()}
    tied = [name for name, mean in means.items() if mean == max(means.values())]
    gaps, told = [], {}
    for run, model in dict.fromkeys((r.run, r.model) for r in mine if not r.reference):
        curve = _cells([r for r in mine if (r.run, r.model) == (run, model)])
        gap = _worst_cell(run, model, curve, realizable[tied[0]])
        if gap is not None:
            gaps.append(gap)
        bound = _worst_cell(run, model, curve, references.get(TOLD, {}))
        if bound is not None:
            told[(run, model)] = bound
    gaps.sort(key=lambda g: g.max_gap_pp)
    return CombinedSummary(test_set, corruption, " = ".join(tied), gaps, told)


def summarize_combined(rows: list[RobustnessRow]) -> list[CombinedSummary]:
    """Per test set and rendering of the blur x noise grid (rows with a severity2), in the order first seen."""
    summaries = []
    for test_set, corruption in dict.fromkeys((r.test_set, r.corruption) for r in rows):
        mine = [r for r in rows if (r.test_set, r.corruption) == (test_set, corruption)]
        summary = _combined_summary(test_set, corruption, mine)
        if summary is not None:
            summaries.append(summary)
    return summaries


def _where(gap: CellGap) -> str:
    return f"blur σ {gap.blur:g}, noise σ {gap.noise:g}"


def _who(run: str, model: str) -> str:
    return f"`#{run}` {model}" if is_job_name(run) else f"{model} (`{run}`)"


def gap_sentence(text: str, gaps: list, where) -> str:
    """``text`` (a corruption and its better reference) completed with the run closest to that reference, then
    the others: each one's largest gap below it and ``where(gap)`` it was, or that it never fell below."""
    if not gaps:
        return text + "; no run was measured."
    parts = [f"{_who(g.run, g.model)} at most {g.max_gap_pp:.1f} pp below it (at {where(g)})"
             if g.max_gap_pp > 0 else f"{_who(g.run, g.model)} never below it" for g in gaps]
    return f"{text}; closest: {'; then '.join([parts[0]] + ([', '.join(parts[1:])] if parts[1:] else []))}."


def combined_lines(r: Robustness) -> list[str]:
    """One sentence per test set and rendering of the blur x noise grid: the better realizable reference and
    the run that stays closest to it (its largest gap, and where)."""
    several = len(r.test_sets) > 1
    lines = []
    for c in r.combined_summaries:
        on = f" (test set {r.test_sets.index(c.test_set) + 1})" if several else ""
        lines.append(gap_sentence(f"**{c.corruption}**{on}: better realizable reference `{c.reference}`", c.gaps,
                                  _where))
    return lines


def combined_table(r: Robustness):
    """render.Table: per test set, rendering and run, its largest gap below the better realizable reference
    and below the matched filter told the true blur, each with its cell; None without a combined grid."""
    from pixel_spotter.report.render import Table  # here: render imports this module

    if not r.combined_summaries:
        return None
    headers = ["rendering", "run", "realizable reference", "largest gap (pp)", "at", f"gap below {TOLD} (pp)", "at"]
    rows = []
    for c in r.combined_summaries:
        for g in c.gaps:
            row = next(x for x in r.combined if (x.test_set, x.run, x.model) == (c.test_set, g.run, g.model))
            bound = c.told_gaps.get((g.run, g.model))
            rows.append([c.corruption, series_label(row, r.test_sets), c.reference, f"{g.max_gap_pp:.1f}", _where(g),
                         "—" if bound is None else f"{bound.max_gap_pp:.1f}", "—" if bound is None else _where(bound)])
    return Table(headers, rows)


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
