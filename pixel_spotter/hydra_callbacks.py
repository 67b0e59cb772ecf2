"""Hydra callback: one line per job at the end of a sweep, and a failing exit status if any job failed."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pixel_spotter.results import FILENAME, find_run_dirs, format_px, read


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        jobs = find_run_dirs(sweep)  # at any depth: a '/' in an override value nests the job folder
        records = [(str(job.relative_to(sweep)), read(job / FILENAME)) for job in jobs]
        records.sort(key=lambda item: (int(item[0].split("_", 1)[0]) if item[0].split("_", 1)[0].isdigit()
                                       else float("inf"), item[0]))  # launch order: 2 before 10
        failed = [(name, r) for name, r in records if r.get("status") != "ok"]
        print(f"\nsweep: {len(records)} jobs, {len(records) - len(failed)} ok, {len(failed)} failed -> {sweep}")
        for name, r in records:
            if r.get("status") == "ok":
                t = r["test"]
                print(f"  ok      {name}: test euclid {format_px(t['euclid_px'])} px, "
                      f"exact {100 * t['exact_acc']:.1f}%")
            else:
                print(f"  {r.get('status', '?'):7} {name}: {r.get('error', '')}")
        print(f"  results: {sweep}/*/results.json   tensorboard: tensorboard --logdir {sweep}")
        print(f"  report:  pixel-spotter report {sweep}")
        if failed:
            sys.exit(1)
