"""`pixel-spotter predict`: a trained run finds the pixel in image files; bad inputs get one line."""

import json
import pickle
import shutil

import numpy as np
import pytest
from conftest import cli_run
from PIL import Image

pytestmark = pytest.mark.slow  # a real training run (a subprocess, shared by the session: conftest)
SIZE = 32
POSITIONS = [(0, 0), (31, 5), (17, 30)]  # (x, y)


@pytest.fixture
def trained_run(heatmap_run_32):
    return heatmap_run_32  # conftest: trained once per session; tests that change it work on a copy


def _cli(*args):
    return cli_run("predict", *args)  # conftest: in this process


def _png(path, x, y, size=SIZE):
    image = np.zeros((size, size), dtype=np.uint8)
    image[y, x] = 255
    Image.fromarray(image).save(path)
    return path


def test_predicts_the_bright_pixel_in_png_and_npy(trained_run, tmp_path):
    files = [_png(tmp_path / f"{x}_{y}.png", x, y) for x, y in POSITIONS]
    npy = np.zeros((SIZE, SIZE), dtype=np.float32)
    npy[9, 4] = 1.0
    np.save(tmp_path / "a.npy", npy)
    proc = _cli(trained_run, *files, tmp_path / "a.npy")
    assert proc.returncode == 0, proc.stderr
    got = [tuple(float(v) for v in line.split()[1:]) for line in proc.stdout.splitlines()]
    for (x, y), (px, py) in zip([*POSITIONS, (4, 9)], got):
        assert (round(px), round(py)) == (x, y)


def test_wrong_image_size_is_named(trained_run, tmp_path):
    proc = _cli(trained_run, _png(tmp_path / "big.png", 3, 3, size=50))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is 50x50 but the model was trained on 32x32" in proc.stderr


def test_corrupt_checkpoint_is_one_line(trained_run, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(trained_run, broken)
    for ckpt in (broken / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(b"garbage")
    proc = _cli(broken, _png(tmp_path / "p.png", 1, 1))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot be loaded" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_missing_run_folder(tmp_path):
    proc = _cli(tmp_path / "nope", _png(tmp_path / "p.png", 1, 1))
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def _two_pixels(path, a=(3, 7), b=(20, 12)):
    image = np.zeros((SIZE, SIZE), dtype=np.uint8)
    image[a[1], a[0]] = image[b[1], b[0]] = 255
    Image.fromarray(image).save(path)
    return path


def _doubtful_images(tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((SIZE, SIZE), dtype=np.uint8)).save(blank)
    return blank, _two_pixels(tmp_path / "two.png")


def test_doubtful_images_are_answered_with_a_warning_in_text(trained_run, tmp_path):
    blank, two = _doubtful_images(tmp_path)
    clean = _png(tmp_path / "clean.png", 17, 30)
    proc = _cli(trained_run, blank, two, clean)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    for line, path in zip(lines, (blank, two)):
        answer, _, warning = line.partition("  # warning: ")
        name, x, y = answer.split()
        assert name == str(path) and 0 <= float(x) <= SIZE - 1 and 0 <= float(y) <= SIZE - 1
        assert warning
    assert "no pixel is clearly brighter" in lines[0]
    assert "2 pixels are equally bright" in lines[1] and "(3, 7), (20, 12)" in lines[1]
    assert "# warning" not in lines[2]
    assert tuple(round(float(v)) for v in lines[2].split()[1:]) == (17, 30)
    warnings = proc.stderr.strip().splitlines()
    assert [w.split(": ")[1] for w in warnings] == [str(blank), str(two)]
    assert all(w.startswith("warning: ") for w in warnings)


def test_doubtful_images_are_answered_with_a_warning_in_json(trained_run, tmp_path):
    blank, two = _doubtful_images(tmp_path)
    proc = _cli(trained_run, blank, two, "--json")
    assert proc.returncode == 3, proc.stderr
    results = json.loads(proc.stdout)
    assert [r["image"] for r in results] == [str(blank), str(two)]
    for result in results:
        assert set(result) == {"image", "x", "y", "warning"}
        assert 0 <= result["x"] <= SIZE - 1 and 0 <= result["y"] <= SIZE - 1
        assert isinstance(result["warning"], str) and result["warning"]
    assert len(proc.stderr.strip().splitlines()) == 2


def test_uint16_npy_is_scaled_by_its_dtype_and_answered_exactly(trained_run, tmp_path):
    image = np.zeros((SIZE, SIZE), dtype=np.uint16)
    image[9, 4] = 65535
    np.save(tmp_path / "deep.npy", image)
    proc = _cli(trained_run, tmp_path / "deep.npy", "--json")
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert (round(result["x"]), round(result["y"])) == (4, 9) and result["warning"] is None
    assert proc.stderr == ""


def test_nan_image_is_one_line_and_nothing_on_stdout(trained_run, tmp_path):
    image = np.zeros((SIZE, SIZE), dtype=np.float32)
    image[3, 3] = np.nan
    np.save(tmp_path / "nan.npy", image)
    proc = _cli(trained_run, _png(tmp_path / "ok.png", 1, 1), tmp_path / "nan.npy")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "nan.npy" in proc.stderr and "NaN" in proc.stderr


# ---- an untrusted run folder: it may be tampered with, and predict must not run what it plants


class _Payload:
    """Unpickling this creates ``marker``: proof that code from the checkpoint ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _copy(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    return copy


def _best(run):
    return run / json.loads((run / "results.json").read_text())["best_checkpoint"]


def test_a_pickle_payload_in_the_checkpoint_never_runs(trained_run, tmp_path):
    import torch

    run, marker = _copy(trained_run, tmp_path), tmp_path / "pwned"
    torch.save({"state_dict": _Payload(marker)}, _best(run))
    for target in (run, _best(run)):  # the recorded best checkpoint, and the file named explicitly
        proc = _cli(target, _png(tmp_path / "p.png", 1, 1))
        assert proc.returncode == 2 and "cannot be loaded safely" in proc.stderr and "Traceback" not in proc.stderr
        assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # the payload is real: a plain unpickle would have run it
        torch.load(_best(run), weights_only=True)
    torch.load(_best(run), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("model_yaml", [
    "model:\n  _target_: builtins.open\n  file: {marker}\n  mode: w\n",
    "model:\n  _target_: pixel_spotter.models.regressor.CoordinateRegressor\n  net:\n    _target_: builtins.open\n"
    "    file: {marker}\n    mode: w\n",
    # a pixel_spotter callable that is not a network would write a file too
    "model:\n  _target_: pixel_spotter.models.regressor.CoordinateRegressor\n  net:\n"
    "    _target_: pixel_spotter.run_folder.folder._atomic_write\n    path: {marker}\n    text: x\n",
])
def test_a_config_naming_other_targets_is_refused(trained_run, tmp_path, model_yaml):
    run, marker = _copy(trained_run, tmp_path), tmp_path / "pwned"
    config = run / ".hydra" / "config.yaml"
    text = config.read_text()
    head, rest = text.split("model:\n", 1)
    tail = rest[rest.index("\n", rest.index("\n") + 1):]  # keep the sections after model
    tail = "\n".join(line for line in tail.splitlines() if not line.startswith(" "))
    config.write_text(head + model_yaml.format(marker=marker) + tail + "\n")
    proc = _cli(run, _png(tmp_path / "p.png", 1, 1))
    assert proc.returncode == 2 and "is refused" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_predict_uses_the_recorded_best_checkpoint(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    (run / "checkpoints" / "zzz-latest.ckpt").write_bytes(b"not this one")  # sorts after best-* and last
    proc = _cli(run, _png(tmp_path / "p.png", 7, 3))
    assert proc.returncode == 0, proc.stderr
    assert [round(float(v)) for v in proc.stdout.split()[1:3]] == [7, 3]


@pytest.mark.parametrize("change, words", [
    ({"best_checkpoint": "../../../etc/passwd"}, "outside its run folder"),
    ({"status": "diverged", "error": "non-finite loss"}, "has status 'diverged'"),
    ({"status": "running"}, "has status 'interrupted'"),
])
def test_a_run_that_cannot_be_trusted_is_refused(trained_run, tmp_path, change, words):
    run = _copy(trained_run, tmp_path)
    record = json.loads((run / "results.json").read_text())
    (run / "results.json").write_text(json.dumps({**record, **change}))
    proc = _cli(run, _png(tmp_path / "p.png", 1, 1))
    assert proc.returncode == 2 and words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
