"""`pixel-spotter export` and `pixel-spotter predict model.onnx|model.pt`: parity with the PyTorch model, the
input contract, the same answers and warnings as predict on the run, and one line for bad inputs."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, cli_run
from PIL import Image

pytestmark = pytest.mark.slow  # a real training run (a subprocess, shared by the session: conftest)
SIZE = 32
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
NO_ORT = "onnxruntime is not installed (the export extra: pip install -e '.[export]')"


def _needs(fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason=NO_ORT)
        pytest.importorskip("onnxscript", reason="onnxscript is not installed (the export extra)")


_cli = cli_run  # conftest: pixel-spotter ARGS in this process (the bytes-named export below runs a subprocess)


def _one_line(proc, words):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def trained_run(heatmap_run_32):
    return heatmap_run_32  # conftest: trained once per session


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """fmt -> the exported file (written by the CLI), for every format whose runtime is installed."""
    folder, files = tmp_path_factory.mktemp("exports"), {}
    before = sorted(p.relative_to(trained_run) for p in trained_run.rglob("*"))
    for fmt, suffix in FORMATS.items():
        if fmt == "onnx" and any(_missing(m) for m in ("onnxruntime", "onnxscript")):
            continue
        out = folder / f"model{suffix}"
        proc = _cli("export", trained_run, "--format", fmt, "--out", out)
        assert proc.returncode == 0, proc.stderr
        assert f"wrote {out}" in proc.stdout
        files[fmt] = out
    assert sorted(p.relative_to(trained_run) for p in trained_run.rglob("*")) == before  # run folder untouched
    assert sorted(p.name for p in folder.iterdir()) == sorted(n for p in files.values() for n in (p.name, p.name +
                                                                                                ".json"))
    return files


def _missing(module):
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return True
    return False


@pytest.mark.parametrize("fmt", FORMATS)
def test_contract_describes_the_file(exported, trained_run, fmt):
    _needs(fmt)
    path = exported[fmt]
    contract = json.loads(path.with_name(path.name + ".json").read_text())
    assert contract["format"] == fmt and contract["file"] == path.name
    assert (contract["height"], contract["width"], contract["dtype"]) == (SIZE, SIZE, "float32")
    assert contract["value_range"] == [0.0, 1.0] and "/ 255" in contract["scaling"]
    assert contract["input"]["shape"] == ["N", 1, SIZE, SIZE] and contract["output"]["shape"] == ["N", 2]
    assert "x = column" in contract["output"]["meaning"] and "y = row" in contract["output"]["meaning"]
    assert contract["run"]["folder"] == str(trained_run.resolve())
    assert contract["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "torch" in contract["exporter"] and contract["parity"]["max_abs_px"] <= 1e-4
    if fmt == "onnx":
        assert {"onnx", "onnxruntime"} <= set(contract["exporter"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_parity_on_every_position_and_any_batch_size(exported, trained_run, fmt):
    _needs(fmt)
    from pixel_spotter.serving.export import open_exported, parity
    from pixel_spotter.serving.predict import load_model
    from pixel_spotter.tasks.pixel.task import probe_images

    model, size = load_model(trained_run)
    runner = open_exported(exported[fmt])
    images = probe_images(SIZE, SIZE, limit=SIZE * SIZE)
    assert len(images) == SIZE * SIZE  # every position of the image size
    assert parity(model, runner, images) <= 1e-4
    for batch in (1, 7, 1024):  # dynamic batch axis
        assert runner(images[:batch]).shape == (min(batch, len(images)), 2)


def _png(path, *pixels):
    image = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for x, y in pixels:
        image[y, x] = 255
    Image.fromarray(image).save(path)
    return path


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("as_json", [False, True])
def test_predict_on_the_export_answers_as_the_run_does(exported, trained_run, tmp_path, fmt, as_json):
    _needs(fmt)
    images = [_png(tmp_path / "clean.png", (17, 30)), _png(tmp_path / "blank.png"),
              _png(tmp_path / "two.png", (3, 7), (20, 12))]
    flag = ["--json"] if as_json else []
    on_run = _cli("predict", trained_run, *images, *flag)
    on_file = _cli("predict", exported[fmt], *images, *flag)
    assert on_run.returncode == on_file.returncode == 3, (on_run.stderr, on_file.stderr)
    if as_json:
        run_results, file_results = json.loads(on_run.stdout), json.loads(on_file.stdout)
        for a, b in zip(run_results, file_results):
            assert a["image"] == b["image"] and a["warning"] == b["warning"]
            assert abs(a["x"] - b["x"]) <= 1e-4 and abs(a["y"] - b["y"]) <= 1e-4
        assert file_results[0]["warning"] is None and (round(file_results[0]["x"]), round(file_results[0]["y"])) \
            == (17, 30)
        assert "no pixel is clearly brighter" in file_results[1]["warning"]
        assert "2 pixels are equally bright" in file_results[2]["warning"]
    else:  # printed to 3 decimals: identical lines
        assert on_run.stdout == on_file.stdout
    assert on_run.stderr == on_file.stderr and len(on_file.stderr.strip().splitlines()) == 2


def test_default_out_is_the_run_name_in_the_current_folder(trained_run, tmp_path):
    proc = _cli("export", trained_run, "--format", "torchscript", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / f"{trained_run.name}.pt").is_file() and (tmp_path / f"{trained_run.name}.pt.json").is_file()


def test_bench_prints_both_models_side_by_side(trained_run, tmp_path):
    proc = _cli("export", trained_run, "--format", "torchscript", "--out", tmp_path / "m.pt", "--bench")
    assert proc.returncode == 0, proc.stderr
    assert "batch 1024" in proc.stdout and "pytorch (eager)" in proc.stdout and "torchscript (" in proc.stdout


# ---- bad inputs: one line, exit status 2


def test_missing_run(tmp_path):
    _one_line(_cli("export", tmp_path / "nope", "--format", "torchscript", "--out", tmp_path / "m.pt"),
              "does not exist")


def test_unknown_format(trained_run, tmp_path):
    _one_line(_cli("export", trained_run, "--format", "tflite", "--out", tmp_path / "m.tflite"),
              "unknown export format 'tflite'")


def test_never_writes_into_the_run_folder(trained_run):
    _one_line(_cli("export", trained_run, "--format", "torchscript", "--out", trained_run / "m.pt"),
              "inside the run folder")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_without_its_contract(exported, tmp_path, fmt):
    _needs(fmt)
    lone = tmp_path / exported[fmt].name
    lone.write_bytes(exported[fmt].read_bytes())
    _one_line(_cli("predict", lone, _png(tmp_path / "p.png", (1, 1))), "has no input contract")


def _copy_with_contract(path, tmp_path):
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    contract = path.with_name(path.name + ".json")
    copy.with_name(copy.name + ".json").write_text(contract.read_text())
    return copy


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_corrupt_export(exported, tmp_path, fmt):
    _needs(fmt)
    image = _png(tmp_path / "p.png", (1, 1))
    copy = _copy_with_contract(exported[fmt], tmp_path)
    copy.write_bytes(b"garbage")
    _one_line(_cli("predict", copy, image), "does not match its contract")
    # corrupt but with a contract rewritten to match it: the runtime refuses it, still one line
    where = copy.with_name(copy.name + ".json")
    contract = json.loads(where.read_text())
    where.write_text(json.dumps({**contract, "sha256": hashlib.sha256(b"garbage").hexdigest()}))
    _one_line(_cli("predict", copy, image), "cannot be loaded")


@pytest.mark.parametrize("fmt, words", [("onnx", "the contract belongs to another export"),
                                        ("torchscript", "the contract belongs to another export")])
def test_a_contract_of_another_size(exported, tmp_path, fmt, words):
    _needs(fmt)
    copy = _copy_with_contract(exported[fmt], tmp_path)
    where = copy.with_name(copy.name + ".json")
    where.write_text(json.dumps({**json.loads(where.read_text()), "height": 16, "width": 16}))
    image = np.zeros((16, 16), dtype=np.uint8)
    image[3, 3] = 255
    Image.fromarray(image).save(tmp_path / "small.png")
    _one_line(_cli("predict", copy, tmp_path / "small.png"), words)


def test_a_broken_contract(exported, tmp_path):
    fmt = "torchscript"
    copy = _copy_with_contract(exported[fmt], tmp_path)
    copy.with_name(copy.name + ".json").write_text("{not json")
    _one_line(_cli("predict", copy, _png(tmp_path / "p.png", (1, 1))), "is not a usable export contract")


@pytest.mark.parametrize("fmt, name, process", [("onnx", b"\xff\xfe-model", True),
                                                ("torchscript", b"\xff\xfe-model", False),
                                                ("torchscript", b"two\nlines", False)])
def test_an_export_named_in_bytes_that_are_not_utf8_or_hold_a_newline(trained_run, tmp_path, fmt, name, process):
    """torch and onnxruntime take no path that is not UTF-8 (they were a TypeError): they get files and bytes;
    and what is printed shows the name escaped, on one line. The name is not the format's concern: one case runs
    the real entry point on bytes argv (a process of its own); the others pass what Python makes of such argv
    (``os.fsdecode``: surrogate escapes) to the command in this process."""
    _needs(fmt)
    out = os.fsencode(tmp_path) + b"/" + name + FORMATS[fmt].encode()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(*args):
        if not process:
            done = cli_run(*(os.fsdecode(a) for a in args))
            return subprocess.CompletedProcess(done.args, done.returncode, os.fsencode(done.stdout),
                                               os.fsencode(done.stderr))
        return subprocess.run([sys.executable, "-m", "pixel_spotter.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, timeout=300)

    made = cli(b"export", os.fsencode(trained_run), b"--format", fmt.encode(), b"--out", out)
    assert made.returncode == 0, made.stderr.decode(errors="replace")[-2000:]
    assert len(made.stdout.splitlines()) == 1 and made.stdout.startswith(b"wrote '")
    answered = cli(b"predict", out, os.fsencode(_png(tmp_path / "one.png", (7, 20))))
    assert answered.returncode == 0, answered.stderr.decode(errors="replace")[-2000:]
    assert answered.stdout.split()[1:3] == [b"7.000", b"20.000"]
