"""Search rankings: the trials of each search sweep (hparams_search=optuna), ranked by the validation metric
the search optimized, and the command that reruns its best trial.

Part of the analysis stage; a trial's value is what the study itself got (sweeps.search.validation_value),
so the report's ranking and the study's never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pixel_spotter.run_folder import Search, natural_key
from pixel_spotter.sweeps import search as search_values

if TYPE_CHECKING:
    from pixel_spotter.report.analysis import Entry


@dataclass(frozen=True)
class Trial:
    """One trial of a search, as the search saw it."""

    entry: Entry
    rank: int | None  # 1 = best; None: it returned no value (failed, diverged, unfinished), so it is not ranked
    value: float | None  # the optimized metric of its best checkpoint on the validation split: what the study got
    params: dict[str, str]  # the searched overrides' values, as the job ran them


@dataclass(frozen=True)
class SearchRanking:
    """The trials of one search (hparams_search=optuna), ranked by the metric it optimized."""

    metric: str  # val/<name>
    direction: str  # minimize or maximize
    params: tuple[str, ...]
    trials: list[Trial]  # ranked ones best first, then the unranked in job order
    command: str | None  # `python train.py ...`: the best trial again, as a single run

    @property
    def best(self) -> Trial | None:
        return self.trials[0] if self.trials and self.trials[0].rank else None


def rank_searches(entries: list[Entry]) -> list[SearchRanking]:
    """One ranking per search the runs belong to (none for runs of plain sweeps)."""
    by_search: dict[Search, list[Entry]] = {}
    for entry in entries:
        if entry.run.search is not None:
            by_search.setdefault(entry.run.search, []).append(entry)
    return [_ranking(search, mine) for search, mine in by_search.items()]


def _ranking(search: Search, entries: list[Entry]) -> SearchRanking:
    """Rank a search's trials by the value each returned to the study (search.validation_value of its record)."""
    entries = sorted(entries, key=lambda e: natural_key(e.id))
    values = {e: search_values.validation_value(e.record.get("best_val"), search.metric) if e.ok else None
              for e in entries}
    sign = -1 if (way := search_values.direction(search.metric)) == "maximize" else 1
    ranked = sorted((e for e in entries if values[e] is not None), key=lambda e: sign * values[e])  # ties: job order
    unranked = [e for e in entries if values[e] is None]
    trials = [Trial(e, rank, values[e], {k: e.overrides.get(k, "(default)") for k in search.params})
              for rank, e in [*enumerate(ranked, 1), *((None, e) for e in unranked)]]
    best = ranked[0] if ranked else None
    command = search_values.rerun_command(best.record.get("overrides") or []) if best else None
    return SearchRanking(search.metric, way, search.params, trials, command)
