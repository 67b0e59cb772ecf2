"""`pixel-spotter predict`: a trained run finds the pixel in image files; bad inputs get one line."""

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
