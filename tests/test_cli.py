"""`pixel-spotter <command>`: every user command besides training is a subcommand; user errors are one line, exit 2."""

import subprocess
import sys

import pytest
from conftest import ROOT

from pixel_spotter import cli


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixel_spotter.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_help_lists_every_command():
    proc = _cli("--help")
    assert proc.returncode == 0
    for command in ("report", "predict", "bench", "bench-overhead"):
        assert f"\n    {command} " in proc.stdout or f"\n    {command}\n" in proc.stdout, proc.stdout


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_module_has_arguments_and_a_runner(command):
    module = __import__(cli.COMMANDS[command][0], fromlist=["_"])
    assert callable(module.add_arguments) and callable(module.run_command)


@pytest.mark.parametrize("args, words", [
    (["bench", "--models", "nosuch"], "unknown model(s) nosuch"),
    (["bench", "--budget-s", "0"], "--budget-s must be a positive"),
    (["bench", "--split", "nosuch"], "--split"),
    (["bench-overhead", "x"], "EPOCHS"),
    (["bench-overhead", "0"], "EPOCHS must be a positive"),
    (["bench-overhead", "1", "-1"], "REPEATS must be a positive"),
    (["bench-overhead", "1", "1", "1"], "unrecognized arguments"),
    (["nosuch"], "nosuch"),
    ([], "COMMAND"),
])
def test_a_user_error_is_one_line_and_exit_2(capsys, args, words):
    try:
        status = cli.main(args)
    except SystemExit as exit_:  # argparse's rejections
        status = exit_.code
    out, err = capsys.readouterr()
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert out == ""


def test_the_console_command_exits_2_with_one_line():
    proc = _cli("bench", "--models", "nosuch")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: unknown model(s) nosuch") and len(proc.stderr.strip().splitlines()) == 1
