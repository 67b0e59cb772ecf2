"""`pixel-spotter <command>`: the package's console script (pyproject: pixel_spotter.cli:main), the one way
in besides `python train.py` (`python -m pixel_spotter.cli <command>` is the same).

Each command lives in its own module and contributes ``add_arguments(parser)`` and
``run_command(args) -> exit status``; adding one is a line in COMMANDS. Only the chosen command's module is
imported (the benchmarks pull in torch and Lightning), so ``pixel-spotter --help`` stays instant.

Exit status: a user error (pixel_spotter.errors.UserError, or arguments argparse rejects) is one line on
stderr and status 2; otherwise the command's own status (0 = success).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from pixel_spotter.errors import UserError

# name -> (module, one-line help).
COMMANDS = {
    "report": ("pixel_spotter.report",
               "compare the runs of sweep folders: report.md/.html, runs.csv, plots/"),
    "predict": ("pixel_spotter.serving.predict",
                "(x, y) of the bright pixel in image files, from a trained run or an exported model"),
    "export": ("pixel_spotter.serving.export",
               "a run's model as an ONNX or TorchScript file plus its input contract (.json); --bench"),
    "robustness": ("pixel_spotter.evaluation.robustness",
                   "runs' best checkpoints under noise, blur, background, dimming and decoys vs argmax and a "
                   "matched filter: robustness.csv/.png"),
    "spots": ("pixel_spotter.tasks.spot.table",
              "data=spot runs: RMSE / Cramér–Rao bound per photon count of each model, the centroid and the ML fit"),
    "bench": ("pixel_spotter.benchmarks.models",
              "per model: training time until validation is exact, throughput, latency; vs the argmax oracle"),
    "bench-overhead": ("pixel_spotter.benchmarks.overhead",
                       "the Lightning + Hydra pipeline's time over a bare PyTorch loop, same CNN and data"),
}


class _Parser(argparse.ArgumentParser):
    """Rejected arguments are user errors too: one line naming the fix, exit status 2 (argparse's own status)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run_safely(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; a UserError (bad path, wrong image size, ...) is one line on stderr and exit status 2."""
    try:
        return command(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _Parser(prog="pixel-spotter", description="Single-pixel coordinate regression tools "
                     "(training: python train.py).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(module=module_name)
        if name in argv:  # the command argparse will pick is the first of these; the others only need their help
            importlib.import_module(module_name).add_arguments(command)
    args = parser.parse_args(argv)
    return run_safely(importlib.import_module(args.module).run_command, args)


if __name__ == "__main__":
    sys.exit(main())
