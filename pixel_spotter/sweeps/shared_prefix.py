"""Epoch sweeps that train once: the grid sweeper's plan for jobs that differ only in ``trainer.max_epochs``.

With a constant learning rate, a 16-epoch run is exactly the first 16 epochs of a 64-epoch run (the data order is
a function of seed and epoch, the random state travels in checkpoints, the best checkpoint is chosen by
validation). So such a group trains its longest job only, which leaves a snapshot of its run folder at each
shorter budget (training/prefix_snapshots.py); each shorter job then starts from its snapshot, which needs no
training, and tests and records itself as a run of its own. A group is shared only when nothing in its config
follows ``trainer.max_epochs`` (a cosine schedule's T_max does) and nothing else bounds training (max_steps,
max_time); otherwise its jobs run separately, and one log line says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from pixel_spotter.run_folder.jobs import budget as _budget
from pixel_spotter.run_folder.jobs import without_budget as _without_budget

FOLLOWS_BUDGET = re.compile(r"\$\{[^}]*max_epochs")  # an interpolation of trainer.max_epochs
Numbered = list[tuple[int, list[str]]]


@dataclass
class Plan:
    """How a grid sweep launches its jobs: ``first`` train (each longest job told which epochs to snapshot), then
    ``then`` start from those snapshots; ``separate`` says, per group that could not share, why."""

    first: Numbered = field(default_factory=list)
    then: Numbered = field(default_factory=list)
    separate: list[str] = field(default_factory=list)

    def chains(self) -> list[Numbered]:
        """The plan as one chain of jobs per group, for a launcher that runs each chain as one job (Slurm: one
        wait in the queue per group, not one for the long job and another for the short ones): each job of
        ``first``, followed by the jobs that start from its snapshots, in job order."""
        followers: dict[int, Numbered] = {}
        for num, job in self.then:
            followers.setdefault(from_job(job), []).append((num, job))
        return [[(num, job), *followers.get(num, [])] for num, job in self.first]


def plan(numbered: Numbered, compose: Callable[[list[str]], DictConfig]) -> Plan:
    """The launch plan of a grid sweep's numbered jobs; ``compose(overrides)`` is a job's composed config."""
    result = Plan()
    groups: dict[frozenset, list[tuple[int, int, list[str]]]] = {}
    for num, job in numbered:
        budget = _budget(job)
        if budget is None:
            result.first.append((num, job))
        else:
            groups.setdefault(_without_budget(job), []).append((budget, num, job))
    for members in groups.values():
        budgets = sorted({budget for budget, _, _ in members})
        longest = max(members)
        why = None if len(budgets) < 2 or len(budgets) < len(members) else _cannot_share(compose(longest[2]))
        if len(budgets) < 2 or len(budgets) < len(members) or why:  # one budget, or the same one twice
            result.first += [(num, job) for _, num, job in members]
            if why:
                result.separate.append(f"jobs {', '.join(str(n) for _, n, _ in sorted(members))}: {why}")
            continue
        result.first.append((longest[1], [*longest[2], f"share.snapshot_epochs=[{','.join(map(str, budgets[:-1]))}]"]))
        result.then += [(num, [*job, f"share.from_job={longest[1]}"]) for budget, num, job in members
                        if budget != longest[0]]
    result.first.sort()
    result.then.sort()
    return result


def from_job(job: list[str]) -> int | None:
    """The job a planned job takes its epochs from (its ``share.from_job=`` override), or None."""
    for override in job:
        if override.startswith("share.from_job="):
            return int(override.split("=", 1)[1])
    return None


def _cannot_share(cfg: DictConfig) -> str | None:
    """Why a group with this (longest job's) config must train each job separately; None when it may share."""
    trainer = cfg.get("trainer") or {}
    for key in ("max_steps", "max_time"):
        if trainer.get(key) not in (None, -1):
            return f"trainer.{key} also bounds training, so the shorter runs are not prefixes of the longest"
    tree = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=False)
    follower = _follows_budget(tree, "")
    if follower:
        return (f"{follower} follows trainer.max_epochs, so a shorter run is not the start of the longest; each "
                "trains separately")
    return None


def _follows_budget(node, key: str) -> str | None:
    """The first config key (other than trainer.max_epochs) whose value interpolates trainer.max_epochs."""
    if isinstance(node, dict):
        for k, v in node.items():
            found = _follows_budget(v, f"{key}.{k}" if key else str(k))
            if found:
                return found
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found = _follows_budget(v, f"{key}[{i}]")
            if found:
                return found
    elif isinstance(node, str) and key != "trainer.max_epochs" and FOLLOWS_BUDGET.search(node):
        return key
    return None
