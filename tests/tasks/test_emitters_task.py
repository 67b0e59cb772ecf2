"""The many-emitters task (data=emitters): frames at a density as a camera records them, the DECODE-like frame model
(model=frame_emitters) and its loss, the density benchmark (`pixel-spotter emitters bench`) and `pixel-spotter
localize` on TIFF movies."""

from __future__ import annotations

import csv
import importlib.util
import math
import os

import numpy as np
import pytest
import torch
from conftest import TINY, run_in_process

from pixel_spotter import cli
from pixel_spotter.data.datamodule import PixelDataModule
from pixel_spotter.errors import ConfigError
from pixel_spotter.models.frame_losses import mixture_loss
from pixel_spotter.models.frame_maps import SPLITS, Maps
from pixel_spotter.tasks.frame_sets import FrameSets
from pixel_spotter.training.compose import compose
from pixel_spotter.training.validation import validate

pytestmark = pytest.mark.usefixtures("one_thread")
ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None  # the export extra: localize's default runtime


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
    ("model.split=0.2", r"model.split must be a number in \[0.5, 1\] \(1: no split\)"),
    ("model.refine_beyond=-3", r"model.refine_beyond must be a distance in px in \[0, 100\]"),
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
    from pixel_spotter.models.frame_maps import MIN_SIGMA

    def raw_of(value, positive=True, offset=0.0):  # the raw channel the activation makes ``value`` of
        return torch.log(torch.expm1(torch.full_like(logit, value - offset))) if positive else torch.atanh(value)

    raw = torch.stack([logit, raw_of(dx, False), raw_of(dy, False), raw_of(1.0), raw_of(0.01),
                       raw_of(0.05, offset=MIN_SIGMA), raw_of(0.05, offset=MIN_SIGMA), raw_of(0.1, offset=MIN_SIGMA),
                       raw_of(1.3, offset=MIN_SIGMA)], dim=1)
    maps = Maps(raw)
    torch.testing.assert_close(maps.dx, dx)
    torch.testing.assert_close(maps.sigma_x, torch.full_like(logit, 0.05))
    return maps


def test_a_map_read_at_some_pixels_is_the_full_maps_numbers_there():
    """The decode reads each emitter map at its candidates' pixels only (``Maps.at``), never the full map: the same
    numbers, to float32 rounding (a vectorized softplus and a short one may differ in the last bit)."""
    from pixel_spotter.models.frame_maps import ACTIVATIONS

    raw = torch.randn(3, 9, 12, 14, generator=torch.Generator().manual_seed(0)) * 3
    frame, row, col = torch.tensor([0, 2, 2, 1]), torch.tensor([0, 11, 5, 3]), torch.tensor([13, 0, 7, 3])
    for name in ACTIVATIONS:
        at = Maps(raw).at(name, frame, row, col)
        assert at.dtype == torch.float64 and at.device.type == "cpu"  # not every device has float64
        torch.testing.assert_close(at.float(), getattr(Maps(raw), name)[frame, row, col], rtol=1e-6, atol=1e-7)
    assert Maps(raw[:, :1]).dx is None and not Maps(raw[:, :1]).emitters and Maps(raw).emitters


def _raw_maps(probabilities: dict, height: int = 16, width: int = 16) -> torch.Tensor:
    """(1, 9, H, W) raw maps: these (row, col) pixels at these probabilities, every other near 0, no offsets."""
    raw = torch.zeros(1, 9, height, width)
    raw[0, 0] = -9.0
    for (row, col), p in probabilities.items():
        raw[0, 0, row, col] = math.log(p / (1 - p))
    return raw


def test_the_split_decode_finds_the_second_of_two_emitters_in_neighbouring_pixels():
    from pixel_spotter.models.frame_maps import candidates, read_maps

    # two emitters in neighbouring pixels (both confident), and one emitter between two pixels (about half each)
    maps = read_maps(_raw_maps({(4, 4): 0.95, (4, 5): 0.85, (10, 10): 0.49, (10, 11): 0.46}))
    found = candidates(maps, "local_max")
    centres = lambda split: sorted(map(tuple, found.select(0.5, split)[0]["xy"].round().astype(int).tolist()))  # noqa: E731
    assert centres(1.0) == [(4, 4), (10, 10)]  # maxima only: the pair is one localization
    assert centres(0.8) == [(4, 4), (5, 4), (10, 10)]  # the pair's second is its own; the shared emitter not
    assert centres(0.5) == [(4, 4), (5, 4), (10, 10)]  # below 0.5 a pixel never splits (SPLITS' lowest)
    assert centres(0.9) == [(4, 4), (10, 10)]


def test_the_local_max_decode_finds_what_full_frame_pools_find():
    """The decode sums only the pixels that can be candidates; the definition pools every pixel: the same
    candidates, scores and peaks, on frames of confident, faint and saturated probabilities, at the border too."""
    import torch.nn.functional as F

    from pixel_spotter.models.frame_maps import SPLITS, candidates, read_maps

    generator = torch.Generator().manual_seed(3)
    for trial in range(12):
        raw = torch.randn(3, 9, 13 + trial, 11, generator=generator)
        raw[:, 0] = torch.randn(3, 13 + trial, 11, generator=generator) * (1 + trial) - 4
        raw[0, 0, 0, 0] = 30.0  # a saturated corner pixel
        raw[:, 1:3] = 0.0  # no sub-pixel offsets: each candidate at its pixel's centre
        p = torch.sigmoid(raw[:, 0])
        # the maximum of the logits: probabilities rounded to 1 (the saturated ones) are no tie
        peak = raw[:, 0] == F.max_pool2d(raw[:, :1], 3, stride=1, padding=1)[:, 0]
        total = F.avg_pool2d(p[:, None], 3, stride=1, padding=1, divisor_override=1)[:, 0]
        floor = 0.05
        where = (peak & (total >= floor)) | (~peak & (p > SPLITS[-1]))
        found = candidates(read_maps(raw), "local_max", floor=floor)
        frame, row, col = where.nonzero(as_tuple=True)
        assert torch.equal(found.frame, frame)
        assert torch.equal(found.xy, torch.stack([col, row], 1).double())
        torch.testing.assert_close(found.score, total[frame, row, col], rtol=1e-5, atol=1e-6)
        assert torch.equal(found.peak, peak[frame, row, col])
        torch.testing.assert_close(found.own, p[frame, row, col], rtol=1e-6, atol=1e-7)
        kept = found.select(0.3, 0.7)
        assert [len(f["xy"]) for f in kept] == [int(((total > 0.3) & (peak | (p > 0.7)) & where)[i].sum())
                                                for i in range(3)]


def test_the_split_is_chosen_on_validation_frames_with_the_threshold(monkeypatch):
    from pixel_spotter.models.frame_localizer import FrameLocalizer
    from pixel_spotter.models.frame_net import FrameNet
    from pixel_spotter.tasks.emitters.task import EmittersTask

    net = FrameNet(outputs=9, channels=4, dilations=[1])
    model = FrameLocalizer(net, loss="mixture", decode="local_max", monitor="val/efficiency")
    task = EmittersTask(16, 16)

    def tuned(probabilities, true_xy):
        raw = _raw_maps(probabilities)
        monkeypatch.setattr(model, "forward", lambda images: raw)
        sets = FrameSets.pad([torch.tensor(true_xy, dtype=torch.float32)], [torch.full((len(true_xy),), 1000.0)],
                             torch.tensor([10.0]))
        return model.tune_decode([(torch.zeros(1, 1, 16, 16), sets)], task.tally)

    # truth holds the neighbouring pair: a split finds both
    threshold, split = tuned({(4, 4): 0.95, (4, 5): 0.85}, [[4.0, 4.0], [5.0, 4.0]])
    assert split < 0.85 and float(model.split) == pytest.approx(split)
    assert float(model.threshold) == pytest.approx(threshold)
    assert model.decode_record()["split"] == split
    # one emitter whose probability two pixels share, both high: a split would be a false positive
    threshold, split = tuned({(4, 4): 0.95, (4, 5): 0.85}, [[4.4, 4.0]])
    assert split == 1.0 and model.decode_record()["split"] == 1.0
    model.apply_decode({"threshold": 0.4, "split": 0.6})
    assert float(model.split) == pytest.approx(0.6)
    for hostile in ({"split": float("nan")}, {"split": 0.0}, {"split": 7}):
        model.apply_decode(hostile)  # untrusted: ignored
        assert float(model.split) == pytest.approx(0.6)
    state = {k: v for k, v in model.state_dict().items() if k != "split"}  # a checkpoint from before the split
    model.load_state_dict(state)
    assert float(model.split) == 1.0


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
    folder = tmp_path_factory.mktemp("emitters_run")
    return folder, run_in_process(
        folder, "data=emitters", "model=frame_emitters", "data.height=24", "data.width=24",
        "data.emitters.density_per_um2=[0.5,1]", "data.emitters.photons=[3000,5000]",
        "data.emitters.background=[10,20]", "data.train_samples_per_epoch=1024", "trainer.max_epochs=3",
        "model.lr=3e-3", "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0")


def test_a_run_that_refines_records_the_refined_sigmas_own_factors(tmp_path):
    """model.refine on: validation scores the refined localizations, and before the test the refined sigmas get
    their factors, which the record keeps beside the network's."""
    record = run_in_process(
        tmp_path / "refined", "data=emitters", "model=frame_emitters", "data.height=24", "data.width=24",
        "data.emitters.density_per_um2=[0.5,1]", "data.emitters.photons=[3000,5000]",
        "data.emitters.background=[10,20]", "data.train_samples_per_epoch=1024", "trainer.max_epochs=2",
        "model.lr=3e-3", "model.refine=2", "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0")
    assert record.ok, record.error
    from pixel_spotter.models.frame_localizer import CROWDING

    refined = [record.decode[f"refined_sigma_scale_{name}"] for name, _ in CROWDING]
    network = [record.decode[f"sigma_scale_{name}"] for name, _ in CROWDING]
    assert all(0.01 <= v <= 100 for v in refined + network) and refined != [1.0] * len(CROWDING)
    assert refined != network and record.test["tp"] > 0


def test_a_run_records_the_model_and_the_classical_pipeline_on_the_same_test_frames(emitters_run):
    folder, record = emitters_run
    assert record.ok, record.error
    classical = record.references["classical"]
    assert {"jaccard", "rmse_nm", "efficiency", "rmse_over_bound", "frames_per_s", "threshold"} <= set(classical)
    assert classical["jaccard"] > 0.5  # bright, sparse spots: the classical pipeline finds most
    assert record.test["jaccard"] > 0.3 and 0 < record.decode["threshold"] < 1  # three short epochs
    assert record.images_per_s > 0
    # its own uncertainties, calibrated on the validation frames by one factor, hold on the test frames
    scales = [record.decode[f"sigma_scale_{name}"] for name in ("close", "near", "alone")]
    assert all(0.1 < v < 10 for v in scales) and scales[2] != 1.0 and 0.7 < record.test["z_rms"] < 1.4
    assert record.decode["split"] in SPLITS  # chosen with the threshold
    # the test's calibration curve: bins of predicted sigma, each with its RMS error
    curve = record.calibration
    assert len(curve) >= 2 and all(row["coordinates"] >= 20 and row["rms_error_nm"] > 0 for row in curve)
    assert [row["sigma_nm"] for row in curve] == sorted(row["sigma_nm"] for row in curve)
    assert sum(row["coordinates"] for row in curve) <= 2 * record.test["tp"]


def test_the_density_benchmark_scores_each_method_at_each_density(emitters_run, tmp_path, capsys, monkeypatch):
    from pixel_spotter.benchmarks.timing import busy_machine
    from pixel_spotter.tasks.emitters import bench

    folder, _ = emitters_run
    rendered, render = [], bench._frames
    monkeypatch.setattr(bench, "_frames", lambda synth, seed, stream, count: (
        rendered.append((stream, count)) or render(synth, seed, stream, count)))
    assert cli.main(["emitters", "bench", str(folder), "--densities", "0.5,2", "--frames", "6", "--val-frames", "9",
                     "--size", "32", "--no-picasso", "--out", str(tmp_path)]) == 0
    assert rendered == [(bench.VAL_STREAM, 9), (bench.TEST_STREAM, 6)] * 2  # the thresholds chosen on 9 frames
    rows = list(csv.DictReader((tmp_path / "emitters.csv").open()))
    assert [(r["density_per_um2"], r["method"].split()[0]) for r in rows] == [
        ("0.5", "frame_emitters"), ("0.5", "classical"), ("2.0", "frame_emitters"), ("2.0", "classical")]
    dense = [r for r in rows if r["density_per_um2"] == "2.0"]
    assert all(int(r["frames"]) == 6 and int(r["emitters"]) > 6 * 10 for r in dense)  # 10.24 um^2 x 2 per frame
    assert all(float(r["frames_per_s"]) > 0 for r in rows)
    assert [r["runtime"] for r in rows] == ["onnxruntime" if ONNXRUNTIME else "torch", ""] * 2  # the network's
    sparse = [r for r in rows if r["density_per_um2"] == "0.5"]
    assert all(float(r["isolated_over_bound"]) > 0 for r in sparse)  # each method's pairs far from any other
    assert all(float(r["error_over_joint_bound"]) > 0 for r in rows)  # every method's, over the crowded bound
    # a crowded frame's bound is never below the single-emitter one, and at 2/um^2 some pairs overlap
    assert all(float(r["efficient_over_bound"]) >= 1 for r in rows)
    assert all(float(r["efficient_over_bound"]) > 1.01 for r in dense)
    for r in rows:  # each number inside its interval over resampled test frames, and the interval not a point
        for name in ("efficiency", "rmse_over_bound"):
            low, value, high = (float(r[name + end]) for end in ("_low", "", "_high"))
            assert low <= value <= high and low < high, (r["method"], name)
    out = capsys.readouterr().out
    assert "RMSE / CRLB, isolated" in out and "error / joint CRLB (RMS)" in out
    assert f"| {float(dense[0]['efficiency']):.1f} ({float(dense[0]['efficiency_low']):.1f} to " in out
    assert "| 2 | classical |" in out and "Picasso left out: --no-picasso" in out
    # other work holding the cores is said, as speeds measured then are not an idle machine's
    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 7.0, 6.0))
    assert cli.main(["emitters", "bench", str(folder), "--densities", "1", "--frames", "2", "--size", "32",
                     "--no-picasso", "--out", str(tmp_path / "busy")]) == 0
    assert f"note: the machine is busy (load average 7.5 on {os.cpu_count()} cores)" in capsys.readouterr().err
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.3, 0.3))  # a quiet machine: no note
    assert busy_machine() is None
    monkeypatch.undo()
    assert cli.main(["emitters", "bench", str(folder), "--densities", "0,-1"]) == 2
    assert "--densities" in capsys.readouterr().err
    # the options: the refinement on, a border left out (fewer emitters counted), Picasso's absence said, PyTorch
    assert cli.main(["emitters", "bench", str(folder), "--densities", "2", "--frames", "6", "--size", "32",
                     "--refine", "3", "--border-nm", "450", "--runtime", "torch",
                     "--out", str(tmp_path / "options")]) == 0
    inner = list(csv.DictReader((tmp_path / "options" / "emitters.csv").open()))
    assert inner[0]["runtime"] == "torch"
    scored = lambda r: float(r["tp"]) + float(r["fn"])  # noqa: E731 (the true emitters the score counted)
    assert all(scored(r) == int(r["emitters"]) for r in rows) and len(inner) >= 2
    assert all(scored(r) < int(r["emitters"]) for r in inner)  # those within 450 nm of the edge left out
    for bad in (["--refine", "99"], ["--border-nm", "5000"], ["--frames", "0"], ["--frames", "90000"],
                ["--val-frames", "0"], ["--val-frames", "90000"],
                ["--densities", "4", "--size", "1024", "--frames", "1"]):  # 41,943 emitters a frame: one line
        assert cli.main(["emitters", "bench", str(folder), "--size", "32", *bad]) == 2
        assert bad[0] in capsys.readouterr().err


def _model_and_frames(emitters_run):
    """The emitters run's model, loaded afresh, and 8 frames of 24x24 at 1 emitter/um^2 (images, FrameSets)."""
    from pixel_spotter.serving.loading import load_model
    from pixel_spotter.tasks.emitters.rendering import EmitterSynthesizer
    from pixel_spotter.tasks.emitters.task import EmittersTask

    folder, _ = emitters_run
    model, _ = load_model(folder, frames=True)
    task = EmittersTask(24, 24, emitters={"density_per_um2": 1.0, "photons": [3000, 5000], "background": [10, 20]},
                        input_scale=model.input_scale)
    images, sets, _ = EmitterSynthesizer(24, 24, task.ranges, task.density, task.camera, task.input_scale)(
        list(range(8)), "cpu")
    return model, task, images, sets


def test_the_sigma_factors_calibrate_the_network_and_the_refinement_each_its_own(emitters_run):
    from pixel_spotter.models.frame_localizer import CROWDING
    from pixel_spotter.models.frame_refine import refine

    model, task, images, sets = _model_and_frames(emitters_run)
    model.sigma_scale.fill_(1.0)
    plain = model.localize(images)
    model.sigma_scale.fill_(2.0)
    scaled = model.localize(images)
    assert sum(len(f["xy"]) for f in plain) > 0
    for a, b in zip(plain, scaled):
        np.testing.assert_allclose(b["sigma"], 2 * a["sigma"])
    model.refine = 3
    refined = model.localize(images)  # the fit's own bound, not the network's factor
    expected = refine(images[:, 0] * model.input_scale, scaled, 3)
    for a, b in zip(refined, expected):
        np.testing.assert_allclose(a["sigma"], b["sigma"])
        assert a["refined"].all()
    # the network's factor is chosen for the network's sigmas, whether the refinement is on or not
    chosen = model.calibrate([(images, sets)], task.tally)
    # the refined sigmas' factors: chosen with the refinement on, they make its errors one sigma RMS
    fitted = model.calibrate([(images, sets)], task.tally, refined=True)
    assert (model.refined_sigma_scale == 1.0).all() and not torch.equal(fitted, chosen)
    model.refined_sigma_scale.copy_(fitted)
    tally = task.tally()
    for i, f in enumerate(model.localize(images)):
        tally.add(f["xy"], sets.frame(i), None, f["sigma"])
    assert tally.summary()["z_rms"] == pytest.approx(1.0, abs=0.15)  # one factor per class, not one overall
    record = model.decode_record()
    assert [record[f"refined_sigma_scale_{name}"] for name, _ in CROWDING] == fitted.tolist()
    model.refined_sigma_scale.fill_(1.0)
    model.apply_decode(record)
    assert model.refined_sigma_scale.tolist() == fitted.tolist()
    model.refine = 0
    assert torch.equal(chosen, model.calibrate([(images, sets)], task.tally)) and (model.sigma_scale == 2.0).all()
    # what a run does before its test: the network's factors always, the refined ones when it refines
    model.refined_sigma_scale.fill_(1.0)
    model.calibrate_sigmas(lambda: [(images, sets)], task.tally)
    assert torch.equal(model.sigma_scale, chosen) and (model.refined_sigma_scale == 1.0).all()
    model.refine = 3  # then the width prior first, and the refined factors with it
    model.calibrate_sigmas(lambda: [(images, sets)], task.tally)
    assert torch.equal(model.sigma_scale, chosen) and float(model.psf_width_error) > 0
    assert torch.equal(model.refined_sigma_scale, model.calibrate([(images, sets)], task.tally, refined=True))


def test_the_refinements_width_prior_is_the_networks_psf_width_error_and_round_trips(emitters_run):
    """Before refined sigmas are calibrated, the prior on each PSF width is set to the RMS error of the network's
    own widths on the same frames (a hand computation here); the refinement fits with it; the record keeps it, and
    untrusted values or a checkpoint from before it leave the fit without one."""
    from pixel_spotter.evaluation.localizations import match
    from pixel_spotter.models.frame_refine import refine

    model, task, images, sets = _model_and_frames(emitters_run)
    errors = []
    for i, f in enumerate(model.localize(images)):  # the network's answers (the run does not refine)
        pairs = match(f["xy"], sets.frame(i), task.tally().tolerance_px)
        widths = sets.psf_sigma[i][sets.mask[i]].double().numpy()
        errors += [f["psf_sigma"][k] - widths[j] for k, j in pairs]
    expected = float(np.sqrt(np.mean(np.square(errors))))
    assert model.refine == 0 and float(model.psf_width_error) == 0.0 and len(errors) > 10
    model.refine = 2
    model.calibrate_refinement(lambda: [(images, sets)], task.tally)
    assert float(model.psf_width_error) == pytest.approx(expected, rel=1e-6) and model.refine == 2
    model.refine = 0
    plain = model.localize(images)
    model.refine = 2
    for a, b in zip(model.localize(images), refine(images[:, 0] * model.input_scale, plain, 2,
                                                   width_prior=expected)):
        np.testing.assert_allclose(a["xy"], b["xy"])
    record = model.decode_record()
    assert record["psf_width_error"] == pytest.approx(expected)
    model.psf_width_error.fill_(0.0)
    model.apply_decode(record)
    assert float(model.psf_width_error) == pytest.approx(expected)
    for hostile in (float("nan"), -1.0, 1e9, "0.1"):
        model.apply_decode({"psf_width_error": hostile})
        assert float(model.psf_width_error) == pytest.approx(expected)
    old = {k: v for k, v in model.state_dict().items() if k != "psf_width_error"}
    model.load_state_dict(old)
    assert float(model.psf_width_error) == 0.0


def test_each_crowding_class_has_its_own_sigma_factor_and_old_records_and_checkpoints_still_load(emitters_run):
    from pixel_spotter.models.frame_calibration import CROWDING, crowding, crowding_of_frames
    from pixel_spotter.serving.loading import load_model

    # nearest neighbours 2, 2, 4 and 4 px, none within 6 px
    xy = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [14.0, 0.0], [30.0, 30.0]])
    assert crowding(xy).tolist() == [0, 0, 1, 1, 2] and crowding(np.zeros((0, 2))).tolist() == []
    # a batch's frames at once: each frame's own classes, no neighbour taken from another frame
    frames = [xy, np.zeros((0, 2)), xy[:1], xy[[0, 1]]]
    assert [c.tolist() for c in crowding_of_frames(frames)] == [[0, 0, 1, 1, 2], [], [2], [0, 0]]
    folder, record = emitters_run
    model, _ = load_model(folder, frames=True)
    model.apply_decode({"threshold": 0.4, "sigma_scale_close": 4.0, "sigma_scale_near": 2.0,
                        "sigma_scale_alone": 1.0})
    assert model.sigma_scale.tolist() == [4.0, 2.0, 1.0] and model.decode_record()["sigma_scale_close"] == 4.0
    images = torch.zeros(1, 1, 24, 24)
    model.candidates = lambda _: _Fixed(xy)  # the decode's answer, as if the network had found these five
    found = model.localize(images)[0]
    np.testing.assert_allclose(found["sigma"][:, 0], [0.4, 0.4, 0.2, 0.2, 0.1])
    model.apply_decode({"sigma_scale": 1.5})  # a record from before the classes: its one factor for each
    assert model.sigma_scale.tolist() == [1.5, 1.5, 1.5]
    for hostile in ({"sigma_scale": float("nan")}, {"sigma_scale_close": 1e9, "sigma_scale": 2.0}, [], None):
        model.apply_decode(hostile)  # untrusted values: ignored, the factors kept
        assert model.sigma_scale.tolist() == [1.5, 1.5, 1.5]
    state = {**model.state_dict(), "sigma_scale": torch.tensor(1.25)}  # a checkpoint with one factor
    model.load_state_dict(state)
    assert model.sigma_scale.tolist() == [1.25] * len(CROWDING)


class _Fixed:
    def __init__(self, xy):
        self.xy = xy

    def select(self, threshold, split=1.0):
        k = len(self.xy)
        return [{"xy": self.xy, "score": np.ones(k), "sigma": np.full((k, 2), 0.1), "photons": np.ones(k),
                 "background": np.ones(k), "psf_sigma": np.ones(k)}]


def _killed_writers_leftover(target):
    """A hidden temporary beside ``target`` as a writer killed mid-write leaves it: its process gone, and old."""
    import os
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = target.with_name(f".{target.name}.{int(gone.stdout)}.tmp")
    leftover.write_text("half a table")
    os.utime(leftover, (1, 1))
    return leftover


def _movie(tmp_path, frames: np.ndarray, name="movie.tif"):
    import tifffile

    path = tmp_path / name
    tifffile.imwrite(path, frames)
    return path


def test_localize_writes_what_the_model_finds_in_thunderstorm_columns(emitters_run, tmp_path, capsys, monkeypatch):
    from pixel_spotter.serving import localize
    from pixel_spotter.serving.frame_runtime import frames_per_pass
    from pixel_spotter.serving.loading import load_model
    from pixel_spotter.tasks.emitters.rendering import EmitterSynthesizer
    from pixel_spotter.tasks.emitters.task import EmittersTask

    folder, _ = emitters_run
    task = EmittersTask(40, 48, emitters={"density_per_um2": 1.0, "photons": [4000, 5000], "background": [10, 10]})
    synth = EmitterSynthesizer(40, 48, task.ranges, task.density, task.camera, task.input_scale)
    images, truth, photons = synth(list(range(5)), "cpu")
    movie = _movie(tmp_path, photons.numpy().astype(np.uint16))  # an ideal camera's counts
    leftover = _killed_writers_leftover(movie.with_suffix(".csv"))
    passes, run_movie = [], localize.localize_movie
    monkeypatch.setattr(localize, "localize_movie", lambda *args: passes.append(args[5]) or run_movie(*args))
    assert cli.main(["localize", str(folder), str(movie)]) == 0
    out = capsys.readouterr().out
    # as many frames a pass as the runtime is fastest with, unless --batch says
    assert passes == [frames_per_pass("onnxruntime" if ONNXRUNTIME else "torch", 40, 48)]
    assert cli.main(["localize", str(folder), str(movie), "--batch", "2", "--out", str(tmp_path / "b2.csv")]) == 0
    assert passes[1:] == [2] and (tmp_path / "b2.csv").read_text() == movie.with_suffix(".csv").read_text()
    capsys.readouterr()
    assert not leftover.exists()  # what a localize killed mid-write left beside the table is cleaned up
    table = list(csv.reader(movie.with_suffix(".csv").open()))
    assert tuple(table[0]) == ("frame", "x [nm]", "y [nm]", "sigma [nm]", "intensity [photon]", "offset [photon]",
                               "uncertainty [nm]")
    rows = np.array(table[1:], dtype=float)
    model, _ = load_model(folder, frames=True)
    from pixel_spotter.run_folder import RunFolder

    model.apply_decode(RunFolder(folder).read().decode)  # localize scores with what the run's test used
    with torch.inference_mode():
        found = model.localize(torch.from_numpy(photons.numpy().astype(np.uint16).astype(np.float32))[:, None]
                               / task.input_scale)
    expected = np.concatenate([np.column_stack([np.full(len(f["xy"]), i + 1), (f["xy"] + 0.5) * 100])
                               for i, f in enumerate(found)])
    assert len(rows) == len(expected) > 5 and f"{len(rows)} localizations in 5 frames of 40x48" in out
    # the network ran on onnxruntime where the export extra is installed (the default --runtime auto), and its
    # table is PyTorch's (the comparison above)
    assert f"frames/s, {'onnxruntime' if ONNXRUNTIME else 'torch'}) ->" in out
    # frames from 1, nm from the corner (to float rounding: 1e-3 nm where a coordinate is near 0)
    np.testing.assert_allclose(rows[:, :3], expected, rtol=1e-5, atol=1e-3)
    sigmas = np.concatenate([f["sigma"] for f in found])
    np.testing.assert_allclose(rows[:, 6], np.sqrt((sigmas ** 2).mean(axis=1)) * 100, rtol=1e-4)
    assert (rows[:, 3] > 0).all() and (rows[:, 4] > 0).all() and (rows[:, 6] > 0).all()


def test_localize_refine_calibrates_a_run_trained_without_it_on_simulated_frames(emitters_run, tmp_path, capsys):
    """--refine 2 on a run that never refined: the refinement's calibration is set on frames simulated from the
    run's own settings (said on one note line), and the table is the refined localizations, nearer the truth."""
    from pixel_spotter.evaluation.localizations import Tally
    from pixel_spotter.run_folder import RunFolder
    from pixel_spotter.serving.loading import load_model, run_task
    from pixel_spotter.serving.localize import CALIBRATION_FRAMES, calibrate_refinement_on_simulated
    from pixel_spotter.tasks.emitters.rendering import EmitterSynthesizer
    from pixel_spotter.tasks.emitters.task import EmittersTask

    folder, _ = emitters_run
    task = EmittersTask(40, 48, emitters={"density_per_um2": 0.5, "photons": [3000, 5000], "background": [10, 20]})
    synth = EmitterSynthesizer(40, 48, task.ranges, task.density, task.camera, task.input_scale)
    _, truth, photons = synth(list(range(6)), "cpu")
    movie = _movie(tmp_path, photons.numpy().astype(np.uint16))
    tables = {}
    for steps in ("0", "2"):
        out = tmp_path / f"refine{steps}.csv"
        assert cli.main(["localize", str(folder), str(movie), "--refine", steps, "--out", str(out)]) == 0
        printed = capsys.readouterr()
        tables[steps] = np.array(list(csv.reader(out.open()))[1:], dtype=float)
        assert (f"calibrated on {CALIBRATION_FRAMES} frames" in printed.err) == (steps == "2")
        assert (", refined in 2 steps) ->" in printed.out) == (steps == "2")
    plain, refined = tables["0"], tables["2"]
    assert len(plain) == len(refined) > 5 and np.array_equal(plain[:, 0], refined[:, 0])  # the same detections
    assert not np.allclose(plain[:, 1:3], refined[:, 1:3]) and np.isfinite(refined).all() and (refined[:, 6] > 0).all()
    # nearer the truth, as the refinement is
    errors = {}
    for steps, table in tables.items():
        tally = Tally(250.0, 100.0)
        for i in range(6):
            tally.add(table[table[:, 0] == i + 1, 1:3] / 100 - 0.5, truth.frame(i))
        errors[steps] = tally.summary()["rmse_nm"]
    assert errors["2"] < errors["0"]
    # the uncertainties are those of the model calibrated the same way
    model, size = load_model(folder, frames=True)
    model.apply_decode(RunFolder(folder).read().decode)
    model.refine, run = 2, run_task(RunFolder(folder), *size)
    model.input_scale = run.input_scale  # as localize sets it: the refinement fits photons
    calibrate_refinement_on_simulated(model, run)
    assert float(model.psf_width_error) > 0
    with torch.inference_mode():
        found = model.localize(torch.from_numpy(photons.numpy().astype(np.uint16).astype(np.float32))[:, None]
                               / model.input_scale)
    sigma = np.concatenate([np.sqrt((f["sigma"] ** 2).mean(axis=1)) * 100 for f in found])
    np.testing.assert_allclose(refined[:, 6], sigma, rtol=1e-4)
    assert cli.main(["localize", str(folder), str(movie), "--refine", "99"]) == 2
    assert "--refine 99" in capsys.readouterr().err


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


class _FakePicasso:
    """Picasso's three calls as the reference uses them, answering the true positions of the frames it is handed
    (so what is tested is our side: the TIFF we write, the camera settings, the threshold and the grouping)."""

    def __init__(self, truth):
        self.truth, self.seen = truth, {}

    def load_movie(self, path):
        import tifffile

        movie = tifffile.imread(path)
        self.seen["dtype"], self.seen["min"] = movie.dtype, int(movie.min())
        return movie, [{}]

    def identify(self, movie, minimum_ng, box, return_info=True):
        self.seen["box"] = box
        return None

    def fit(self, movie, camera_info, identifications, box, fitting_method, multiprocess):
        self.seen["camera"], self.seen["method"] = camera_info, fitting_method
        rows = [(i, x, y, 1000.0 * (1 + k % 3)) for i in range(len(movie)) if i < len(self.truth)
                for k, (x, y) in enumerate(self.truth[i])]
        frame, x, y, gradient = (np.array(c, dtype=float) for c in zip(*rows)) if rows else ([],) * 4
        return {"frame": frame, "x": x, "y": y, "net_gradient": gradient}, {}


def test_the_picasso_reference_hands_picasso_a_movie_in_photons_and_reads_its_table(monkeypatch):
    import sys
    import types

    from pixel_spotter.tasks.emitters import picasso_reference
    from pixel_spotter.tasks.emitters.task import EmittersTask

    task = EmittersTask(32, 32, emitters={"density_per_um2": 2.0})
    _, truth, photons = task.renderer(list(range(4)), "cpu")
    frames = [truth.frame(i) for i in range(len(truth))]
    fake = _FakePicasso(frames)
    package = types.ModuleType("picasso")
    package.io, package.localize = (types.SimpleNamespace(load_movie=fake.load_movie),
                                    types.SimpleNamespace(identify=fake.identify, fit=fake.fit))
    monkeypatch.setitem(sys.modules, "picasso", package)
    settings = picasso_reference.tune(photons, frames, 1.3, task.tally)
    assert fake.seen["dtype"] == np.uint16 and fake.seen["min"] >= 0 and fake.seen["box"] == 7
    assert fake.seen["camera"]["Baseline"] == picasso_reference.BASELINE and fake.seen["method"] == "gaussmle"
    assert settings["min_net_gradient"] <= 1000  # every true emitter passes only the lowest thresholds
    found = picasso_reference.localize(photons, 1.3, {"min_net_gradient": 2000.0, "box": 7})
    kept = [len(f) for f in found]
    assert kept == [sum(k % 3 >= 1 for k in range(len(t))) for t in frames]  # gradients 1000 dropped


@pytest.mark.skipif(not __import__("importlib").util.find_spec("picasso"), reason="the picasso extra is not "
                    "installed (pip install -e '.[picasso]')")
def test_the_real_picasso_finds_isolated_spots_where_they_are():
    from pixel_spotter.tasks.emitters import picasso_reference
    from pixel_spotter.tasks.emitters.task import EmittersTask

    # Picasso finds no spot whose box crosses the frame's edge, nor two in one box: sparse spots, a border left out
    task = EmittersTask(64, 64, emitters={"density_per_um2": 0.1, "photons": [3000, 3000], "background": [10, 10]},
                        border_nm=450)
    _, truth, photons = task.renderer(list(range(10)), "cpu", bounds=True)
    found = picasso_reference.localize(photons, 1.3, {"min_net_gradient": 1000.0, "box": 7})
    tally = task.tally()
    for i, xy in enumerate(found):
        tally.add(xy, truth.frame(i), truth.frame_bounds(i))
    summary = tally.summary()
    assert summary["recall"] > 0.9 and summary["rmse_nm"] < 30  # same pixel convention as ours


def test_the_report_shows_the_runs_scores_and_the_density_benchmark(emitters_run, tmp_path):
    import shutil

    from pixel_spotter.report.cli import make_report

    folder, record = emitters_run
    copy = shutil.copytree(folder, tmp_path / "run")
    assert cli.main(["emitters", "bench", str(copy), "--densities", "1", "--frames", "4", "--size", "32",
                     "--no-picasso"]) == 0
    with (copy / "emitters.csv").open("a") as table:
        table.write("nan,evil,1,1,x,,,,,,,,\n-1,neg,1,1,1,1,1,1,1,1,1,1,1\n")  # untrusted rows: dropped
    paths = make_report([copy], tmp_path / "report")
    text = paths["md"].read_text()
    assert "## Many emitters per frame" in text and "classical, same frames" in text
    assert f"| {record.test['jaccard']:.3f} |" in text
    assert "| 1 | classical |" in text and "evil" not in text and "neg" not in text
    assert (tmp_path / "report" / "plots" / "emitters.png").is_file()
    assert (tmp_path / "report" / "plots" / "calibration.png").is_file() and "calibration of the predicted" in text
    # an untrusted calibration curve: malformed bins dropped, fewer than two points no plot, never a trace
    import json

    from pixel_spotter.tasks.emitters.report_section import calibration_points

    results = copy / "results.json"
    raw = json.loads(results.read_text())
    raw["calibration"] = [{"sigma_nm": -1, "rms_error_nm": 5, "coordinates": 30}, {"sigma_nm": 5.0},
                          {"sigma_nm": 4.0, "rms_error_nm": 6.0, "coordinates": 40}]
    results.write_text(json.dumps(raw))
    paths = make_report([copy], tmp_path / "report2")
    assert not (tmp_path / "report2" / "plots" / "calibration.png").exists()
    assert calibration_points(type("Run", (), {"record": raw})()) == [(4.0, 6.0, 40.0)]


def test_the_refinement_fits_each_localization_and_holds_its_neighbours_light_fixed():
    from pixel_spotter.models.frame_refine import refine
    from pixel_spotter.spots.psf import expected_counts

    # 5.8 px apart: each spot's tail in the other's window (closer pairs are where the refinement falls short:
    # docs/emitters.md)
    true = torch.tensor([[8.3, 12.6], [14.1, 12.2]], dtype=torch.float64)
    mu = expected_counts(true, torch.tensor([3000.0, 3000.0], dtype=torch.float64), 0.0,
                         torch.tensor([1.3, 1.3], dtype=torch.float64), 24, 24).sum(dim=0) + 10.0
    photons = torch.poisson(mu, generator=torch.Generator().manual_seed(0))[None]
    guess = {"xy": np.array([[8.0, 12.9], [14.4, 12.0]]), "score": np.array([0.9, 0.9]),
             "photons": np.array([2500.0, 2500.0]), "background": np.array([12.0, 12.0]),
             "psf_sigma": np.array([1.2, 1.2]), "sigma": np.array([[0.3, 0.3], [0.3, 0.3]])}
    refined = refine(photons, [guess], iterations=15)[0]
    error = np.linalg.norm(refined["xy"] - true.numpy(), axis=1)
    # each fitted alone, the neighbour's light pulls it: holding that light (as guessed) fixed helps both
    alone = np.array([refine(photons, [{k: v[i:i + 1] for k, v in guess.items()}], iterations=15)[0]["xy"][0]
                      for i in range(2)])
    assert (error < np.linalg.norm(alone - true.numpy(), axis=1)).all()
    assert (error < 0.15).all() and (np.linalg.norm(guess["xy"] - true.numpy(), axis=1) > 0.3).all()
    assert ((refined["sigma"] > 0.01) & (refined["sigma"] < 0.1)).all()  # the fit's own bound: a few 1/100 px
    assert abs(refined["psf_sigma"] - 1.3).max() < 0.2
    # one emitter alone in its frame: the refinement is the single-spot ML fit
    from pixel_spotter.spots.fit import fit_ml

    single = photons.clone()
    single[0] = torch.poisson(expected_counts(true[:1], torch.tensor([3000.0], dtype=torch.float64), 0.0,
                                              torch.tensor([1.3], dtype=torch.float64), 24, 24)[0] + 10.0,
                              generator=torch.Generator().manual_seed(1))
    one = refine(single, [{k: v[:1] for k, v in guess.items()}], iterations=15)[0]["xy"]
    np.testing.assert_allclose(one, fit_ml(single, 1.3).xy.numpy(), atol=0.01)
    empty = {k: v[:0] for k, v in guess.items()}
    assert refine(photons, [empty], iterations=15)[0]["xy"].shape == (0, 2)
    # refine_beyond: a localization with another within that distance keeps the network's answer exactly; a third,
    # far from both, is fitted (with the other two's light held fixed all the same)
    third = {k: np.concatenate([v, v[:1]]) for k, v in guess.items()}
    third["xy"][2] = [4.0, 4.0]
    some = refine(photons, [third], iterations=15, beyond=7.0)[0]  # the pair: 6.4 px apart
    for name in ("xy", "photons", "background", "psf_sigma", "sigma"):
        np.testing.assert_array_equal(some[name][:2], third[name][:2])
    assert np.linalg.norm(some["xy"][2] - third["xy"][2]) > 0 and (some["sigma"][2] != third["sigma"][2]).all()
    nothing = refine(photons, [guess], iterations=15, beyond=100.0)[0]
    np.testing.assert_array_equal(nothing["xy"], guess["xy"])


def test_a_fit_that_moves_a_localization_beyond_the_networks_own_sigma_is_not_kept():
    from pixel_spotter.models.frame_refine import GATE_SIGMAS, refine
    from pixel_spotter.spots.psf import expected_counts

    true = torch.tensor([[11.6, 12.3]], dtype=torch.float64)
    mu = expected_counts(true, torch.tensor([3000.0]).double(), 10.0, torch.tensor([1.3]).double(), 24, 24)
    photons = torch.poisson(mu, generator=torch.Generator().manual_seed(5))
    guess = {"xy": np.array([[12.0, 12.0]]), "score": np.array([0.9]), "photons": np.array([2500.0]),
             "background": np.array([12.0]), "psf_sigma": np.array([1.2]), "sigma": np.array([[0.3, 0.3]])}
    moved = refine(photons, [guess], iterations=5)[0]  # 0.4 and 0.3 px off: within 2 of its sigmas of 0.3 px
    assert np.linalg.norm(moved["xy"][0] - true[0].numpy()) < 0.1 and moved["refined"].all()
    sure = {**guess, "sigma": np.array([[0.4 / (2 * GATE_SIGMAS)] * 2])}  # the network said 0.1 px: 4 sigmas off
    kept = refine(photons, [sure], iterations=5)[0]
    for name in ("xy", "photons", "background", "psf_sigma", "sigma"):
        np.testing.assert_array_equal(kept[name], sure[name])
    assert not kept["refined"].any()
    # what is not fitted says so: a NaN frame, and two localizations at one position are both fitted, no error
    untouched = refine(photons * math.nan, [guess], iterations=5)[0]
    assert not untouched["refined"].any() and np.array_equal(untouched["xy"], guess["xy"])
    twice = refine(photons, [{k: np.concatenate([v, v]) for k, v in guess.items()}], iterations=5)[0]
    assert twice["refined"].all() and np.isfinite(twice["xy"]).all()


def test_overlapping_localizations_are_fitted_together_and_their_sigma_says_the_overlap_costs(monkeypatch):
    """Two emitters 2.2 px apart (PSF sigma 1.3 px): each fitted with the other's light held fixed where the network
    guessed it, the guess's error stays in both; fitted together, over 40 frames, both land closer (about half the
    RMSE), and each one's sigma (the joint fit's bound) is above what a lone spot of the same light gets."""
    from pixel_spotter.models import frame_refine
    from pixel_spotter.spots.psf import expected_counts

    gen = torch.Generator().manual_seed(3)
    true = torch.tensor([[10.4, 12.1], [12.6, 12.3]], dtype=torch.float64)
    mu = expected_counts(true, torch.tensor([3000.0, 3000.0], dtype=torch.float64), 0.0,
                         torch.tensor([1.3, 1.3], dtype=torch.float64), 24, 24).sum(dim=0) + 10.0
    photons = torch.poisson(mu.expand(40, 24, 24), generator=gen)
    guess = {"xy": np.array([[10.1, 12.4], [12.9, 12.0]]), "score": np.array([0.9, 0.9]),
             "photons": np.array([2500.0, 2500.0]), "background": np.array([12.0, 12.0]),
             "psf_sigma": np.array([1.2, 1.2]), "sigma": np.array([[0.3, 0.3], [0.3, 0.3]])}

    def rmse(found):
        return float(np.sqrt(np.mean([np.sum((f["xy"] - true.numpy()) ** 2, axis=1) for f in found])))

    together = frame_refine.refine(photons, [guess] * 40, iterations=15)
    monkeypatch.setattr(frame_refine, "PARTNERS", 0)  # each alone, the other's light held fixed
    apart = frame_refine.refine(photons, [guess] * 40, iterations=15)
    assert rmse(together) < 0.7 * rmse(apart), (rmse(together), rmse(apart))
    alone = torch.poisson(expected_counts(true[:1], torch.tensor([3000.0]).double(), 10.0,
                                          torch.tensor([1.3]).double(), 24, 24).expand(40, 24, 24), generator=gen)
    lone = frame_refine.refine(alone, [{k: v[:1] for k, v in guess.items()}] * 40, iterations=15)
    ratio = np.mean([f["sigma"][0] for f in together]) / np.mean([f["sigma"][0] for f in lone])
    assert ratio > 1.5, ratio
    # the joint sigma is what the errors are: within 25 % over 80 x and 80 y coordinates
    z = np.concatenate([(f["xy"] - true.numpy()) / f["sigma"] for f in together])
    assert 0.75 < float(np.sqrt(np.mean(z ** 2))) < 1.25, float(np.sqrt(np.mean(z ** 2)))


def test_localize_warns_of_frames_far_brighter_than_any_the_run_was_trained_on(emitters_run, tmp_path, capsys):
    """Counts left unconverted (a camera that is not the run's) are light the network never saw: the table is
    written, and one warning names how many frames, the first of them and the camera options."""
    from pixel_spotter.run_folder import RunFolder
    from pixel_spotter.serving.loading import run_task
    from pixel_spotter.serving.localize import FAR_BRIGHTER, brightest_trained

    folder, _ = emitters_run
    frames = np.full((4, 24, 24), 10, np.float32)
    limit = FAR_BRIGHTER * brightest_trained(run_task(RunFolder(folder), 24, 24))
    frames[2, 5, 5] = frames[3, 9, 9] = 2 * limit
    movie = _movie(tmp_path, frames)
    assert cli.main(["localize", str(folder), str(movie)]) == 0
    err = capsys.readouterr().err
    assert "warning: 2 of 4 frames (the first: frame 3) hold pixels over" in err and "--e-per-adu" in err, err
    assert movie.with_suffix(".csv").is_file()
    frames[2, 5, 5] = frames[3, 9, 9] = limit / 2  # bright, but within what it was trained near: no warning
    assert cli.main(["localize", str(folder), str(_movie(tmp_path, frames, "within.tif"))]) == 0
    assert "times the brightest" not in capsys.readouterr().err


def test_localize_on_a_full_disk_or_an_unwritable_path_is_one_line_and_leaves_nothing(emitters_run, tmp_path,
                                                                                       monkeypatch, capsys):
    import errno

    from pixel_spotter.serving import localize

    folder, _ = emitters_run
    movie = _movie(tmp_path, np.full((3, 24, 24), 10, np.uint16))
    assert cli.main(["localize", str(folder), str(movie), "--out", str(tmp_path / "flat.csv")]) == 0
    assert "no emitter found; is the camera right" in capsys.readouterr().err  # a flat movie: nothing, said
    assert (tmp_path / "flat.csv").read_text().count("\n") == 1  # the header alone
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert cli.main(["localize", str(folder), str(movie), "--out", str(blocker / "x.csv")]) == 2
    assert "cannot write" in capsys.readouterr().err

    class FullDisk:
        def __init__(self, handle):
            self.handle, self.writes = handle, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, text):
            self.writes += 1
            if self.writes > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(text)

        def flush(self):  # the disk fills up by the end of the table, whatever it holds
            raise OSError(errno.ENOSPC, "No space left on device")

        def fileno(self):
            return self.handle.fileno()

    real_open = localize._open_for_writing
    monkeypatch.setattr(localize, "_open_for_writing", lambda tmp, out: FullDisk(real_open(tmp, out)))
    status = cli.main(["localize", str(folder), str(movie)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "No space left on device" in err
    assert not movie.with_suffix(".csv").exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_tampered_frame_run_is_refused_in_one_line_before_anything_runs(emitters_run, tmp_path, capsys):
    import shutil

    folder, _ = emitters_run
    movie = _movie(tmp_path, np.full((2, 24, 24), 10, np.uint16))
    for key, value in (("refine: 0", "refine: 1000000000"), ("_target_: pixel_spotter.models.frame_net.FrameNet",
                                                           "_target_: os.system")):
        copy = shutil.copytree(folder, tmp_path / f"copy{len(list(tmp_path.iterdir()))}")
        config = copy / ".hydra" / "config.yaml"
        text = config.read_text()
        assert key in text
        config.write_text(text.replace(key, value))
        assert cli.main(["localize", str(copy), str(movie)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(config) in err, err


def test_a_simulated_movie_localizes_near_its_truth(emitters_run, tmp_path, capsys):
    from pixel_spotter.evaluation.localizations import Tally

    folder, _ = emitters_run
    movie = tmp_path / "sim" / "movie.tif"
    assert cli.main(["emitters", "simulate", str(folder), "--out", str(movie), "--frames", "6", "--size", "40",
                     "--density", "0.5"]) == 0
    assert "6 frames of 40x40" in capsys.readouterr().out
    assert cli.main(["localize", str(folder), str(movie)]) == 0
    capsys.readouterr()
    truth = np.loadtxt(movie.with_suffix(".truth.csv"), delimiter=",", skiprows=1, ndmin=2)
    found = np.loadtxt(movie.with_suffix(".csv"), delimiter=",", skiprows=1, ndmin=2)
    tally = Tally(tolerance_nm=250, pixel_size_nm=1.0)  # both tables in nm
    for frame in range(1, 7):
        tally.add(found[found[:, 0] == frame, 1:3], truth[truth[:, 0] == frame, 1:3])
    summary = tally.summary()
    assert len(truth) > 10 and summary["recall"] > 0.5  # the tiny model's; the real one: docs/emitters.md
    # the truth is the renderer's emitters (seeds of the simulate stream), in the coordinates localize writes
    from pixel_spotter.data.seeds import sample_seed
    from pixel_spotter.tasks.emitters.simulate import SIMULATE_STREAM
    from pixel_spotter.tasks.emitters.task import EmittersTask

    task = EmittersTask(40, 40, emitters={"density_per_um2": 0.5, "photons": [3000, 5000], "background": [10, 20]})
    frames, recorded = task.renderer.recorded([sample_seed(0, SIMULATE_STREAM, k) for k in range(6)])
    expected = np.concatenate([(f.xy.numpy() + 0.5) * 100 for f in frames])
    np.testing.assert_allclose(truth[:, 1:3], expected, rtol=1e-5)
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(movie), recorded.numpy().astype(np.uint16))
    for bad, message in ((["--density", "-1"], "--density"), (["--frames", "0"], "--frames"),
                         (["--size", "5000"], "--size"),
                         (["--size", "1024", "--density", "4", "--frames", "1"], "more than 10,000; lower")):
        assert cli.main(["emitters", "simulate", str(folder), "--out", str(tmp_path / "x.tif"), *bad]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()
