"""data=spot: sub-pixel Gaussian spots on the honest splits, each image a function of its seed."""

import pytest
import torch
from conftest import cli_run
from hydra.utils import instantiate

from pixel_spotter.errors import ConfigError
from pixel_spotter.spots.psf import expected_counts
from pixel_spotter.tasks.spot.rendering import SpotParams, SpotSynthesizer
from pixel_spotter.training.validation import validate


def _datamodule(make_cfg, *overrides):
    cfg = make_cfg("data=spot", *overrides)
    validate(cfg)
    return instantiate(cfg.data)


def test_spot_images_depend_on_their_seed_only_and_keep_the_split(make_cfg):
    dm = _datamodule(make_cfg)
    images, target, truth = next(dm.batches_truth("test", batch_size=1024))
    again, _, _ = next(dm.batches_truth("test", batch_size=5))
    assert torch.equal(images[:5], again)  # not on the batch
    assert images.shape == (len(dm.positions["test"]), 1, 16, 16) and images.dtype == torch.float32
    # each spot lies in its split's pixel, the sub-pixel offset in [-0.5, 0.5)
    offset = truth.xy - dm.positions["test"].double()
    assert offset.min() >= -0.5 and offset.max() < 0.5 and offset.abs().max() > 0.3
    assert torch.allclose(target.double() * 15, truth.xy, atol=1e-5)  # continuous, normalized by W - 1
    p = dm.task.params
    assert truth.photons.min() >= p.photons[0] and truth.photons.max() <= p.photons[1]
    assert truth.background.min() >= p.background[0] and truth.sigma_psf.max() <= p.sigma_psf[1]
    assert dm.test_overlap == 0.0
    # more test images than positions: new draws at the same pixels
    many = torch.cat([t.xy for _, _, t in dm.batches_truth("test", repeats=3)])
    assert len(many) == 3 * len(dm.positions["test"]) and not torch.equal(many[: len(truth.xy)], many[-len(truth.xy):])


def test_spot_counts_are_poisson_around_the_pixelated_gaussian():
    synth = SpotSynthesizer(12, 12, SpotParams(photons=2000, background=5, sigma_psf=1.2, input_scale=10))
    xy = torch.full((4000, 2), 5, dtype=torch.long)
    images, truth = synth(xy, range(4000))
    counts = images[:, 0].double() * 10
    mu = expected_counts(truth.xy, 2000, 5, 1.2, 12, 12)
    assert torch.allclose(counts, counts.round(), atol=1e-3)  # whole photons (no read noise; float32 input)
    z = (counts - mu) / mu.sqrt()
    assert abs(float(z.mean())) < 0.01 and float(z.std()) == pytest.approx(1.0, abs=0.01)


def test_spot_config_checks(make_cfg):
    with pytest.raises(ConfigError, match="data.spot.photons"):
        validate(make_cfg("data=spot", "data.spot.photons=[5000,100]"))
    with pytest.raises(ConfigError, match="augment=none"):
        validate(make_cfg("data=spot", "augment=noise"))
    with pytest.raises(ConfigError, match="data.spot.colour"):
        validate(make_cfg("data=spot", "+data.spot.colour=1"))


def test_tiny_spot_run_records_the_bound_and_the_references(make_cfg, tmp_path):
    from pixel_spotter.run_folder import Results
    from pixel_spotter.training.run import run

    record = run(make_cfg("data=spot", "model=cnn", "data.train_samples_per_epoch=256", "data.eval_repeats=1",
                          "data.eval_photons=[300,3000]", "data.spot.photons=2000", "data.spot.background=10",
                          "data.spot.sigma_psf=1", "callbacks.model_checkpoint.save_top_k=0"))
    saved = Results.from_json((tmp_path / "results.json").read_text())
    assert saved.ok, saved.error
    for key in ("rmse_px", "crlb_rmse_px", "rmse_over_crlb", "rmse2d_px", "exact_acc"):
        assert key in saved.test
    test = saved.test
    assert test["rmse2d_px"] == pytest.approx(test["rmse_px"] * 2 ** 0.5, rel=1e-3)  # the trainer's own rmse_px
    assert test["rmse_over_crlb"] == pytest.approx(test["rmse2d_px"] / test["crlb_rmse_px"])
    assert set(saved.references) == {"centroid", "ml_fit"}
    assert saved.references["ml_fit"]["images_per_s"] > 0 and saved.images_per_s > 0
    assert 0.6 < saved.references["ml_fit"]["rmse_over_crlb"] < 1.6  # 39 bright test spots: a rough check only
    assert [row["photons"] for row in saved.per_photons] == [300.0, 3000.0]
    assert all(row["ml_fit"] > 0 and row["centroid"] > 0 and row["model"] > 0 for row in saved.per_photons)
    # one more unknown (sigma_psf) never lowers the bound
    assert saved.test["crlb_sigma_unknown_px"] >= saved.test["crlb_rmse_px"]
    assert all(row["sigma_unknown"] >= 1.0 for row in saved.per_photons)
    assert record.per_photons == saved.per_photons
    # pixel-spotter spots: the table and the plot of RMSE/CRLB per photon count
    from pixel_spotter.cli import main

    assert main(["spots", str(tmp_path), "--plot", str(tmp_path / "spots.png")]) == 0
    assert (tmp_path / "spots.png").stat().st_size > 1000
    assert main(["spots", str(tmp_path / "checkpoints")]) == 2  # no spot run there: one line, status 2


def test_spot_patch_untrained_answers_the_three_point_estimate_in_every_quadrant():
    """The MLP's last layer starts at zero, so an untrained SpotPatch returns the three-point Gaussian offset
    of its mirrored patch, mirrored back: on bright spots in all four quadrants (and on the border pixels,
    where the patch is zero-padded) it lands within a tenth of a pixel, in normalized coordinates."""
    from pixel_spotter.models.spot_patch import SpotPatch

    synth = SpotSynthesizer(16, 16, SpotParams(photons=1e5, background=1, sigma_psf=1, input_scale=100))
    xy = torch.tensor([[3, 4], [12, 3], [2, 13], [11, 12], [7, 8], [8, 7]])
    images, truth = synth(xy, range(len(xy)))
    net = SpotPatch(16, 16, patch=7)
    with torch.no_grad():
        pred = net(images).double() * 15
    assert (pred - truth.xy).abs().max() < 0.1
    border = torch.tensor([[0, 5], [15, 9], [6, 0], [10, 15]])
    images, truth = synth(border, range(10, 14))
    with torch.no_grad():
        pred = net(images).double() * 15
    assert (pred - truth.xy).abs().max() < 1.0  # the detected pixel, give or take: finite, in the right place


def test_spot_fit_untrained_answers_the_sigma_free_fit_even_on_the_border_pixels():
    """model=spot_fit: the MLP starts at zero, so an untrained net answers the maximum-likelihood fit of its
    patch with sigma_psf free. Noise-free bright spots of three PSF widths it is never told, in all four
    quadrants and on the border pixels (where the patch is partly outside the image): close to exact, where
    spot_patch's three-point estimate, which assumes nothing about the width but a Gaussian's log-parabola,
    is not."""
    from pixel_spotter.models.spot_patch import SpotPatch
    from pixel_spotter.spots.psf import expected_counts

    xy = torch.tensor([[3.3, 4.6], [12.2, 2.9], [1.6, 13.4], [11.1, 12.8], [0.2, 5.4], [15.3, 9.1], [6.4, -0.4]],
                      dtype=torch.float64).repeat(3, 1)
    sigma = torch.tensor([0.8, 1.4, 2.0], dtype=torch.float64).repeat_interleave(7)
    counts = expected_counts(xy, 1e5, 5.0, sigma, 16, 16)
    images = (counts / 100).float()[:, None]
    fit = SpotPatch(16, 16, patch=11, refine=20, input_scale=100.0, position=True)
    three_point = SpotPatch(16, 16, patch=11)
    with torch.no_grad():
        assert (fit(images).double() * 15 - xy).abs().max() < 0.01
        assert (three_point(images).double() * 15 - xy).abs().max() > 0.05


def test_spot_fit_config_checks(make_cfg):
    # the net's own keys are checked by its constructor (tests/training/test_validation.py); these need the data too
    with pytest.raises(ConfigError, match="only data=spot"):
        validate(make_cfg("model=spot_fit", "model.huber_bounds=null"))
    with pytest.raises(ConfigError, match="model.huber_bounds must be"):
        validate(make_cfg("data=spot", "model=spot_fit", "model.huber_bounds=-1"))
    with pytest.raises(ConfigError, match="data.loss_weight=crlb"):
        validate(make_cfg("data=spot", "model=spot_fit", "data.loss_weight=null"))
    with pytest.raises(ConfigError, match="data=spot"):  # the huber check, or the fit's: either names data=spot
        validate(make_cfg("model=spot_fit"))


def test_matched_filter_detection_is_fair_to_the_border_and_finds_more_dim_spots():
    """model.net.detect_sigma: the matched filter is divided by its kernel's energy inside the image, so its noise
    has one level everywhere; on pure background the 3x3 box, averaged over fewer pixels at the border, is
    noisier there and wins there far more often than the ring's share of the pixels (the filter comes much
    closer; not all the way: a truncated kernel's noise field is rougher, so has more local maxima). On dim
    wide spots the filter loses fewer to noise peaks than the box."""
    from pixel_spotter.models.spot_patch import SpotPatch

    gen = torch.Generator().manual_seed(0)
    noise = torch.poisson(torch.full((4000, 1, 16, 16), 50.0), generator=gen) / 100
    excess = {}
    for name, net in (("box", SpotPatch(16, 16)), ("matched", SpotPatch(16, 16, detect_sigma=1.5))):
        row, col, _ = net.detect(noise)
        ring = (row == 0) | (row == 15) | (col == 0) | (col == 15)
        excess[name] = float(ring.double().mean()) - 60 / 256  # the outer ring: 60 of 256 pixels (sd 0.007)
    assert excess["matched"] < excess["box"] / 2, excess

    synth = SpotSynthesizer(16, 16, SpotParams(photons=200, background=30, sigma_psf=1.8, input_scale=100))
    xy = torch.randint(0, 16, (2000, 2), generator=gen)
    images, truth = synth(xy, range(2000))
    lost = {}
    for name, net in (("box", SpotPatch(16, 16)), ("matched", SpotPatch(16, 16, detect_sigma=1.5))):
        row, col, _ = net.detect(images)
        lost[name] = float(((torch.stack([col, row], 1).double() - truth.xy).norm(dim=1) > 3).double().mean())
    assert lost["matched"] < 0.8 * lost["box"], lost


def test_spot_fit_on_the_mix_beats_the_centroid_and_nears_the_bound(make_cfg):
    """model=spot_fit, one short epoch on the whole mix (sigma_psf never told): at N = 1000 and 5000 within 1.2x
    of the bound (the sigma-free fit does most of the work; the bound with sigma unknown is ~1.08x) and better
    than the centroid."""
    record = run_spot(make_cfg, "experiment=spots_mix", "trainer.max_epochs=1", "data.train_samples_per_epoch=2048",
                      "data.eval_photons=[1000,5000]", "data.eval_repeats=2")
    assert record.model == "spot_fit" and [row["photons"] for row in record.per_photons] == [1000.0, 5000.0]
    for row in record.per_photons:
        assert row["model"] < 1.2 and row["model"] < row["centroid"] / 2, row


def run_spot(make_cfg, *overrides):
    from pixel_spotter.training.run import run

    return run(make_cfg(*overrides, "threads_per_job=1", "callbacks.model_checkpoint.save_top_k=0"))


# ---- inference on a data=spot run: predict takes photon counts, export states it, ONNX refusals are one line


def test_lower_median_equals_torch_median_exactly():
    from pixel_spotter.spots.detect import lower_median

    gen = torch.Generator().manual_seed(0)
    for n in (255, 256, 1024):  # odd and even counts (even: torch.median's lower middle value)
        values = torch.poisson(torch.full((64, n), 3.0), generator=gen) / 100  # many ties, as in dim images
        assert torch.equal(lower_median(values), values.median(dim=1).values)
        noisy = torch.randn(64, n, generator=gen)
        assert torch.equal(lower_median(noisy), noisy.median(dim=1).values)


SPOT_SIZE = 16
# bright, yet within 10x of the runs' trained photons (100..5000): far beyond, predict warns (doubts.py)
BRIGHT = dict(photons=3e4, background=10.0, sigma_psf=1.0)


def _train_spot_run(folder, model):
    """A finished tiny data=spot run (16x16, 1 epoch, 256 training images) in ``folder``, with its
    .hydra/config.yaml written as train.py's Hydra would."""
    from conftest import TINY, run_in_process

    run_in_process(folder, *TINY, "data=spot", f"model={model}", "data.train_samples_per_epoch=256",
                   "data.eval_repeats=1", "data.eval_photons=null", "data.spot.sigma_psf=1")
    return folder


@pytest.fixture(scope="module")
def spot_run(tmp_path_factory):
    return _train_spot_run(tmp_path_factory.mktemp("spot_run"), "spot_patch")


def _bright_spot(x, y, seed=0):
    """Photon counts (float64, 16x16) of a 3e4-photon spot at (x, y) px with Poisson noise."""
    from pixel_spotter.spots.psf import expected_counts

    mu = expected_counts(torch.tensor([[x, y]], dtype=torch.float64), BRIGHT["photons"], BRIGHT["background"],
                         BRIGHT["sigma_psf"], SPOT_SIZE, SPOT_SIZE)[0]
    return torch.poisson(mu, generator=torch.Generator().manual_seed(seed)).numpy()


_cli = cli_run  # conftest: pixel-spotter ARGS in this process


# away from the border: a barely trained spot_patch answers the three-point estimate, which a border pixel's
# missing neighbour throws off (clamping to the outer edges is checked in test_image_input.py)
TRUE_SPOTS = [(6.3, 8.7), (10.45, 4.2), (2.2, 12.6)]


def test_predict_reads_photon_counts_of_a_spot_run(spot_run, tmp_path):
    import numpy as np

    from pixel_spotter.serving.predict import predict

    files = []
    for i, (x, y) in enumerate(TRUE_SPOTS):
        counts = _bright_spot(x, y, seed=i)
        assert counts.max() > 1000  # far outside [0, 1]: a pixel-task run would warn on it
        np.save(tmp_path / f"f{i}.npy", counts.astype(np.float32))  # float counts
        np.save(tmp_path / f"u{i}.npy", counts.astype(np.uint16))  # integer counts, not scaled by 65535
        files += [tmp_path / f"f{i}.npy", tmp_path / f"u{i}.npy"]
    results = predict(spot_run, files)
    for i, (x, y) in enumerate(TRUE_SPOTS):
        for result in results[2 * i:2 * i + 2]:
            assert abs(result["x"] - x) < 0.2 and abs(result["y"] - y) < 0.2, (result, x, y)
            assert result["warning"] is None  # no brightest-pixel doubts
    assert results[0]["x"] == results[1]["x"] and results[0]["y"] == results[1]["y"]  # float32 = uint16 counts
    # read noise: negative float counts are fine; NaN is one line as for the pixel task
    noisy = _bright_spot(*TRUE_SPOTS[0]) - 12.0
    assert noisy.min() < 0
    np.save(tmp_path / "neg.npy", noisy)
    assert abs(predict(spot_run, [tmp_path / "neg.npy"])[0]["x"] - TRUE_SPOTS[0][0]) < 0.2
    noisy[3, 3] = np.nan
    np.save(tmp_path / "nan.npy", noisy)
    proc = _cli("predict", spot_run, tmp_path / "nan.npy")
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert "NaN or infinite" in proc.stderr
    np.save(tmp_path / "big.npy", np.zeros((20, 16)))
    proc = _cli("predict", spot_run, tmp_path / "big.npy")
    assert proc.returncode == 2 and "is 20x16 but the model was trained on 16x16" in proc.stderr


@pytest.mark.parametrize("value", ["abc", -1, ".nan"])
def test_an_untrusted_input_scale_is_one_line(spot_run, tmp_path, value):
    import shutil

    import numpy as np

    broken = tmp_path / "run"
    shutil.copytree(spot_run, broken)
    config = broken / ".hydra" / "config.yaml"
    text = config.read_text()
    assert "input_scale: 100.0" in text
    config.write_text(text.replace("input_scale: 100.0", f"input_scale: {value}"))
    np.save(tmp_path / "s.npy", _bright_spot(5, 5))
    for args in (("predict", broken, tmp_path / "s.npy"),
                 ("export", broken, "--format", "torchscript", "--out", tmp_path / "m.pt")):
        proc = _cli(*args)
        assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "data.spot.input_scale" in proc.stderr, proc.stderr


@pytest.mark.slow  # subprocess exports
def test_export_contract_of_a_spot_run_names_photon_counts(spot_run, tmp_path):
    import json

    import numpy as np

    out = tmp_path / "spot.pt"
    proc = _cli("export", spot_run, "--format", "torchscript", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "photon counts / 100" in proc.stdout
    contract = json.loads((tmp_path / "spot.pt.json").read_text())
    assert contract["input_scale"] == 100.0 and contract["value_range"] is None
    assert "photon counts / input_scale" in contract["input"]["values"] and "counts / 100" in contract["scaling"]
    assert "spot images" in contract["parity"]["images"] and "SpotSynthesizer" in contract["parity"]["images"]
    assert contract["parity"]["max_abs_px"] <= 1e-4
    # predict on the export reads counts too, and answers as the run does
    np.save(tmp_path / "s.npy", _bright_spot(*TRUE_SPOTS[1]).astype(np.uint16))
    on_run, on_file = (_cli("predict", source, tmp_path / "s.npy") for source in (spot_run, out))
    assert on_run.returncode == on_file.returncode == 0, (on_run.stderr, on_file.stderr)
    assert on_run.stdout.split()[1:] == on_file.stdout.split()[1:]


@pytest.mark.slow  # subprocess exports
def test_onnx_export_of_spot_patch_runs_on_counts(spot_run, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import json

    import numpy as np

    out = tmp_path / "spot.onnx"
    proc = _cli("export", spot_run, "--format", "onnx", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "spot.onnx.json").read_text())["input_scale"] == 100.0
    np.save(tmp_path / "s.npy", _bright_spot(*TRUE_SPOTS[0]).astype(np.float32))
    on_run, on_file = (_cli("predict", source, tmp_path / "s.npy") for source in (spot_run, out))
    assert on_run.returncode == on_file.returncode == 0, (on_run.stderr, on_file.stderr)
    assert on_run.stdout.split()[1:] == on_file.stdout.split()[1:]


@pytest.mark.slow  # subprocess exports
def test_spot_fit_exports_to_torchscript_not_onnx(tmp_path):
    """spot_fit's Levenberg-Marquardt loop (fixed steps) traces into TorchScript with parity on spot images, and
    --bench times both on spot images; ONNX is refused in one line (torch.linalg.solve)."""
    import json

    import numpy as np

    run_dir = _train_spot_run(tmp_path / "fit_run", "spot_fit")
    out = tmp_path / "fit.pt"
    proc = _cli("export", run_dir, "--format", "torchscript", "--out", out, "--bench")
    assert proc.returncode == 0, proc.stderr
    contract = json.loads((tmp_path / "fit.pt.json").read_text())
    assert contract["parity"]["max_abs_px"] <= 1e-4 and "spot images" in contract["parity"]["images"]
    assert "pytorch (eager)" in proc.stdout and "torchscript (torch.jit)" in proc.stdout
    np.save(tmp_path / "s.npy", _bright_spot(*TRUE_SPOTS[2]).astype(np.float32))
    on_run, on_file = (_cli("predict", source, tmp_path / "s.npy") for source in (run_dir, out))
    assert on_run.returncode == on_file.returncode == 0, (on_run.stderr, on_file.stderr)
    assert on_run.stdout.split()[1:] == on_file.stdout.split()[1:]
    answer = [float(v) for v in on_run.stdout.split()[1:3]]
    assert abs(answer[0] - TRUE_SPOTS[2][0]) < 0.1 and abs(answer[1] - TRUE_SPOTS[2][1]) < 0.1  # the fit: exact
    pytest.importorskip("onnxruntime")
    proc = _cli("export", run_dir, "--format", "onnx", "--out", tmp_path / "fit.onnx")
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--format torchscript" in lines[0], proc.stderr
    assert not (tmp_path / "fit.onnx").exists()


def test_onnx_failure_prints_one_line_and_nothing_else(spot_run, tmp_path, monkeypatch, capfd):
    """Whatever network the exporters fail on (here: torch.median put back), only the one line is printed."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from pixel_spotter import cli
    from pixel_spotter.models import spot_patch

    monkeypatch.setattr(spot_patch, "lower_median", lambda values: values.median(dim=1).values)
    code = cli.main(["export", str(spot_run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    out, err = capfd.readouterr()  # the file descriptors too: C++ prints count
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "aten::median" in err and "--format torchscript" in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_matched_filter_is_the_sum_over_the_pixels_that_exist():
    """spots.detect.matched_filter against its definition, pixel by pixel: sum g (k - b) / sqrt(sum g^2) over
    the image's own pixels, g a Gaussian (peak 1) cut at 2.5 sigma, b the image's lower median."""
    import math

    from pixel_spotter.spots.detect import matched_filter

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 1, 7, 9, generator=gen, dtype=torch.float64)
    sigma = 1.3
    radius = math.ceil(2.5 * sigma)
    got = matched_filter(images, sigma)
    for b in range(2):
        background = images[b].flatten().sort().values[(63 - 1) // 2]
        for r in range(7):
            for c in range(9):
                num = den = 0.0
                for i in range(7):
                    for j in range(9):
                        if abs(i - r) <= radius and abs(j - c) <= radius:
                            g = math.exp(-((i - r) ** 2 + (j - c) ** 2) / (2 * sigma ** 2))
                            num += g * float(images[b, 0, i, j] - background)
                            den += g * g
                assert float(got[b, 0, r, c]) == pytest.approx(num / math.sqrt(den), rel=1e-9, abs=1e-12)


def test_shrink_pulls_noise_detections_to_the_centre_and_leaves_bright_spots_alone():
    """model.net.shrink: a detection's pull toward the image centre falls with its signal-to-noise. On pure
    background (every detection a noise peak, SNR ~3-4) answers move toward the centre; on bright spots (SNR in
    the hundreds) they do not move at all."""
    from pixel_spotter.models.spot_patch import SpotPatch

    torch.manual_seed(0)
    args = dict(patch=11, refine=5, input_scale=100.0, detect_sigma=1.5)
    plain, pulled = SpotPatch(32, 32, **args), SpotPatch(32, 32, shrink=True, **args)
    pulled.mlp.load_state_dict(plain.mlp.state_dict())
    noise = torch.poisson(torch.full((300, 1, 32, 32), 30.0), generator=torch.Generator().manual_seed(1)) / 100
    synth = SpotSynthesizer(32, 32, SpotParams(photons=5000, background=5, sigma_psf=1.2, input_scale=100))
    bright, _ = synth(torch.randint(0, 32, (50, 2), generator=torch.Generator().manual_seed(2)), range(50))
    with torch.no_grad():
        from_centre = {name: (net(noise) - 0.5).norm(dim=1).mean() for name, net in (("plain", plain),
                                                                                       ("pulled", pulled))}
        assert from_centre["pulled"] < 0.9 * from_centre["plain"], from_centre
        assert (pulled(bright) - plain(bright)).abs().max() * 31 < 1e-4


def test_spot_doubts_flag_images_without_a_clear_spot():
    """predict on a data=spot run warns when no spot stands clearly above the Poisson noise: always on pure
    background and on a 100-photon spot spread (sigma 2) over b = 100 (matched-filter SNR ~1.4); never on a
    1000-photon spot over b = 10; an all-zero image has signal-to-noise 0."""
    import numpy as np

    from pixel_spotter.spots.psf import simulate
    from pixel_spotter.tasks.spot.doubts import spot_doubts

    gen = torch.Generator().manual_seed(0)
    background = torch.poisson(torch.full((100, 32, 32), 50.0, dtype=torch.float64), generator=gen).numpy()
    xy = torch.tensor([[15.2, 14.7]] * 100, dtype=torch.float64)
    dim = simulate(xy, 100, 100, 2.0, 32, 32, generator=gen).numpy()
    clear = simulate(xy, 1000, 10, 1.0, 32, 32, generator=gen).numpy()
    assert all(spot_doubts(im) for im in background) and np.mean([bool(spot_doubts(im)) for im in dim]) > 0.9
    assert not any(spot_doubts(im) for im in clear)
    assert "signal-to-noise 0.0" in spot_doubts(np.zeros((32, 32)))
