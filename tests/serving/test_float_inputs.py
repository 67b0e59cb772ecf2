"""Predict takes what training renders: float images beyond [0, 1] as they are, a warning only far outside the
values the run (or an export's contract) trained on, NaN/inf refused in one line, integer files scaled as before."""

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from pixel_spotter.data.augment import Augment
from pixel_spotter.errors import UserError
from pixel_spotter.serving.image_input import check_answer, read_image
from pixel_spotter.tasks.pixel.doubts import FAR_MARGIN, UNKNOWN_VALUES, TrainedValues, trained_values
from pixel_spotter.tasks.pixel.task import PixelTask

SIZE = (6, 7)
MIX = Augment(noise_std=[0, 0.5], blur_sigma=[0, 2], background=[0, 0.5], intensity=[0.1, 1], p=0.8, combine="one")


def _noisy(std, x=3, y=2, seed=0, size=SIZE):
    """A float image as training renders it with noise: a 1.0 spot on 0, plus Gaussian noise (not clipped)."""
    image = np.random.default_rng(seed).normal(0.0, std, size).astype(np.float32)
    image[y, x] += 1.0
    return image


def _npy(path, array):
    np.save(path, array)
    return path


def test_float_images_outside_0_1_are_read_as_they_are(tmp_path):
    for dtype in (np.float32, np.float64):
        image = _noisy(0.4).astype(dtype)
        image[0, 0] = 1.25  # noise takes a pixel above 1 (and others below 0)
        assert image.min() < 0
        got = read_image(_npy(tmp_path / "n.npy", image), SIZE)
        assert got.dtype == np.float32 and np.array_equal(got, image.astype(np.float32))


def test_integer_files_keep_their_scaling(tmp_path):
    eight = np.zeros(SIZE, dtype=np.uint8)
    eight[2, 3], eight[0, 0] = 255, 51
    Image.fromarray(eight).save(tmp_path / "e.png")
    assert np.array_equal(read_image(tmp_path / "e.png", SIZE), eight / np.float32(255))
    sixteen = np.full(SIZE, 1000, dtype=np.uint16)
    assert read_image(_npy(tmp_path / "s.npy", sixteen), SIZE).max() == pytest.approx(1000 / 65535)


@pytest.mark.parametrize("bad, words", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                                        (-np.inf, "NaN or infinite"), (1e300, "beyond float32's range")])
def test_non_finite_values_are_refused_in_one_line(bad, words, tmp_path):
    image = _noisy(0.1).astype(np.float64)
    image[1, 1] = bad
    path = _npy(tmp_path / "bad.npy", image)
    with pytest.raises(UserError) as err:
        read_image(path, SIZE)
    message = str(err.value)
    assert words in message and str(path) in message and "\n" not in message and ";" in message


def test_trained_values_follow_the_augment_config():
    assert trained_values(None) == trained_values(Augment()) == (0.0, 1.0, True)
    assert trained_values(Augment(noise_std=[0, 0.5])) == pytest.approx((-2.5, 3.5, True))
    assert trained_values(MIX) == pytest.approx((-2.5, 4.0, True))  # 1 + background 0.5 + 5 sigma
    assert trained_values(Augment(intensity=[0.5, 3], background=[-0.2, 0])) == pytest.approx((-0.2, 3.0, True))
    assert trained_values(Augment(noise_std=0.5, background=0.5, sensor_clip=True)) == (0.0, 1.0, True)


def test_training_images_themselves_never_warn():
    """What the run's augment renders (here mix, 2000 images at its strongest noise too) is taken without a word."""
    import torch

    from pixel_spotter.tasks.pixel.rendering import Synthesizer

    task = PixelTask(16, 16, augment=MIX)
    strongest = Augment(noise_std=0.5, background=0.5)
    for augment in (MIX, strongest):
        xy = torch.randint(0, 16, (1000, 2), generator=torch.Generator().manual_seed(1))
        images = Synthesizer(16, 16, augment)(xy, list(range(len(xy)))).numpy()[:, 0]
        assert all(task.image_doubts(image) is None or "values run" not in task.image_doubts(image)
                   for image in images)


def test_a_clean_run_takes_mild_noise_and_warns_far_outside_with_the_numbers():
    task = PixelTask(*SIZE)  # trained on clean images: values 0 and 1
    assert task.image_doubts(_noisy(0.1)) is None  # slightly below 0 and above 1: no more than noise
    warning = task.image_doubts(_noisy(1.0))
    low, high = float(_noisy(1.0).min()), float(_noisy(1.0).max())
    assert low < -FAR_MARGIN or high > 1 + FAR_MARGIN
    assert f"from {low:.3g} to {high:.3g}" in warning and "beyond 0 to 1" in warning
    assert "trained on" in warning and "\n" not in warning
    assert PixelTask(*SIZE, augment=Augment(noise_std=[0, 1])).image_doubts(_noisy(1.0)) is None


def test_a_float_image_in_0_255_warns_with_the_fix():
    image = np.zeros(SIZE, dtype=np.float32)
    image[2, 3] = 255.0
    warning = PixelTask(*SIZE, augment=MIX).image_doubts(image)
    assert "its values run from 0 to 255" in warning and "beyond -2.5 to 4" in warning
    assert "divide it by 255" in warning
    image[2, 3] = 4000.0
    assert "divide it by 65535" in PixelTask(*SIZE).image_doubts(image)


def test_noise_brighter_than_the_spot_is_no_miss():
    """A right answer in a noisy image is not called a miss when a noise pixel outshines the spot."""
    image = _noisy(0.5, seed=3, size=(16, 16), x=5, y=9)
    brightest = np.unravel_index(int(np.argmax(image)), image.shape)
    assert brightest != (9, 5)  # this seed: a noise pixel is the brightest
    assert check_answer((5.0, 9.0), image, PixelTask(16, 16, augment=MIX)) == ((5.0, 9.0), None)
    clean = np.zeros((16, 16), dtype=np.float32)
    clean[9, 5] = 1.0
    assert "is not the brightest pixel (5, 9)" in check_answer((1.0, 1.0), clean, PixelTask(16, 16))[1]


# ---- the task rebuilt from a run folder's config or an export's contract


def test_a_run_config_gives_the_task_its_trained_values():
    data = OmegaConf.create({"augment": {"_target_": "pixel_spotter.data.augment.Augment", "noise_std": [0, 0.5],
                                         "background": [0, 0.2]}})
    task = PixelTask.from_run_config(data, *SIZE, where="run/.hydra/config.yaml")
    assert task.trained == pytest.approx((-2.5, 3.7, True))
    assert PixelTask.from_run_config(OmegaConf.create({}), *SIZE, where="c.yaml").trained == (0.0, 1.0, True)


@pytest.mark.parametrize("augment", [{"noise_std": [0.5, 0.1]}, {"sensor_bits": 7}, "noise"])
def test_a_corrupt_run_augment_is_one_line(augment):
    data = OmegaConf.create({"augment": augment})
    with pytest.raises(UserError) as err:
        PixelTask.from_run_config(data, *SIZE, where="run/.hydra/config.yaml")
    message = str(err.value)
    assert message.startswith("run/.hydra/config.yaml") and "retrain" in message and "\n" not in message


def test_an_export_contract_takes_any_finite_values_and_gets_a_generous_bound():
    contract = {"height": SIZE[0], "width": SIZE[1], **PixelTask(*SIZE, augment=MIX).contract()}
    assert contract["value_range"] == [0.0, 1.0] and "any finite values" in contract["input_values"]
    assert "float arrays as they are" in contract["scaling"] and "/ 255" in contract["scaling"]
    task = PixelTask.from_contract(contract)
    assert task.trained == TrainedValues(*UNKNOWN_VALUES, known=False) == (-6.0, 7.0, False)
    assert task.image_doubts(_noisy(0.8)) is None  # noisy, but within the generous bound
    image = np.zeros(SIZE, dtype=np.float32)
    image[2, 3] = 255.0
    warning = task.image_doubts(image)
    assert "beyond -6 to 7, a generous bound" in warning and "predict on the run folder" in warning


# ---- end to end: a trained run and its export


def _spot_images(folder):
    noisy = _noisy(0.05, x=11, y=4, seed=1, size=(16, 16))  # a little noise: values below 0 and above 1
    far = np.zeros((16, 16), dtype=np.float32)
    far[4, 11] = 255.0  # an 8-bit image saved as floats
    return _npy(folder / "noisy.npy", noisy), _npy(folder / "far.npy", far)


@pytest.mark.slow  # a real training run (a subprocess, shared by the session: conftest)
def test_predict_takes_noisy_floats_and_warns_far_outside(heatmap_run_16, tmp_path):
    from pixel_spotter.serving.predict import predict

    noisy, far = _spot_images(tmp_path)
    results = predict(heatmap_run_16, [noisy, far])
    assert results[0]["warning"] is None or "values run" not in results[0]["warning"]
    assert "its values run from 0 to 255, more than 0.5 beyond 0 to 1" in results[1]["warning"]
    assert all(r["x"] is not None and r["y"] is not None for r in results)


@pytest.mark.slow
def test_predict_on_an_export_takes_noisy_floats_and_warns_beyond_the_generous_bound(heatmap_run_16, tmp_path):
    from pixel_spotter.serving.export import export
    from pixel_spotter.serving.predict import predict

    out, _ = export(heatmap_run_16, "torchscript", tmp_path / "model.pt")
    noisy, far = _spot_images(tmp_path)
    results = predict(out, [noisy, far])
    assert results[0]["warning"] is None or "values run" not in results[0]["warning"]
    assert "its values run from 0 to 255, more than 0.5 beyond -6 to 7, a generous bound" in results[1]["warning"]
