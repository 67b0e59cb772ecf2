"""`pixel-spotter predict`: a trained run finds the pixel in image files; bad inputs get one line."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

SIZE = 32
POSITIONS = [(0, 0), (31, 5), (17, 30)]  # (x, y)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    subprocess.run([sys.executable, "train.py", "model=heatmap", f"data.height={SIZE}", f"data.width={SIZE}",
                    "trainer.max_epochs=3", "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0",
                    f"hydra.run.dir={run_dir}"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    return run_dir


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pixel_spotter.cli", "predict", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


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
