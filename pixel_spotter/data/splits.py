"""Honest train/val/test splits over *positions* (x is the column, y the row, origin top-left, pixels 0..W-1 /
0..H-1; networks get targets normalized by x / (W - 1), y / (H - 1)).

Split modes (``split``):
- ``position`` (default): the H*W positions are shuffled with the seed and cut by ``fractions`` into
  train/val/test, so a test position is never seen in training. One image per position.
- ``quadrant``: test holds every position of one held-out quadrant (the CoordConv paper's extrapolation test);
  the other three quadrants are shuffled and cut into train/val.
- ``random``: images at i.i.d. random positions, as the write-ups this project started from sampled them
  (``random_train_size`` training images, as in the "Pixel Spotter" blog post). Test positions then mostly also
  occur in training; ``overlap_fraction`` measures by how much, so its optimism can be reported.
"""

from __future__ import annotations

import torch

SPLITS = ("position", "quadrant", "random")
QUADRANTS = ("top_left", "top_right", "bottom_left", "bottom_right")


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
