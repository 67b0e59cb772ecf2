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
"""

from __future__ import annotations

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Sampler, TensorDataset

SPLITS = ("position", "quadrant", "random")
QUADRANTS = ("top_left", "top_right", "bottom_left", "bottom_right")


def make_images(xs: torch.Tensor, ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Images (N, 1, H, W) in [0, 1] with a single 1.0 (= 255) pixel at column xs[i], row ys[i]."""
    images = torch.zeros(len(xs), 1, height, width)
    images[torch.arange(len(xs)), 0, ys, xs] = 1.0
    return images


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
) -> dict[str, int]:
    """{'train'|'val'|'test': number of images} of ``split_positions``, computed without building anything.

    ``split_positions`` cuts its splits with these very numbers, so a config check on them (empty split,
    memory) sees exactly what training would get."""
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
) -> dict[str, torch.Tensor]:
    """Return {'train'|'val'|'test': LongTensor (N, 2) of (x, y) pixel positions}, sized by ``split_sizes``."""
    sizes = split_sizes(height, width, split, fractions, heldout_quadrant, random_train_size)
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


class EpochShuffle(Sampler[int]):
    """A shuffle that is a function of (seed, epoch) alone, so a run resumed from a checkpoint sees the
    batches an uninterrupted run would (a DataLoader's own shuffle draws from the global RNG instead).
    Lightning calls ``set_epoch`` before every epoch."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)  # distinct per (seed, epoch)
        return iter(torch.randperm(self.size, generator=gen).tolist())

    def __len__(self) -> int:
        return self.size


class PixelDataModule(LightningDataModule):
    """In-memory tensors of single-pixel images; generation is vectorized (no per-image loop)."""

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
        max_gib: float = 4.0,
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
        self.max_gib = float(max_gib)  # the memory bound validate() enforces before this is built
        self.positions: dict[str, torch.Tensor] = {}
        self.datasets: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.positions = split_positions(
            self.height, self.width, self.split, self.fractions, self.seed, self.heldout_quadrant,
            self.random_train_size,
        )
        for name, xy in self.positions.items():
            xs, ys = xy[:, 0], xy[:, 1]
            images = make_images(xs, ys, self.height, self.width)
            self.datasets[name] = TensorDataset(images, normalize_xy(xs, ys, self.height, self.width))

    @property
    def test_overlap(self) -> float:
        """Fraction of test images whose position occurs in training (0 for honest splits)."""
        self.setup()
        return overlap_fraction(self.positions["test"], self.positions["train"], self.width)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(
            self.datasets[name],
            batch_size=self.batch_size if name == "train" else self.eval_batch_size,
            sampler=EpochShuffle(len(self.datasets[name]), self.seed) if shuffle else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
