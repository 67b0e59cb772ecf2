"""Sensor images as config: corruption groups (blur then noise), the sensor stage (clip, 8/16 bits), and every
existing augment config rendering exactly the images it rendered before them."""

import re

import pytest
import torch
from conftest import TINY

from pixel_spotter.data.augment import CLEAN, Augment, augment_from_config
from pixel_spotter.data.seeds import sample_seed
from pixel_spotter.errors import ConfigError
from pixel_spotter.tasks.pixel.rendering import Synthesizer
from pixel_spotter.training.compose import compose
from pixel_spotter.training.validation import validate

H, W = 12, 10

# Fingerprints of 32 images rendered under each existing preset by the code before combine groups and the sensor
# stage existed (same positions and seeds as _fingerprint): (sum of image * fixed weights, sum of squares).
BEFORE = {
    "none": (2.85396965, 32.0),
    "noise": (-13.4923009, 268.000233),
    "mix": (7.7864448, 113.91932),
    "seed000": (4.69866133, 37.4625279),
}


def _xy(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, W, (n,), generator=gen), torch.randint(0, H, (n,), generator=gen)], dim=1)


def _seeds(n):
    return [sample_seed(7, 0, i) for i in range(n)]  # run seed 7, training stream: as training draws them


def _render(augment, n=32):
    return Synthesizer(H, W, augment)(_xy(n), _seeds(n))


def _preset(name, tmp_path, *overrides):
    cfg = compose(f"augment={name}", f"data.height={H}", f"data.width={W}", *overrides, output_dir=tmp_path)
    return augment_from_config(cfg.data.augment)


def _fingerprint(images):
    flat = images.double().flatten()
    weights = torch.sin(torch.arange(flat.numel(), dtype=torch.float64) * 0.618)
    return float((flat * weights).sum()), float((flat**2).sum())


@pytest.mark.parametrize("name", BEFORE)
def test_existing_presets_render_exactly_the_images_they_did_before(name, tmp_path):
    augment = _preset(name, tmp_path)
    assert not augment.sensor_clip and augment.sensor_bits is None  # the sensor stage is off by default
    assert _fingerprint(_render(augment)) == pytest.approx(BEFORE[name], rel=1e-6, abs=1e-6)


def test_none_mirrors_augments_defaults(tmp_path):
    assert _preset("none", tmp_path) == CLEAN


@pytest.mark.parametrize("name", BEFORE)
def test_existing_presets_compose_the_same_keys_so_their_runs_still_resume(name, tmp_path):
    """A run resumes only under the very config it began with (run_folder/identity.py): the sensor keys are
    not in the presets that existed before them."""
    cfg = compose(f"augment={name}", output_dir=tmp_path)
    assert set(cfg.data.augment) == {"_target_", "noise_std", "blur_sigma", "blob_sigma", "background", "intensity",
                                     "distractors", "distractor_intensity", "p", "combine"}


def test_combine_one_is_the_list_of_every_corruption_alone():
    ranges = dict(noise_std=[0, 0.5], blur_sigma=[0, 2], background=[0, 0.5], intensity=[0.1, 1], distractors=[0, 5],
                  p=0.8)
    one = _render(Augment(**ranges, combine="one"), n=64)
    groups = [["distractors"], ["blur_sigma"], ["intensity"], ["background"], ["noise_std"]]
    assert torch.equal(_render(Augment(**ranges, combine=groups), n=64), one)


def _kinds(augment, n):
    """Per image, the set of corruptions it got (those drawn away from their neutral value)."""
    draws = Synthesizer(H, W, augment)._draws(_xy(n), _seeds(n))
    return [frozenset(k for k in augment.active if draws[k][i] != getattr(CLEAN, k)[0]) for i in range(n)]


def test_groups_give_each_image_one_whole_group(tmp_path):
    augment = _preset("sensor", tmp_path)
    kinds = _kinds(augment, 600)
    groups = {frozenset(g) for g in augment.groups}
    assert {frozenset({"blur_sigma", "noise_std"}), frozenset({"noise_std"})} <= groups
    assert all(k in groups or not k for k in kinds)  # a whole group or nothing: never two singles stacked
    together = sum(k == {"blur_sigma", "noise_std"} for k in kinds) / len(kinds)
    assert 0.08 < together < 0.20  # 0.8 / 6 of the images
    assert 0.12 < sum(not k for k in kinds) / len(kinds) < 0.28  # clean: 1 - p


def test_blur_comes_before_noise_so_the_noise_stays_white():
    both = _render(Augment(blur_sigma=1.5, noise_std=0.2, combine=[["noise_std", "blur_sigma"]]), n=64)
    blurred = _render(Augment(blur_sigma=1.5), n=64)
    residual = both - blurred  # the noise alone, had it been added after the blur
    assert float(residual.std()) == pytest.approx(0.2, rel=0.05)  # blurred noise would be ~7x weaker
    neighbours = torch.corrcoef(torch.stack([residual[..., :-1].flatten(), residual[..., 1:].flatten()]))[0, 1]
    assert abs(float(neighbours)) < 0.05  # blurred noise would be strongly correlated


def test_clip_comes_after_background_and_noise():
    images = _render(Augment(background=0.5, noise_std=0.4, sensor_clip=True))
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0  # clipped before the background: min 0.5
    unclipped = _render(Augment(background=0.5, noise_std=0.4))
    assert torch.equal(images, unclipped.clamp(0, 1))  # same draws: only the sensor stage differs


@pytest.mark.parametrize("bits", [8, 16])
def test_quantization_gives_the_levels_of_an_image_file(bits):
    top = 2**bits - 1
    augment = Augment(blur_sigma=[0, 2], noise_std=[0, 0.3], background=[0, 0.3], sensor_clip=True, sensor_bits=bits)
    images = _render(augment)
    levels = images.double() * top
    assert torch.allclose(levels, levels.round(), atol=1e-3) and 0 <= images.min() and images.max() <= 1
    unquantized = _render(Augment(blur_sigma=[0, 2], noise_std=[0, 0.3], background=[0, 0.3], sensor_clip=True))
    assert float((images - unquantized).abs().max()) <= 0.5 / top + 1e-6  # rounded to the nearest level
    assert len(images.unique()) > (30 if bits == 8 else 1000)  # levels, not a few values


def test_the_sensor_stage_leaves_clean_images_clean():
    augment = Augment(sensor_clip=True, sensor_bits=8)
    assert augment.identity and torch.equal(_render(augment), _render(CLEAN))


def test_sensor_8bit_preset_renders_8_bit_images(tmp_path):
    augment = _preset("sensor_8bit", tmp_path)
    assert augment.sensor_clip and augment.sensor_bits == 8 and augment.groups == _preset("sensor", tmp_path).groups
    levels = _render(augment, n=64).double() * 255
    assert torch.allclose(levels, levels.round(), atol=1e-3)


@pytest.mark.parametrize("overrides, words", [
    ("++data.augment.sensor_bits=7", "data.augment.sensor_bits must be null, 8 or 16"),
    ("++data.augment.sensor_bits=8.0", "data.augment.sensor_bits must be null, 8 or 16"),
    ("++data.augment.sensor_clip=yes", "data.augment.sensor_clip must be true or false, got 'yes'"),
    ("++data.augment.sensor_clip=1", "data.augment.sensor_clip must be true or false"),
    ("augment=sensor_8bit data.augment.sensor_clip=false",
     "data.augment.sensor_bits=8 needs data.augment.sensor_clip=true"),
    ("augment=mix data.augment.combine=[[blur,noise_std]]", "data.augment.combine names 'blur'"),
    ("augment=noise data.augment.combine=[[blur_sigma,noise_std]]",
     "data.augment.combine names blur_sigma, but data.augment.blur_sigma is off"),
    ("augment=mix data.augment.combine=[]", "data.augment.combine must be all, one or a list of groups"),
    ("augment=mix data.augment.combine=[noise_std]", "data.augment.combine must be all, one or a list of groups"),
    ("augment=mix data.augment.combine=both", "data.augment.combine='both' is unknown"),
])
def test_bad_sensor_and_group_settings_are_one_line_naming_the_key_and_fix(overrides, words, tmp_path):
    cfg = compose(*TINY, *overrides.split(), output_dir=tmp_path, hydra_config=True)
    with pytest.raises(ConfigError, match=re.escape(words)) as err:
        validate(cfg)
    message = str(err.value)
    assert "\n" not in message and re.search(r"; (e\.g\.|use|choose|give|set)", message)


def test_sensor_presets_are_valid_training_configs(tmp_path):
    for name in ("sensor", "sensor_8bit"):
        validate(compose(*TINY, f"augment={name}", output_dir=tmp_path, hydra_config=True))
