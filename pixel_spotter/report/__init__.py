"""`pixel-spotter report SWEEP_DIR [SWEEP_DIR ...]`: compare the runs of one or more sweeps.

Reads only what each run left behind (through ``pixel_spotter.run_folder``); it never retrains, so a
12-run sweep takes seconds. Writes into the first folder (or ``--out``): ``runs.csv``, ``report.md``, a
self-contained ``report.html`` and ``plots/*.png``.

One job per module, each stage reading only the one before:
    load (runs from disk) -> analysis (every number, once) -> narrative (sentences)
    -> plots (figures) -> render (tables, Markdown and HTML from jinja2 templates, runs.csv);
    cli wires them to the command line.
"""

from pixel_spotter.report.analysis import Analysis, analyze
from pixel_spotter.report.cli import add_arguments, make_report, run_command
from pixel_spotter.report.load import ReportInputError, Run, collect, euclid_errors, load_run, read_curves

__all__ = ["Analysis", "ReportInputError", "Run", "add_arguments", "analyze", "collect", "euclid_errors",
           "load_run", "make_report", "read_curves", "run_command"]
