"""On-the-fly rendering and the corruptions: statistics match the config, images depend only on their seed."""

import numpy as np
import pytest
import torch

from pixel_spotter.data.augment import Augment
from pixel_spotter.data.datamodule import PixelDataModule
from pixel_spotter.data.samplers import EpochShuffle
from pixel_spotter.data.seeds import sample_seed
from pixel_spotter.errors import ConfigError
from pixel_spotter.tasks.pixel.rendering import Synthesizer

H, W = 24, 32


def _xy(n, seed=0, margin=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(margin, W - margin, (n,), generator=gen),
                        torch.randint(margin, H - margin, (n,), generator=gen)], dim=1)


def _render(augment: Augment, xy, seeds=None):
    seeds = list(range(len(xy))) if seeds is None else seeds
    return Synthesizer(H, W, augment)(xy, seeds)


def test_clean_rendering_equals_the_materialized_images():
    xy = _xy(50)
    expected = np.zeros((50, 1, H, W), dtype=np.float32)
    for i, (x, y) in enumerate(xy.tolist()):
        expected[i, 0, y, x] = 1.0  # the old materialized data: one image per position, 1.0 at (row y, column x)
    assert np.array_equal(_render(Augment(), xy).numpy(), expected)
    # a config whose ranges are all zero, or p=0, is exactly the clean task too
    assert np.array_equal(_render(Augment(noise_std=[0, 0], blur_sigma=0.0), xy).numpy(), expected)
    assert np.array_equal(_render(Augment(noise_std=[0.3, 0.3], p=0.0), xy).numpy(), expected)


def test_noise_has_the_configured_standard_deviation():
    images = _render(Augment(noise_std=0.2), _xy(64))
    background = images.flatten(1)[:, 1:].clone()  # nearly all background; the spot adds < 0.1 % of pixels
    assert abs(float(images.std()) - 0.2) < 0.2 * 0.03
    assert abs(float(background.mean())) < 0.01
    # a range: each image's own sigma lies in it, and the sigmas spread over it
    per_image = _render(Augment(noise_std=[0.1, 0.4]), _xy(200)).flatten(1).std(dim=1)
    assert per_image.min() > 0.1 * 0.9 and per_image.max() < 0.4 * 1.1
    assert per_image.min() < 0.15 and per_image.max() > 0.35


@pytest.mark.parametrize("sigma", [0.7, 1.5])
def test_blur_preserves_energy_and_has_the_configured_width(sigma):
    xy = _xy(20, margin=8)  # far enough from the border to keep the whole kernel
    images = _render(Augment(blur_sigma=sigma), xy)[:, 0].double()
    assert torch.allclose(images.sum(dim=(1, 2)), torch.ones(20, dtype=torch.float64), atol=1e-5)
    cols = torch.arange(W, dtype=torch.float64) - xy[:, 0:1]  # (N, W) offsets from the spot
    var_x = (images.sum(dim=1) * cols**2).sum(dim=1)
    assert torch.allclose(var_x, torch.full_like(var_x, sigma**2), rtol=0.01)
    assert torch.equal(images.flatten(1).argmax(1), xy[:, 1] * W + xy[:, 0])  # the peak stays on the spot


def test_blob_keeps_the_peak_at_one_and_spreads_the_spot():
    xy = _xy(20, margin=6)
    images = _render(Augment(blob_sigma=1.0), xy)[:, 0]
    peak = images[torch.arange(20), xy[:, 1], xy[:, 0]]
    assert torch.allclose(peak, torch.ones(20), atol=1e-6)
    assert (images.flatten(1).max(1).values <= 1 + 1e-6).all()
    neighbour = images[torch.arange(20), xy[:, 1], xy[:, 0] + 1]
    assert torch.allclose(neighbour, torch.full((20,), float(np.exp(-0.5))), atol=1e-5)  # Gaussian at 1 sigma


def test_background_and_intensity():
    xy = _xy(30)
    images = _render(Augment(background=0.3, intensity=0.25), xy)
    assert torch.allclose(images.flatten(1).median(dim=1).values, torch.full((30,), 0.3))
    assert torch.allclose(images[torch.arange(30), 0, xy[:, 1], xy[:, 0]], torch.full((30,), 0.55))


def test_distractors_are_dimmer_and_never_on_the_spot():
    xy = _xy(100)
    images = _render(Augment(distractors=[0, 5], distractor_intensity=0.5), xy)
    flat = images.flatten(1)
    decoys = (flat == 0.5).sum(dim=1)
    assert decoys.min() == 0 and decoys.max() == 5 and len(set(decoys.tolist())) == 6  # 0..5 all drawn
    assert (flat == 1.0).sum(dim=1).eq(1).all()
    assert torch.equal(flat.argmax(1), xy[:, 1] * W + xy[:, 0])


def test_an_image_depends_only_on_its_seed():
    aug = Augment(noise_std=[0, 0.3], blur_sigma=[0, 1.5], background=[0, 0.2], distractors=[0, 3], p=0.7)
    xy, seeds = _xy(16), [sample_seed(0, 0, d) for d in range(16)]
    batch = _render(aug, xy, seeds)
    assert torch.equal(batch, _render(aug, xy, seeds))  # seeded: identical batches
    alone = torch.cat([_render(aug, xy[i:i + 1], seeds[i:i + 1]) for i in (3, 7)])
    assert torch.equal(alone, batch[[3, 7]])  # not on its batch mates or the batch size
    other = _render(aug, xy, [sample_seed(1, 0, d) for d in range(16)])
    assert not torch.equal(other, batch)


def test_each_training_epoch_draws_fresh_noise_and_evaluation_stays_fixed():
    dm = PixelDataModule(height=H, width=W, augment=Augment(noise_std=0.1), batch_size=1000)
    dm.setup()
    loader = dm.train_dataloader()
    epochs = []
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        batch = next(iter(loader))
        images, _ = dm.on_after_batch_transfer(batch, 0)
        order = torch.argsort(batch[0][:, 1] * W + batch[0][:, 0])
        epochs.append(images[order])
    assert not torch.equal(epochs[0], epochs[1])
    val_a = torch.cat([b[0] for b in dm.batches("val", batch_size=7)])
    val_b = torch.cat([b[0] for b in dm.batches("val")])
    assert torch.equal(val_a, val_b)  # the eval batch size does not change the images


def test_samples_per_epoch_walks_through_permutations():
    sampler = EpochShuffle(10, seed=0, per_epoch=4)
    keys = []
    for epoch in range(5):  # 20 draws = two full permutations of the 10 positions
        sampler.set_epoch(epoch)
        keys += list(sampler)
    assert [d for _, d in keys] == list(range(20))
    assert sorted(i for i, _ in keys[:10]) == list(range(10)) == sorted(i for i, _ in keys[10:])


def test_max_eval_images_caps_val_and_test_only():
    dm = PixelDataModule(height=H, width=W, max_eval_images=20)
    dm.setup()
    assert len(dm.positions["val"]) == len(dm.positions["test"]) == 20
    assert len(dm.positions["train"]) == round(0.7 * H * W)
    assert dm.test_overlap == 0.0


@pytest.mark.parametrize("kwargs, message", [
    ({"noise_std": [0.3, 0.1]}, "data.augment.noise_std must be a range"),
    ({"distractors": [0, 1.5]}, "of integers"),
    ({"blur_sigma": "wide"}, "data.augment.blur_sigma"),
    ({"p": -1}, "data.augment.p"),
])
def test_bad_ranges_are_one_line_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Augment(**kwargs)


def test_combine_one_gives_each_image_at_most_one_corruption():
    aug = Augment(noise_std=0.2, background=0.3, intensity=0.5, p=0.9, combine="one")
    images = _render(aug, _xy(300))
    flat = images.flatten(1)
    noisy = flat.std(dim=1) > 0.1
    offset = flat.median(dim=1).values == 0.3
    dimmed = flat.max(dim=1).values == 0.5
    kinds = noisy.int() + offset.int() + dimmed.int()
    assert kinds.max() == 1  # never two corruptions on one image
    assert noisy.any() and offset.any() and dimmed.any()
    clean = kinds == 0
    assert 0.03 < float(clean.float().mean()) < 0.2  # about 1 - p of the images stay clean
    with pytest.raises(ConfigError, match="data.augment.combine"):
        Augment(combine="some")


def test_more_decoys_than_free_pixels_fill_the_image_around_the_spot():
    images = Synthesizer(3, 3, Augment(distractors=[20, 20]))(torch.tensor([[1, 1]]), [0])
    flat = images.flatten(1)[0]
    assert flat[4] == 1.0 and (flat[[0, 1, 2, 3, 5, 6, 7, 8]] == 0.5).all()
