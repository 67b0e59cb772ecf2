"""Samplers of (position index, draw number) keys and the dataset that turns them into (position, image seed):
the loaders hand out positions and seeds only; the task renders the images on the device."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from pixel_spotter.data.seeds import sample_seed


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
