"""`pixel-spotter <command>`: the package's console script (pyproject: pixel_spotter.cli:main).

Each command lives in its own module and contributes ``add_arguments(parser)`` and
``run_command(args) -> exit status``; adding one is a line in COMMANDS.
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
    "predict": ("pixel_spotter.predict", "(x, y) of the bright pixel in image files, from a trained run"),
}


def run_safely(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; a UserError (bad path, wrong image size, ...) is one line on stderr and exit status 2."""
    try:
        return command(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pixel-spotter",
                                     description="Single-pixel coordinate regression tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(module=module_name)
        importlib.import_module(module_name).add_arguments(command)
    args = parser.parse_args(argv)
    return run_safely(importlib.import_module(args.module).run_command, args)


if __name__ == "__main__":
    sys.exit(main())
