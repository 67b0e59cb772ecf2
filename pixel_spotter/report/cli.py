"""`pixel-spotter report SWEEP_DIR [SWEEP_DIR ...]`: the command's arguments and the pipeline
load -> analyze -> plots -> render."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixel_spotter.report import render
from pixel_spotter.report.analysis import analyze
from pixel_spotter.report.comparisons import BASELINE
from pixel_spotter.report.load import ReportInputError, collect, load_robustness


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", type=Path, metavar="SWEEP_DIR",
                        help="multirun folder(s) (multirun/<date>) or single run folder(s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write report.md/.html, runs.csv and plots/ (default: the first "
                             "SWEEP_DIR)")
    parser.add_argument("--compare", action="append", default=None, metavar="CHALLENGER:BASELINE",
                        help="models to compare head to head (best runs, paired per-image differences, "
                             "matched settings); repeatable or comma-separated, e.g. resnet18:cnn "
                             f"(default: every model against {BASELINE}, when present)")


def parse_pairs(values: list[str] | None) -> list[tuple[str, str]] | None:
    """'resnet18:cnn,heatmap:cnn' (one or several values) -> [('resnet18', 'cnn'), ('heatmap', 'cnn')];
    None (the default pairs) when no value was given."""
    if values is None:
        return None
    pairs = []
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            challenger, sep, baseline = item.partition(":")
            if not sep or not challenger or not baseline or ":" in baseline or challenger == baseline:
                raise ReportInputError(f"--compare {item!r}: expected CHALLENGER:BASELINE with two different "
                                       "model names, e.g. --compare resnet18:cnn")
            pairs.append((challenger, baseline))
    return list(dict.fromkeys(pairs))


def make_report(folders: list[Path], out: Path | None = None,
                compare: list[tuple[str, str]] | None = None, show_progress: bool = False) -> dict[str, Path]:
    """Load, analyze, plot and write; returns the paths written. ``show_progress``: a bar of these stages on
    stderr (when it is a terminal)."""
    from pixel_spotter.cli import progress

    with progress(total=4, desc="report: loading runs", enabled=show_progress,
                  bar_format="{desc}: stage {n}/{total} |{bar}| [{elapsed}]") as bar:
        runs, robustness = collect(folders), load_robustness(folders)
        bar.update()
        bar.set_description("report: analyzing")
        analysis = analyze(runs, compare=compare, robustness=robustness)
        bar.update()
        bar.set_description("report: plotting")
        from pixel_spotter.report import plots  # matplotlib import is slow; not needed for --help or bad input

        out = Path(out or folders[0])
        out.mkdir(parents=True, exist_ok=True)
        made = plots.make_all(analysis, out / "plots")
        bar.update()
        bar.set_description("report: writing")
        paths = render.write(analysis, folders, made, out)
        bar.update()
    return paths


def run_command(args: argparse.Namespace) -> int:
    compare = parse_pairs(args.compare)
    try:
        paths = make_report(args.folders, args.out, compare, show_progress=True)
    except OSError as err:  # e.g. an output folder that cannot be written
        print(f"error: cannot write the report: {err}", file=sys.stderr)
        return 1
    print(f"report: {paths['md']}\n        {paths['html']}\n        {paths['csv']}")
    return 0
