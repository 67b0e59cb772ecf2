"""The many-emitters task (data=emitters): frames at a density as a camera records them, the DECODE-like frame model
(model=frame_emitters) and its loss, the density benchmark (`pixel-spotter emitters bench`) and `pixel-spotter
localize` on TIFF movies."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from conftest import TINY

from pixel_spotter import cli
from pixel_spotter.data.datamodule import PixelDataModule
from pixel_spotter.errors import ConfigError
from pixel_spotter.models.frame_losses import mixture_loss
from pixel_spotter.models.frame_maps import Maps
from pixel_spotter.tasks.frame_sets import FrameSets
from pixel_spotter.training.compose import compose
from pixel_spotter.training.validation import validate

pytestmark = pytest.mark.usefixtures("one_thread")


def _dm(**settings):
    return PixelDataModule(height=32, width=32, task="emitters", **settings)


def test_frames_hold_a_poisson_count_at_the_density_and_differ_between_splits():
    dm = _dm(emitters={"density_per_um2": 2.0})  # 32 x 32 px at 100 nm = 10.24 um^2: 20.48 per frame
    _, truth, _ = next(dm.batches_truth("test"))
    counts = truth.counts.double()
    assert len(counts) == len(dm.positions["test"]) and abs(counts.mean() - 20.48) < 4 * math.sqrt(20.48 / len(counts))
    assert truth.bounds is not None and (truth.bounds[truth.mask] > 0).all()  # each emitter's CRLB, for scoring
    again = next(_dm(emitters={"density_per_um2": 2.0}).batches_truth("test"))[1]
    assert torch.equal(truth.xy, again.xy)  # a frame is a function of its seed
    val = next(dm.batches_truth("val"))[1]
    assert not torch.equal(val.xy[:3], truth.xy[:3])
    xy = truth.xy[truth.mask]
    assert xy.min() >= -0.5 and xy.max() <= 31.5


def test_the_network_sees_the_cameras_numbers_read_back_in_photons():
    ideal = _dm(emitters={"density_per_um2": 0.0, "background": [50, 50]})
    images = next(ideal.batches_truth("test"))[0]
    assert images.mean() == pytest.approx(50 / 100, rel=0.01)  # photons / input_scale
    emccd = _dm(emitters={"density_per_um2": 0.0, "background": [50, 50]},
                camera={"kind": "emccd", "em_gain": 200.0, "baseline": 300.0, "e_per_adu": 10.0})
    images = next(emccd.batches_truth("test"))[0]
    assert images.mean() == pytest.approx(0.5, rel=0.03)
    assert images.var() > 1.5 * 50 / 100**2  # EM gain's excess noise: about twice Poisson's variance


@pytest.mark.parametrize(("override", "message"), [
    ("data.emitters.density_per_um2=[4,1]", r"data.emitters.density_per_um2 must be emitters per um\^2 >= 0"),
    ("+data.emitters.colour=1", "data.emitters.colour is not an emitter setting"),
    ("data.emitters.photons=[5,1]", "data.emitters: photons must be"),
    ("data.camera.kind=film", "data.camera: camera kind 'film' is unknown"),
    ("data.input_scale=0", "data.input_scale must be a number > 0"),
    ("data.tolerance_nm=-1", "data.tolerance_nm must be a number > 0"),
    ("data.emitters.density_per_um2=100000", "more than 10,000; lower the density"),
    ("model.net.outputs=1", "model.loss=mixture reads 9 maps per pixel"),
])
def test_bad_emitter_settings_are_one_line(override, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        validate(compose(*TINY, "data=emitters", "model=frame_emitters", override, output_dir=tmp_path))


def _perfect_maps(sets: FrameSets, height: int, width: int, shift: float = 0.0) -> Maps:
    logit = torch.full((len(sets), height, width), -8.0)
    dx, dy = torch.zeros_like(logit), torch.zeros_like(logit)
    for i in range(len(sets)):
        for x, y in sets.frame(i):
            c, r = round(x), round(y)
            logit[i, r, c] = 8.0
            dx[i, r, c], dy[i, r, c] = x - c + shift, y - r
    small = torch.full_like(logit, 0.05)
    photons = torch.full_like(logit, 1.0)
    return Maps(logit=logit, dx=dx, dy=dy, photons=photons, background=torch.full_like(logit, 0.01),
                sigma_x=small, sigma_y=small, sigma_photons=torch.full_like(logit, 0.1),
                psf_sigma=torch.full_like(logit, 1.3))


def test_the_mixture_loss_prefers_the_true_positions_and_is_finite_on_empty_frames():
    sets = FrameSets.pad([torch.tensor([[3.2, 4.9], [10.0, 2.3]]), torch.zeros(0, 2)],
                         [torch.tensor([1000.0, 1000.0]), torch.zeros(0)], torch.tensor([10.0, 10.0]),
                         psf_sigma=[torch.tensor([1.3, 1.3]), torch.zeros(0)])
    exact = mixture_loss(_perfect_maps(sets, 16, 16), sets, photon_scale=1000.0)
    shifted = mixture_loss(_perfect_maps(sets, 16, 16, shift=0.2), sets, photon_scale=1000.0)
    assert torch.isfinite(exact) and shifted > exact + 1.0
    raw = torch.zeros(2, 9, 16, 16, requires_grad=True)  # what a fresh network might answer
    from pixel_spotter.models.frame_maps import read_maps

    loss = mixture_loss(read_maps(raw), sets, photon_scale=1000.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(raw.grad).all() and raw.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def emitters_run(tmp_path_factory):
    from omegaconf import OmegaConf

    from pixel_spotter.training.run import run

    folder = tmp_path_factory.mktemp("emitters_run")
    cfg = compose("data=emitters", "model=frame_emitters", "data.height=24", "data.width=24",
                  "data.emitters.density_per_um2=[0.5,1]", "data.emitters.photons=[3000,5000]",
                  "data.emitters.background=[10,20]", "data.train_samples_per_epoch=1024", "trainer.max_epochs=3",
                  "model.lr=3e-3", "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0",
                  output_dir=folder, hydra_config=True)
    record = run(cfg)
    (folder / ".hydra").mkdir(exist_ok=True)  # as train.py's Hydra writes it
    OmegaConf.save(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), folder / ".hydra" / "config.yaml")
    return folder, record


def test_a_run_records_the_model_and_the_classical_pipeline_on_the_same_test_frames(emitters_run):
    folder, record = emitters_run
    assert record.ok, record.error
    classical = record.references["classical"]
    assert {"jaccard", "rmse_nm", "efficiency", "rmse_over_bound", "frames_per_s", "threshold"} <= set(classical)
    assert classical["jaccard"] > 0.5  # bright, sparse spots: the classical pipeline finds most
    assert record.test["jaccard"] > 0.3 and 0 < record.decode["threshold"] < 1  # three short epochs
    assert record.test["z_rms"] > 0 and record.images_per_s > 0  # its own uncertainties were scored


def test_the_density_benchmark_scores_each_method_at_each_density(emitters_run, tmp_path, capsys):
    folder, _ = emitters_run
    assert cli.main(["emitters", "bench", str(folder), "--densities", "0.5,2", "--frames", "6", "--size", "32",
                     "--no-picasso", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "emitters.csv").open()))
    assert [(r["density_per_um2"], r["method"].split()[0]) for r in rows] == [
        ("0.5", "frame_emitters"), ("0.5", "classical"), ("2.0", "frame_emitters"), ("2.0", "classical")]
    dense = [r for r in rows if r["density_per_um2"] == "2.0"]
    assert all(int(r["frames"]) == 6 and int(r["emitters"]) > 6 * 10 for r in dense)  # 10.24 um^2 x 2 per frame
    assert all(float(r["frames_per_s"]) > 0 for r in rows)
    out = capsys.readouterr().out
    assert "| 2 | classical |" in out and "Picasso left out: --no-picasso" in out
    assert cli.main(["emitters", "bench", str(folder), "--densities", "0,-1"]) == 2
    assert "--densities" in capsys.readouterr().err


def _movie(tmp_path, frames: np.ndarray, name="movie.tif"):
    import tifffile

    path = tmp_path / name
    tifffile.imwrite(path, frames)
    return path


def test_localize_writes_what_the_model_finds_in_thunderstorm_columns(emitters_run, tmp_path, capsys):
    from pixel_spotter.serving.loading import load_model
    from pixel_spotter.tasks.emitters.rendering import EmitterSynthesizer
    from pixel_spotter.tasks.emitters.task import EmittersTask

    folder, _ = emitters_run
    task = EmittersTask(40, 48, emitters={"density_per_um2": 1.0, "photons": [4000, 5000], "background": [10, 10]})
    synth = EmitterSynthesizer(40, 48, task.ranges, task.density, task.camera, task.input_scale)
    images, truth, photons = synth(list(range(5)), "cpu")
    movie = _movie(tmp_path, photons.numpy().astype(np.uint16))  # an ideal camera's counts
    assert cli.main(["localize", str(folder), str(movie)]) == 0
    out = capsys.readouterr().out
    table = list(csv.reader(movie.with_suffix(".csv").open()))
    assert tuple(table[0]) == ("frame", "x [nm]", "y [nm]", "sigma [nm]", "intensity [photon]", "offset [photon]",
                               "uncertainty [nm]")
    rows = np.array(table[1:], dtype=float)
    model, _ = load_model(folder, frames=True)
    with torch.inference_mode():
        found = model.localize(torch.from_numpy(photons.numpy().astype(np.uint16).astype(np.float32))[:, None]
                               / task.input_scale)
    expected = np.concatenate([np.column_stack([np.full(len(f["xy"]), i + 1), (f["xy"] + 0.5) * 100])
                               for i, f in enumerate(found)])
    assert len(rows) == len(expected) > 5 and f"{len(rows)} localizations in 5 frames of 40x48" in out
    np.testing.assert_allclose(rows[:, :3], expected, rtol=1e-5)  # frames from 1, nm from the corner
    assert (rows[:, 3] > 0).all() and (rows[:, 4] > 0).all() and (rows[:, 6] > 0).all()


def test_localize_refuses_bad_movies_and_runs_in_one_line(emitters_run, tmp_path, capsys):
    folder, _ = emitters_run
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    whole = _movie(tmp_path, np.ones((20, 64, 64), np.uint16), "whole.tif").read_bytes()
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(whole[: len(whole) // 2])
    bad = {
        "truncated": truncated,
        "corrupt": corrupt,
        "4-D": _movie(tmp_path, np.zeros((2, 3, 16, 16), np.uint16), "4d.tif"),
        "rgb": _movie(tmp_path, np.zeros((32, 32, 3), np.uint8), "rgb.tif"),
        "nan": _movie(tmp_path, np.full((2, 16, 16), np.nan, np.float32), "nan.tif"),
        "tiny": _movie(tmp_path, np.zeros((2, 4, 4), np.uint16), "tiny.tif"),
        "missing": tmp_path / "none.tif",
    }
    messages = {"corrupt": "is it corrupt", "truncated": "corrupt", "4-D": "is a 4-D array", "rgb": "is a colour image",
                "nan": "frame 1 holds a value that is not a finite number", "tiny": "has frames of 4x4 pixels",
                "missing": "does not exist"}
    for name, path in bad.items():
        assert cli.main(["localize", str(folder), str(path)]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and messages[name] in err, (name, err)
        assert not path.with_suffix(".csv").exists() or name == "missing"
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written table left behind
    assert cli.main(["localize", str(folder), str(bad["4-D"]), "--em-gain", "0"]) == 2
    assert "em_gain must be a number" in capsys.readouterr().err
