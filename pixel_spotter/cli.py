"""`pixel-spotter <command>`: the package's console script (pyproject: pixel_spotter.cli:main), the one way
in besides `python train.py` (`python -m pixel_spotter.cli <command>` is the same). No other module has a main.

Each command lives in its own module and contributes ``add_arguments(parser)`` and
``run_command(args) -> exit status``; adding one is a line in COMMANDS. A name of two words ("spots floor")
is a sub-command of a group (GROUPS); a group's first argument that is none of its sub-commands selects the
group's default (``pixel-spotter spots RUN`` is ``pixel-spotter spots table RUN``). Only the chosen command's
module is imported (the benchmarks pull in torch and Lightning), so ``pixel-spotter --help`` stays instant.

Exit status: a user error (pixel_spotter.errors.UserError, or arguments argparse rejects) is one line on
stderr and status 2; otherwise the command's own status (0 = success).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Callable, Iterable

from pixel_spotter.errors import UserError

# name -> (module, one-line help); the order is that of --help.
COMMANDS = {
    "report": ("pixel_spotter.report",
               "compare the runs of sweep folders: report.md/.html, runs.csv, plots/"),
    "predict": ("pixel_spotter.serving.predict",
                "(x, y) of the bright pixel or spot in image files, from a trained run or an exported model"),
    "localize": ("pixel_spotter.serving.localize",
                 "every emitter of a TIFF movie from a data=emitters run: a ThunderSTORM-style CSV"),
    "export": ("pixel_spotter.serving.export",
               "a run's model as an ONNX or TorchScript file plus its input contract (.json); --bench"),
    "robustness": ("pixel_spotter.evaluation.robustness",
                   "runs' best checkpoints under noise, blur, background, dimming, decoys, and blur with noise "
                   "(float, clipped, 8-bit) vs argmax and matched filters: robustness.csv/.png"),
    "spots table": ("pixel_spotter.tasks.spot.table",
                    "data=spot runs: RMSE / Cramér–Rao bound per photon count of each model, the centroid and "
                    "the ML fit (also: pixel-spotter spots RUN...)"),
    "spots floor": ("pixel_spotter.tasks.spot.floor",
                    "the Bayes floor of data=spot: the least RMSE any estimator can reach, per photon count"),
    "spots bench": ("pixel_spotter.benchmarks.spot_fit",
                    "speed of the ML fit and how close it and the centroid come to the Cramér–Rao bound"),
    "emitters bench": ("pixel_spotter.tasks.emitters.bench",
                       "data=emitters runs against the classical pipeline (and Picasso, when installed) at each "
                       "density: Jaccard, RMSE, efficiency, RMSE / CRLB, frames/s"),
    "emitters simulate": ("pixel_spotter.tasks.emitters.simulate",
                          "a TIFF movie of a data=emitters run's emitters and camera, with its truth, to localize"),
    "bench": ("pixel_spotter.benchmarks.models",
              "per model: training time until validation is exact, throughput, latency; vs the argmax oracle"),
    "bench-overhead": ("pixel_spotter.benchmarks.overhead",
                       "the Lightning + Hydra pipeline's time over a bare PyTorch loop, same CNN and data"),
}
# group -> (one-line help, the sub-command its other first arguments select)
GROUPS = {"spots": ("sub-pixel spot tools (data=spot): table, floor, bench", "table"),
          "emitters": ("many-emitter tools (data=emitters): bench, simulate", "bench")}
HELP = ("-h", "--help")


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
    except BrokenPipeError:  # the reader stopped early (`... | head`): not an error, and no traceback at exit
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str | None = None,
             unit: str = "it", enabled: bool = True, **options):
    """A tqdm progress bar on stderr for a command's long work: drawn only when stderr is a terminal and
    ``enabled`` (pass False when the command prints --json). Print lines meanwhile with its ``write``;
    ``options``: more of tqdm's (e.g. bar_format)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=not (enabled and sys.stderr.isatty()), **options)


def _command_list() -> str:
    width = max(map(len, COMMANDS)) + 2
    lines = ["commands:"]
    for name, (_, help_text) in COMMANDS.items():
        wrapped = textwrap.wrap(help_text, 116 - width) or [""]
        lines.append(f"  {name:<{width}}{wrapped[0]}")
        lines += [" " * (width + 2) + more for more in wrapped[1:]]
    return "\n".join(lines)


def _with_default_subcommand(argv: list[str]) -> list[str]:
    """``spots RUN...`` -> ``spots table RUN...``: a group's first argument that is no sub-command of it (nor
    --help) selects its default, so scripts written before the group existed still run."""
    position = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    if position is None or argv[position] not in GROUPS or position + 1 == len(argv):
        return argv
    group, following = argv[position], argv[position + 1]
    if following in HELP or f"{group} {following}" in COMMANDS:
        return argv
    return [*argv[: position + 1], GROUPS[group][1], *argv[position + 1:]]


def _chosen(argv: list[str]) -> str | None:
    """The COMMANDS name argv selects (the first words that are no options), or None."""
    words = [arg for arg in argv if not arg.startswith("-")]
    for name in COMMANDS:
        if words[: len(name.split())] == name.split():
            return name
    return None


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser of every command; only the one ``argv`` chooses imports its module to add its arguments."""
    parser = _Parser(prog="pixel-spotter", description="Learned localization tools: one bright pixel, sub-pixel "
                     "spots (training: python train.py).", epilog=_command_list(),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of the commands below")
    chosen, groups = _chosen(argv), {}
    for name, (module_name, help_text) in COMMANDS.items():
        group, _, leaf = name.rpartition(" ")
        if group and group not in groups:
            group_help, default = GROUPS[group]
            group_parser = top.add_parser(group, description=f"{group_help}. pixel-spotter {group} ARGS... "
                                          f"without a sub-command is pixel-spotter {group} {default} ARGS...")
            groups[group] = group_parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        # top-level commands are listed by the epilog (with the groups' sub-commands), sub-commands by their group
        command = (groups[group].add_parser(leaf, help=help_text, description=help_text) if group
                   else top.add_parser(leaf, description=help_text))
        command.set_defaults(module=module_name)
        if name == chosen:
            importlib.import_module(module_name).add_arguments(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = _with_default_subcommand(sys.argv[1:] if argv is None else list(argv))
    args = build_parser(argv).parse_args(argv)
    return run_safely(importlib.import_module(args.module).run_command, args)


if __name__ == "__main__":
    sys.exit(main())
