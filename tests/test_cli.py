"""`pixel-spotter <command>`: every user command besides training is a subcommand (a group's, for `spots`), --help
lists them all without importing any, and user errors are one line, exit 2. (Each command's own run:
test_commands.py.)"""

import subprocess
import sys

import pytest
from conftest import ROOT

from pixel_spotter import cli


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixel_spotter.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_help_lists_every_command_and_sub_command():
    proc = _cli("--help")
    assert proc.returncode == 0
    for name, (_, help_text) in cli.COMMANDS.items():
        assert f"\n  {name} " in proc.stdout and help_text.split()[0] in proc.stdout, proc.stdout
    group = _cli("spots", "--help")
    assert group.returncode == 0
    for sub in ("table", "floor", "bench"):
        assert f"\n    {sub} " in group.stdout, group.stdout
    assert "pixel-spotter spots table" in " ".join(group.stdout.split())  # what a group's bare arguments mean


@pytest.mark.parametrize("args", [["--help"], ["spots", "--help"], ["nosuch"], ["spots"]])
def test_help_and_argument_errors_import_no_command_module(args):
    """--help lists the commands from cli.COMMANDS alone; torch (and every command's module) stays unimported."""
    code = ("import sys\nfrom pixel_spotter import cli\ntry:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n"
            "    pass\nmodules = {'torch'} | {module for module, _ in cli.COMMANDS.values()}\n"
            "print(sorted(modules & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "[]", (proc.stdout, proc.stderr)


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_module_has_arguments_and_a_runner(command):
    module = __import__(cli.COMMANDS[command][0], fromlist=["_"])
    assert callable(module.add_arguments) and callable(module.run_command)


def test_no_module_but_the_cli_has_a_main():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "pixel_spotter").rglob("*.py")
                 if p.name != "cli.py" and ('__name__ == "__main__"' in p.read_text() or p.name == "__main__.py")]
    assert offenders == []


@pytest.mark.parametrize("argv, expected", [
    (["spots", "runs/a", "runs/b"], ["spots", "table", "runs/a", "runs/b"]),
    (["spots", "--plot", "p.png", "runs/a"], ["spots", "table", "--plot", "p.png", "runs/a"]),
    (["spots", "floor", "--spots", "10"], ["spots", "floor", "--spots", "10"]),
    (["spots", "table", "runs/a"], ["spots", "table", "runs/a"]),
    (["spots", "--help"], ["spots", "--help"]),
    (["spots"], ["spots"]),
    (["report", "spots"], ["report", "spots"]),
])
def test_a_group_without_its_sub_command_means_the_default(argv, expected):
    assert cli._with_default_subcommand(argv) == expected


@pytest.mark.parametrize("args, words", [
    (["bench", "--models", "nosuch"], "unknown model(s) nosuch"),
    (["bench", "--models", "spot_fit"], "--models spot_fit: bench trains the pixel task"),
    (["bench", "--budget-s", "0"], "--budget-s must be a positive"),
    (["bench", "--epochs", "0"], "--epochs must be at least 1"),
    (["bench", "--split", "nosuch"], "--split"),
    (["bench-overhead", "x"], "EPOCHS"),
    (["bench-overhead", "0"], "EPOCHS must be a positive"),
    (["bench-overhead", "1", "-1"], "REPEATS must be a positive"),
    (["bench-overhead", "1", "1", "1"], "unrecognized arguments"),
    (["bench-overhead", "--size", "2"], "--size must be at least 8"),
    (["spots"], "SUBCOMMAND"),
    (["spots", "nosuch"], "nosuch is not a folder"),
    (["spots", "bench", "--size", "4"], "--size must be at least 8"),
    (["spots", "bench", "--photons", "0"], "--photons must all be > 0"),
    (["spots", "bench", "--repeats", "0"], "--repeats must be at least 1"),
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
    proc = _cli("spots", "table", "/no/such/folder")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: /no/such/folder is not a folder")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a real shell pipeline
def test_a_reader_that_stops_early_is_no_traceback(tmp_path):
    """`pixel-spotter predict ... | head -1`: the closed pipe ends the command quietly, without a traceback."""
    import numpy as np

    image = np.zeros((16, 16), np.uint8)
    image[3, 5] = 255
    np.save(tmp_path / "q.npy", image)
    run = ROOT / "tests" / "fixtures" / "legacy_runs" / "pixel_16"
    images = " ".join(["q.npy"] * 300)  # more output than one write of a pipe's buffer
    done = subprocess.run(f"{sys.executable} -m pixel_spotter.cli predict {run} {images} 2>err | head -1",
                          shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.stdout.count("\n") == 1 and "Traceback" not in (tmp_path / "err").read_text()
