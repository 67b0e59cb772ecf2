"""predict on a data=spot run doubts images unlike those it was trained on: photon counts far outside the trained
ranges, and more than one spot (tasks/spot/doubts.py), in words, with exit status 3."""

import json
import re

import numpy as np
import pytest
import torch
from conftest import cli_run

from pixel_spotter.errors import UserError
from pixel_spotter.spots.psf import simulate
from pixel_spotter.tasks.spot.doubts import spot_doubts
from pixel_spotter.tasks.spot.rendering import SpotParams, SpotSynthesizer
from pixel_spotter.tasks.spot.task import SpotTask

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 16
TINY = SpotParams(photons=2000, background=10, sigma_psf=1)  # what conftest's tiny_spot_run trains on


def _spots(*xy, photons=2000.0, background=10.0, seed=0):
    """Photon counts (SIZE x SIZE) of spots at the (x, y) given, each of ``photons``, over one ``background``."""
    gen = torch.Generator().manual_seed(seed)
    counts = [simulate(torch.tensor([p], dtype=torch.float64), photons, background if i == 0 else 0.0, 1.0, SIZE,
                       SIZE, generator=gen)[0] for i, p in enumerate(xy)]
    return sum(counts).numpy()


def _pixel(value, row=5, col=7):
    image = np.zeros((SIZE, SIZE), dtype=np.float32)
    image[row, col] = value
    return image


def test_a_second_spot_warns_and_one_spot_does_not():
    """Two equal spots 6-11 px apart (6+ PSF widths) always warn, naming where the other one is; the same
    spots alone never do, nor a dim second spot (no clear spot), nor the tails of a bright spot."""
    gen = torch.Generator().manual_seed(1)
    firsts = torch.rand(30, 2, generator=gen) * 4 + 1  # (x, y) in [1, 5)
    for i, first in enumerate(firsts.tolist()):
        second = [first[0] + 6 + i % 5, first[1] + 8 - i % 4]
        two = spot_doubts(_spots(first, second, seed=i), TINY)
        assert two and "more than one spot" in two and "far outside" not in two, (first, second, two)
        other = [int(v) for v in re.search(r"another near \((\d+), (\d+)\)", two).groups()]
        assert min(max(abs(o - t) for o, t in zip(other, spot)) for spot in (first, second)) <= 1, two  # either
        assert spot_doubts(_spots(first, seed=i), TINY) is None
        assert spot_doubts(_spots(second, seed=i), TINY) is None
    # a dim second spot (signal-to-noise ~3) is no clear spot; nor is a bright spot's own tail a second one
    assert spot_doubts(_spots([4.2, 4.6]) + _spots([12.1, 11.3], photons=35, background=0, seed=1), TINY) is None
    assert spot_doubts(_spots([8.3, 7.6], photons=15000), TINY) is None


def test_the_task_s_own_rendered_images_raise_no_doubt():
    """On spots rendered as the run trained (photons, background and width from its ranges), no warning at
    all: not a second spot, not counts outside the range (the mix too, at its own photon extremes)."""
    xy = torch.randint(0, SIZE, (60, 2), generator=torch.Generator().manual_seed(0))
    mix = SpotParams(photons=(100, 5000), background=(1, 100), sigma_psf=(0.8, 2.0))
    for params in (TINY, mix.fixed(photons=5000), mix.fixed(photons=100, background=1)):
        counts, _ = SpotSynthesizer(SIZE, SIZE, params).counts(xy, range(60))
        warned = [w for w in (spot_doubts(c, params) for c in counts.numpy()) if w]
        assert warned == [], (params, warned[:3])


def test_counts_far_outside_the_trained_range_warn_in_one_sentence():
    one_pixel = spot_doubts(_pixel(1e20), TINY)
    assert one_pixel.startswith("the photon counts lie far outside the range the model was trained on"), one_pixel
    assert "a spot of about 1e+20 photons (trained on 2000)" in one_pixel and one_pixel.count(";") == 0
    assert "a spot of about" in spot_doubts(_pixel(65535), TINY)  # a saturated 16-bit pixel is ~1e5 photons
    mix = SpotParams(photons=(100, 5000), background=(1, 100))
    assert "(trained on 100 to 5000)" in spot_doubts(_pixel(1e20), mix)
    too = {"bright": _spots([7.3, 8.1], photons=40_000), "dim": _spots([7.3, 8.1], photons=150, background=1),
           "bright background": _spots([7.3, 8.1], background=200)}
    for name, image in too.items():
        assert "far outside" in (spot_doubts(image, TINY) or ""), name
    assert "photons per pixel (trained on 10)" in spot_doubts(too["bright background"], TINY)
    # within 10x of the range: the per-photon evaluation's 300 and 3000 photons, a background of 2 or 50
    for photons, background in ((300, 10), (3000, 10), (2000, 2), (2000, 50)):
        assert spot_doubts(_spots([7.3, 8.1], photons=photons, background=background), TINY) is None
    assert spot_doubts(_pixel(1e20), None) is None  # ranges unknown (an older export): no range check


def _cli(*args):
    """(exit status, stdout, stderr) of ``pixel-spotter ARGS`` in this process (conftest)."""
    proc = cli_run(*args)
    return proc.returncode, proc.stdout, proc.stderr


def test_predict_warns_on_a_run_and_exits_3(tiny_spot_run, tmp_path):
    files = {"normal": _spots([6.3, 8.7]), "one_pixel": _pixel(1e20), "two": _spots([3.2, 4.1], [11.7, 12.4])}
    for name, image in files.items():
        np.save(tmp_path / f"{name}.npy", image.astype(np.float32))
    code, out, err = _cli("predict", tiny_spot_run, tmp_path / "normal.npy")
    assert code == 0 and "warning" not in out + err, (out, err)
    code, out, err = _cli("predict", tiny_spot_run, *(tmp_path / f"{name}.npy" for name in files))
    assert code == 3, (code, out, err)
    lines = out.splitlines()
    assert len(lines) == 3 and "warning" not in lines[0]
    assert "# warning: the photon counts lie far outside the range the model was trained on" in lines[1]
    assert "a spot of about 1e+20 photons (trained on 2000)" in lines[1]
    assert "# warning: the image seems to hold more than one spot" in lines[2] and "near (12, 12)" in lines[2]
    assert f"warning: {tmp_path / 'one_pixel.npy'}: the photon counts lie far outside" in err


def test_an_export_carries_the_trained_ranges_and_an_older_contract_skips_them(tiny_spot_run, tmp_path):
    out = tmp_path / "spot.pt"
    code, _, err = _cli("export", tiny_spot_run, "--format", "torchscript", "--out", out)
    assert code == 0, err
    contract_file = tmp_path / "spot.pt.json"
    contract = json.loads(contract_file.read_text())
    assert contract["trained_ranges"] == {"photons": [2000.0, 2000.0], "background": [10.0, 10.0],
                                          "sigma_psf": [1.0, 1.0], "read_noise": [0.0, 0.0]}
    np.save(tmp_path / "one_pixel.npy", _pixel(1e20))
    code, stdout, _ = _cli("predict", out, tmp_path / "one_pixel.npy")
    assert code == 3 and "a spot of about 1e+20 photons (trained on 2000)" in stdout
    del contract["trained_ranges"]  # as contracts were written before they carried the ranges
    contract_file.write_text(json.dumps(contract))
    code, stdout, _ = _cli("predict", out, tmp_path / "one_pixel.npy")
    assert code in (0, 3) and "far outside" not in stdout, stdout  # (its answer may still be clamped, and say so)


@pytest.mark.parametrize("ranges", [[1, 2], {"photons": [1, 2]}, {"photons": "abc", "background": [1, 2],
                                                                   "sigma_psf": [1, 1], "read_noise": [0, 0]},
                                    {"photons": [5, 1], "background": [1, 2], "sigma_psf": [1, 1],
                                     "read_noise": [0, 0]}])
def test_unusable_trained_ranges_in_a_contract_are_one_sentence(ranges):
    contract = {"height": SIZE, "width": SIZE, "input_scale": 100.0, "trained_ranges": ranges}
    with pytest.raises(UserError, match="trained_ranges must give photons, background, sigma_psf, read_noise"):
        SpotTask.from_contract(contract)
    contract["trained_ranges"] = SpotTask(SIZE, SIZE, spot=TINY).contract()["trained_ranges"]
    assert SpotTask.from_contract(contract).trained == TINY
