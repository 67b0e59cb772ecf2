"""Synthetic single-pixel images and honest train/val/test splits.

Coordinates (the one convention, used everywhere): x is the column, y the row, origin top-left,
in pixels 0..W-1 / 0..H-1. Targets handed to networks are normalized to [0, 1] by
x / (W - 1), y / (H - 1); metrics convert back to pixels (see ``metrics.py``).

Split modes (``split``):
- ``position`` (default): the H*W positions are shuffled with the seed and cut by ``fractions``
  into train/val/test, so a test position is never seen in training. One image per position.
- ``quadrant``: test holds every position of one held-out quadrant (the CoordConv paper's
  extrapolation test); the other three quadrants are shuffled and cut into train/val.
- ``random``: the seeds' way, images at i.i.d. random positions (``random_train_size`` training
  images as in seed 003). Test positions then mostly also occur in training; ``test_overlap``
  measures by how much, so its optimism can be reported.

Only positions are stored; images are rendered per batch on the training device (``synthesis.py``), with the
corruptions of ``augment`` drawn per image, so memory is O(batch x H x W) and each epoch sees fresh noise.
With ``spot`` (``data=spot``, ``spot_synthesis.py``) the same splits and seeds render sub-pixel Gaussian spots
in photon counts instead: the split gives each image its pixel, its seed the sub-pixel offset, photons,
background, sigma_psf and noise, and the targets are continuous.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from pixel_spotter.data.rendering import STREAMS, Augment, Synthesizer, one_hot_images, sample_seed
from pixel_spotter.errors import ConfigError
from pixel_spotter.spots.crlb import crlb_xy
from pixel_spotter.tasks.spot.rendering import SpotParams, SpotSynthesizer, SpotTruth

SPLITS = ("position", "quadrant", "random")
LOSS_WEIGHTS = (None, "crlb")
QUADRANTS = ("top_left", "top_right", "bottom_left", "bottom_right")


def make_images(xs: torch.Tensor, ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clean images (N, 1, H, W) with a single 1.0 (= 255) pixel at column xs[i], row ys[i]."""
    return one_hot_images(torch.stack([xs, ys], dim=1), height, width)


def normalize_xy(xs: torch.Tensor, ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel positions -> (N, 2) targets in [0, 1]."""
    return torch.stack([xs.float() / (width - 1), ys.float() / (height - 1)], dim=1)


def in_quadrant(xs: torch.Tensor, ys: torch.Tensor, height: int, width: int, quadrant: str) -> torch.Tensor:
    """Boolean mask of positions inside ``quadrant`` (the lower half of an odd side goes to top/left)."""
    right = xs >= (width + 1) // 2
    bottom = ys >= (height + 1) // 2
    vertical, horizontal = quadrant.split("_")
    return (bottom if vertical == "bottom" else ~bottom) & (right if horizontal == "right" else ~right)


def quadrant_size(height: int, width: int, quadrant: str) -> int:
    """Number of positions inside ``quadrant``, with the rule of ``in_quadrant`` (odd sides: top/left get more)."""
    if quadrant not in QUADRANTS:
        raise ValueError(f"unknown quadrant {quadrant!r}; choose one of {', '.join(QUADRANTS)}")
    vertical, horizontal = quadrant.split("_")
    rows = height // 2 if vertical == "bottom" else (height + 1) // 2
    cols = width // 2 if horizontal == "right" else (width + 1) // 2
    return rows * cols


def split_sizes(
    height: int,
    width: int,
    split: str = "position",
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    heldout_quadrant: str = "bottom_right",
    random_train_size: int = 2500,
    max_eval_images: int | None = None,
) -> dict[str, int]:
    """{'train'|'val'|'test': number of images} of ``split_positions``, computed without building anything.

    ``split_positions`` cuts its splits with these very numbers, so a config check on them (empty split)
    sees exactly what training would get. ``max_eval_images`` caps val and test (a seeded random subset of
    their positions, still never seen in training): on a 512x512 image the held-out positions number 39,000."""
    sizes = _cut_sizes(height, width, split, fractions, heldout_quadrant, random_train_size)
    if max_eval_images is not None:
        sizes = {k: v if k == "train" else min(v, max_eval_images) for k, v in sizes.items()}
    return sizes


def _cut_sizes(height: int, width: int, split: str, fractions, heldout_quadrant: str,
               random_train_size: int) -> dict[str, int]:
    n = height * width
    if split == "random":
        return {"train": random_train_size, "val": round(fractions[1] * n), "test": round(fractions[2] * n)}
    if split == "position":
        n_train = min(round(fractions[0] * n), n)
        n_val = min(round(fractions[1] * n), n - n_train)
        return {"train": n_train, "val": n_val, "test": n - n_train - n_val}
    if split == "quadrant":
        n_test = quadrant_size(height, width, heldout_quadrant)
        rest = n - n_test
        n_train = min(round(fractions[0] / (fractions[0] + fractions[1]) * rest), rest)
        return {"train": n_train, "val": rest - n_train, "test": n_test}
    raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def split_positions(
    height: int,
    width: int,
    split: str = "position",
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    heldout_quadrant: str = "bottom_right",
    random_train_size: int = 2500,
    max_eval_images: int | None = None,
) -> dict[str, torch.Tensor]:
    """Return {'train'|'val'|'test': LongTensor (N, 2) of (x, y) pixel positions}, sized by ``split_sizes``."""
    cut = _cut_positions(height, width, split, fractions, seed, heldout_quadrant, random_train_size)
    sizes = split_sizes(height, width, split, fractions, heldout_quadrant, random_train_size, max_eval_images)
    return {name: xy[: sizes[name]] for name, xy in cut.items()}  # positions are shuffled: a prefix is a random subset


def _cut_positions(height: int, width: int, split: str, fractions, seed: int, heldout_quadrant: str,
                   random_train_size: int) -> dict[str, torch.Tensor]:
    sizes = _cut_sizes(height, width, split, fractions, heldout_quadrant, random_train_size)
    gen = torch.Generator().manual_seed(seed)
    if split == "random":
        return {
            name: torch.stack(
                [torch.randint(0, width, (size,), generator=gen), torch.randint(0, height, (size,), generator=gen)],
                dim=1,
            )
            for name, size in sizes.items()
        }

    flat = torch.randperm(height * width, generator=gen)
    all_xy = torch.stack([flat % width, flat // width], dim=1)
    n_train, n_val = sizes["train"], sizes["val"]
    if split == "position":
        return {"train": all_xy[:n_train], "val": all_xy[n_train : n_train + n_val], "test": all_xy[n_train + n_val :]}
    held = in_quadrant(all_xy[:, 0], all_xy[:, 1], height, width, heldout_quadrant)
    rest = all_xy[~held]
    return {"train": rest[:n_train], "val": rest[n_train:], "test": all_xy[held]}


def overlap_fraction(test_xy: torch.Tensor, train_xy: torch.Tensor, width: int) -> float:
    """Fraction of test images whose position also occurs in the training set."""
    train_ids = torch.unique(train_xy[:, 1] * width + train_xy[:, 0])
    test_ids = test_xy[:, 1] * width + test_xy[:, 0]
    return float(torch.isin(test_ids, train_ids).float().mean()) if len(test_ids) else 0.0


class EpochShuffle(Sampler[tuple[int, int]]):
    """A shuffle that is a function of (seed, epoch) alone, so a run resumed from a checkpoint sees the
    batches an uninterrupted run would (a DataLoader's own shuffle draws from the global RNG instead).
    Lightning calls ``set_epoch`` before every epoch.

    Yields (position index, draw number) keys: the draw number counts every image drawn since the start of
    training and seeds that image's corruptions, so no two training images share their noise.
    ``per_epoch`` images per epoch (default: each position once) walk through one permutation after another."""

    def __init__(self, size: int, seed: int, per_epoch: int | None = None):
        self.size, self.seed, self.epoch = size, seed, 0
        self.per_epoch = size if per_epoch is None else int(per_epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _permutation(self, rank: int) -> list[int]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + rank)  # distinct per (seed, rank)
        return torch.randperm(self.size, generator=gen).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        first = self.epoch * self.per_epoch
        rank, perm = None, []
        for draw in range(first, first + self.per_epoch):
            if draw // self.size != rank:
                rank = draw // self.size
                perm = self._permutation(rank)
            yield perm[draw % self.size], draw

    def __len__(self) -> int:
        return self.per_epoch


class InOrder(Sampler[tuple[int, int]]):
    """Val/test keys: every position once, in order, with fixed draws so each evaluation sees the same images."""

    def __init__(self, size: int):
        self.size = size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((i, i) for i in range(self.size))

    def __len__(self) -> int:
        return self.size


class PositionDraws(Dataset):
    """Map-style dataset of (position, image seed) for the keys the samplers above yield; no images."""

    def __init__(self, positions: torch.Tensor, seed: int, stream: int):
        self.positions, self.seed, self.stream = positions, seed, stream

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, draw = key
        return self.positions[index], sample_seed(self.seed, self.stream, draw)


class PixelDataModule(LightningDataModule):
    """Positions split honestly; images rendered per batch on the training device (``on_after_batch_transfer``)."""

    def __init__(
        self,
        height: int = 50,
        width: int = 50,
        split: str = "position",
        fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        heldout_quadrant: str = "bottom_right",
        random_train_size: int = 2500,
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        seed: int = 0,
        augment: Augment | None = None,
        augment_eval: bool = True,
        train_samples_per_epoch: int | None = None,
        max_eval_images: int | None = None,
        spot: SpotParams | None = None,
        eval_photons: list | None = None,
        eval_repeats: int = 10,
        loss_weight: str | None = None,
    ):
        super().__init__()
        self.height, self.width = int(height), int(width)
        self.split = split
        self.fractions = tuple(float(f) for f in fractions)
        self.heldout_quadrant = heldout_quadrant
        self.random_train_size = int(random_train_size)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.train_samples_per_epoch = train_samples_per_epoch
        self.max_eval_images = max_eval_images
        self.synthesizers = {"train": Synthesizer(self.height, self.width, augment)}
        for name in ("val", "test"):  # val/test: the training distribution, or clean images
            self.synthesizers[name] = Synthesizer(self.height, self.width, augment if augment_eval else None)
        self.spot = spot
        # data=spot: the photon counts of results.json's per_photons (RMSE/CRLB per N), each on eval_repeats
        # draws at every test position (spot_metrics.per_photons)
        self.eval_photons = [float(n) for n in eval_photons] if eval_photons else []
        self.eval_repeats = int(eval_repeats)
        # data=spot: loss_weight=crlb weights each image's loss by 1 / (CRLB_xx + CRLB_yy) of its true parameters,
        # so the loss measures error in units of the bound and bright spots count as much as dim ones
        if loss_weight not in LOSS_WEIGHTS or (loss_weight and spot is None):
            raise ConfigError(f"data.loss_weight={loss_weight!r}: choose null, or crlb with data=spot")
        self.loss_weight = loss_weight
        if spot is not None:  # data=spot: every split renders spots (its own seed stream keeps them apart)
            if augment is not None and not augment.identity:
                raise ConfigError("data=spot renders its own noise (data.spot.*); the corruptions of augment= do "
                                  "not apply to it: use augment=none")
            self.synthesizers = {name: SpotSynthesizer(self.height, self.width, spot) for name in STREAMS}
        self.positions: dict[str, torch.Tensor] = {}
        self.datasets: dict[str, PositionDraws] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.positions = split_positions(
            self.height, self.width, self.split, self.fractions, self.seed, self.heldout_quadrant,
            self.random_train_size, self.max_eval_images,
        )
        self.datasets = {name: PositionDraws(xy, self.seed, STREAMS[name]) for name, xy in self.positions.items()}

    @property
    def test_overlap(self) -> float:
        """Fraction of test images whose position occurs in training (0 for honest splits)."""
        self.setup()
        return overlap_fraction(self.positions["test"], self.positions["train"], self.width)

    def _loader(self, name: str) -> DataLoader:
        self.setup()
        size = len(self.datasets[name])
        sampler = EpochShuffle(size, self.seed, self.train_samples_per_epoch) if name == "train" else InOrder(size)
        return DataLoader(
            self.datasets[name],
            batch_size=self.batch_size if name == "train" else self.eval_batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def render(self, name: str, xy: torch.Tensor, seeds) -> tuple[torch.Tensor, ...]:
        """(images, normalized targets) of split ``name`` for positions ``xy`` on their device, plus per-image
        loss weights (B,) with ``loss_weight=crlb``: what the network's step gets."""
        return self._step_batch(*self.render_truth(name, xy, seeds))

    def _step_batch(self, images: torch.Tensor, target: torch.Tensor, truth: SpotTruth | None) -> tuple:
        if self.loss_weight != "crlb":
            return images, target
        var_x, var_y = crlb_xy(truth.xy, truth.photons, truth.background, truth.sigma_psf, self.height, self.width,
                               truth.read_noise)
        return images, target, (1.0 / (var_x + var_y)).to(torch.float32)

    def render_truth(self, name: str, xy: torch.Tensor, seeds) -> tuple[torch.Tensor, torch.Tensor, SpotTruth | None]:
        """``render`` plus, for ``data=spot``, each image's true (xy, photons, background, sigma_psf, read noise)
        (None for the pixel task, whose truth is ``xy`` itself)."""
        seeds = [int(s) for s in seeds]
        if self.spot is None:
            images = self.synthesizers[name](xy, seeds)
            return images, normalize_xy(xy[:, 0], xy[:, 1], self.height, self.width), None
        images, truth = self.synthesizers[name](xy, seeds)
        scale = truth.xy.new_tensor([self.width - 1.0, self.height - 1.0])
        return images, (truth.xy / scale).to(torch.float32), truth

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Lightning hands the batch of (positions, seeds) here once it is on the device: render it there."""
        xy, seeds = batch
        trainer = self.trainer
        name = "train"
        if trainer is not None and not trainer.training:
            name = "test" if trainer.testing else "val"
        return self.render(name, xy, seeds.tolist())

    def batches(self, name: str, device: torch.device | str = "cpu", batch_size: int | None = None,
                limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The rendered (images, targets) of a val/test split, in order, outside any trainer (the same images
        the trainer's loaders give, and like them with loss weights third under ``loss_weight=crlb``);
        ``limit`` stops after that many images."""
        for batch in self.batches_truth(name, device, batch_size, limit):
            yield self._step_batch(*batch)

    def batches_truth(self, name: str, device: torch.device | str = "cpu", batch_size: int | None = None,
                      limit: int | None = None, repeats: int = 1):
        """``batches`` with each image's truth (``render_truth``). ``repeats`` > 1 goes round the split's
        positions that many times, with new draws (draw numbers count on: sub-pixel offsets and noise differ),
        for more test images than positions; repeats=1 gives exactly the trainer's images."""
        self.setup()
        data = self.datasets[name]
        size = len(data)
        count = size * repeats if limit is None else min(limit, size * repeats)
        step = batch_size or self.eval_batch_size
        for start in range(0, count, step):
            keys = range(start, min(start + step, count))
            xy = data.positions[torch.tensor([k % size for k in keys], dtype=torch.long)].to(device)
            yield self.render_truth(name, xy, [sample_seed(self.seed, STREAMS[name], k) for k in keys])

    def images(self, name: str, device: torch.device | str = "cpu", limit: int | None = None) -> torch.Tensor:
        """The first ``limit`` rendered images of a val/test split as one tensor (for timing inference)."""
        return torch.cat([batch[0] for batch in self.batches(name, device, limit=limit)])
