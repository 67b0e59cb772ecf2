import pytest
import torch

from pixel_spotter.data.datamodule import PixelDataModule
from pixel_spotter.data.splits import in_quadrant, split_positions, split_sizes


def _datamodule(**kwargs) -> PixelDataModule:
    dm = PixelDataModule(**{"height": 20, "width": 30, **kwargs})
    dm.setup()
    return dm


def _rendered(dm: PixelDataModule, name: str):
    """All images and targets of split ``name`` as training would see them (train: through its loader)."""
    if name == "train":
        batches = [dm.on_after_batch_transfer(batch, 0) for batch in dm.train_dataloader()]
    else:
        batches = list(dm.batches(name))
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def _ids(xy, width):
    return set((xy[:, 1] * width + xy[:, 0]).tolist())


@pytest.mark.parametrize("split", ["position", "quadrant", "random"])
def test_each_image_has_one_bright_pixel_at_its_label(split):
    dm = _datamodule(split=split)
    for name in dm.datasets:
        images, targets = _rendered(dm, name)
        assert len(images) == len(dm.positions[name])
        assert images.shape[1:] == (1, 20, 30)
        assert ((images == 0) | (images == 1)).all()
        assert (images.flatten(1).sum(1) == 1).all(), name
        flat = images.flatten(1).argmax(1)
        rows, cols = flat // 30, flat % 30
        # the label, scaled back to pixels, is exactly the bright pixel's (column, row)
        assert torch.equal(torch.round(targets[:, 0] * 29).long(), cols)
        assert torch.equal(torch.round(targets[:, 1] * 19).long(), rows)
        assert targets.min() >= 0 and targets.max() <= 1


def test_position_split_is_disjoint_and_covers_every_position():
    dm = _datamodule(split="position", fractions=(0.7, 0.15, 0.15))
    sets = {k: _ids(v, 30) for k, v in dm.positions.items()}
    assert sets["train"].isdisjoint(sets["val"]) and sets["train"].isdisjoint(sets["test"])
    assert sets["val"].isdisjoint(sets["test"])
    assert set().union(*sets.values()) == set(range(20 * 30))
    assert len(sets["train"]) == 420 and len(sets["val"]) == 90 and len(sets["test"]) == 90
    assert dm.test_overlap == 0.0


@pytest.mark.parametrize("quadrant", ["top_left", "top_right", "bottom_left", "bottom_right"])
def test_quadrant_split_tests_only_the_held_out_quadrant(quadrant):
    dm = _datamodule(split="quadrant", heldout_quadrant=quadrant)
    test, train, val = dm.positions["test"], dm.positions["train"], dm.positions["val"]
    assert in_quadrant(test[:, 0], test[:, 1], 20, 30, quadrant).all()
    for seen in (train, val):
        assert not in_quadrant(seen[:, 0], seen[:, 1], 20, 30, quadrant).any()
    assert len(test) == 10 * 15  # a quarter of the 20x30 positions
    assert _ids(train, 30) | _ids(val, 30) | _ids(test, 30) == set(range(600))
    assert dm.test_overlap == 0.0


def test_random_split_reproduces_seed_style_overlap():
    dm = _datamodule(split="random", height=50, width=50, random_train_size=2500)
    assert len(dm.positions["train"]) == 2500
    # With 2500 i.i.d. draws over 2500 positions, about 1 - 1/e = 63% of test positions were trained on.
    assert 0.55 < dm.test_overlap < 0.71


def test_same_seed_same_data_other_seed_other_split():
    a, b, c = (split_positions(20, 30, seed=s) for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["test"], c["test"])


def test_loaders_batch_and_shuffle_only_training():
    dm = _datamodule(batch_size=32)
    xy, seeds = next(iter(dm.train_dataloader()))  # loaders carry positions and image seeds, not images
    images, targets = dm.on_after_batch_transfer((xy, seeds), 0)
    assert images.shape == (32, 1, 20, 30) and targets.shape == (32, 2) and seeds.shape == (32,)
    first = next(iter(dm.val_dataloader()))[0]
    assert torch.equal(first, next(iter(dm.val_dataloader()))[0])
    assert torch.equal(first, dm.positions["val"][: len(first)])  # val in order, unshuffled


@pytest.mark.parametrize("height, width, split, fractions, quadrant, train_size", [
    (20, 30, "position", (0.7, 0.15, 0.15), "bottom_right", 2500),
    (7, 5, "position", (0.5, 0.25, 0.25), "bottom_right", 2500),
    (2, 2, "position", (0.375, 0.375, 0.25), "bottom_right", 2500),
    (3, 3, "position", (0.98, 0.01, 0.01), "bottom_right", 2500),
    (20, 30, "quadrant", (0.7, 0.15, 0.15), "bottom_right", 2500),
    (7, 5, "quadrant", (0.7, 0.15, 0.15), "top_left", 2500),
    (9, 4, "quadrant", (0.6, 0.2, 0.2), "top_right", 2500),
    (3, 7, "quadrant", (0.98, 0.01, 0.01), "bottom_left", 2500),
    (20, 30, "random", (0.7, 0.15, 0.15), "bottom_right", 123),
    (3, 3, "random", (0.9, 0.05, 0.05), "bottom_right", 1),
])
def test_split_sizes_are_the_lengths_split_positions_returns(height, width, split, fractions, quadrant, train_size):
    sizes = split_sizes(height, width, split, fractions, quadrant, train_size)
    positions = split_positions(height, width, split, fractions, seed=1, heldout_quadrant=quadrant,
                                random_train_size=train_size)
    assert sizes == {name: len(xy) for name, xy in positions.items()}
    if split != "random":
        assert sum(sizes.values()) == height * width
