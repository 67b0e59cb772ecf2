"""The likelihood bank as built (Gaussian kernels, no training): exact wherever the references are exact, the
argmax detector on sharp noisy images and the matched-filter bank on blurred ones, and its config checked."""

import pytest
import torch

from pixel_spotter.data.augment import Augment
from pixel_spotter.data.seeds import ROBUSTNESS_STREAM, sample_seed
from pixel_spotter.errors import ConfigError
from pixel_spotter.models.likelihood_bank import LikelihoodBank, noise_sigma
from pixel_spotter.spots.detect import lower_median
from pixel_spotter.tasks.pixel.references import argmax, matched_filter_bank
from pixel_spotter.tasks.pixel.rendering import Synthesizer

SIZE = 20
EVERY = torch.stack(torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="xy"), -1).reshape(-1, 2)


def _images(augment: Augment, repeats: int = 1):
    xy = EVERY.repeat(repeats, 1)
    return xy, Synthesizer(SIZE, SIZE, augment)(xy, [sample_seed(0, ROBUSTNESS_STREAM, k) for k in range(len(xy))])


def _exact(pred: torch.Tensor, xy: torch.Tensor) -> float:
    return float((pred.round().long() == xy).all(dim=1).float().mean())


def _model_pixels(net, images):
    with torch.no_grad():
        return net(images) * (SIZE - 1)


@pytest.mark.parametrize("augment", [
    Augment(), Augment(blur_sigma=(2.0, 2.0)), Augment(blur_sigma=(0.5, 0.5)), Augment(background=(0.3, 0.3)),
    Augment(intensity=(0.1, 0.1)), Augment(distractors=(5, 5)),
    Augment(blur_sigma=(1.5, 1.5), sensor_clip=True, sensor_bits=8),
], ids=["clean", "blur2", "blur0.5", "background", "dimmed", "decoys", "blur1.5-8bit"])
def test_it_finds_every_noise_free_spot_at_every_position(augment):
    xy, images = _images(augment)
    assert _exact(_model_pixels(LikelihoodBank(), images), xy) == 1.0


def test_a_background_level_moves_the_plain_bank_but_not_this_one():
    """The free-amplitude bank prefers the border under a background (its kernels are cut off there); the
    median subtracted first takes the level away."""
    xy, images = _images(Augment(background=(0.3, 0.3)))
    assert _exact(matched_filter_bank(images), xy) < 0.9
    assert _exact(_model_pixels(LikelihoodBank(), images), xy) == 1.0


def test_on_sharp_noisy_images_it_keeps_up_with_argmax_where_the_plain_bank_falls_behind():
    xy, images = _images(Augment(noise_std=(0.3, 0.3)), repeats=5)
    mine, best, bank = _exact(_model_pixels(LikelihoodBank(), images), xy), _exact(argmax(images), xy), \
        _exact(matched_filter_bank(images), xy)
    assert mine >= best - 0.01, (mine, best)
    assert mine > bank + 0.02, (mine, bank)


@pytest.mark.parametrize("clip", [False, True])
def test_on_blurred_noisy_images_it_keeps_up_with_the_bank(clip):
    xy, images = _images(Augment(blur_sigma=(2.0, 2.0), noise_std=(0.018, 0.018), sensor_clip=clip), repeats=5)
    mine, bank = _exact(_model_pixels(LikelihoodBank(), images), xy), _exact(matched_filter_bank(images), xy)
    assert mine >= bank - 0.015, (mine, bank)
    assert mine > _exact(argmax(images), xy) + 0.3


def test_the_noise_estimate_reads_the_noise_and_not_the_spot():
    gen = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn(8, 1, 50, 50, generator=gen)
    assert torch.allclose(noise_sigma(noise), torch.full((8,), 0.1), rtol=0.05)
    spot = torch.zeros(1, 1, 50, 50)
    spot[0, 0, 20, 20] = 1.0
    assert float(noise_sigma(noise[:1] + spot)) < 0.12  # 4 of 4,900 differences touch it
    assert float(lower_median((noise[:1] + 0.4).flatten(1))) == pytest.approx(0.4, abs=0.01)


def test_trained_parameters_change_its_answers():
    """The priors are parameters: a large prior on the widest kernel makes it call a blur where there is none."""
    xy, images = _images(Augment(noise_std=(0.2, 0.2)), repeats=2)
    net = LikelihoodBank()
    before = _exact(_model_pixels(net, images), xy)
    with torch.no_grad():
        net.log_prior[-1] = 50.0
    assert _exact(_model_pixels(net, images), xy) < before - 0.2


@pytest.mark.parametrize("kwargs, key", [
    ({"sigmas": []}, "sigmas"), ({"sigmas": [0, -1]}, "sigmas"), ({"sigmas": "wide"}, "sigmas"),
    ({"amplitude": [1.0, 0.1]}, "amplitude"), ({"amplitude": [0.1]}, "amplitude"),
    ({"noise_floor": 0}, "noise_floor"), ({"learn_sigmas": "yes"}, "learn_sigmas"),
])
def test_a_bad_setting_is_one_line_naming_it(kwargs, key):
    with pytest.raises(ConfigError, match=f"model.net.{key}") as err:
        LikelihoodBank(**kwargs)
    assert "\n" not in str(err.value)
