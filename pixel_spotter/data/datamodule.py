"""The one datamodule: honest splits of positions (``splits.py``), keys that make every image's seed
(``samplers.py``, ``seeds.py``), and images rendered per batch on the training device by the run's task
(``pixel_spotter.tasks``: one bright pixel, a sub-pixel spot, ...), so memory is O(batch x H x W) and each
epoch sees fresh noise. ``data.task`` names the task; the data settings other than the generic ones below
(``data.augment``, ``data.spot``, ...) are the task's own and are handed to it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader

from pixel_spotter import tasks
from pixel_spotter.data.samplers import EpochShuffle, InOrder, PositionDraws
from pixel_spotter.data.seeds import STREAMS, sample_seed
from pixel_spotter.data.splits import overlap_fraction, split_positions
from pixel_spotter.tasks.base import task_settings


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
        train_samples_per_epoch: int | None = None,
        max_eval_images: int | None = None,
        task: str | None = None,
        **settings,
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
        task = tasks.name_of({**settings, "task": task})  # None: a config older than data.task
        task_class = tasks.get(task)
        self.task = task_class(self.height, self.width, **task_settings(task_class, settings))
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
        self.task.bind(self.positions)

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
        """(images, normalized targets) of split ``name`` for positions ``xy`` on their device, plus what else
        the task's step takes (per-image loss weights for the spot task with ``loss_weight=crlb``)."""
        return self.task.step_batch(*self.render_truth(name, xy, seeds))

    def render_truth(self, name: str, xy: torch.Tensor, seeds) -> tuple[torch.Tensor, torch.Tensor, object]:
        """``render`` plus each image's truth as the task knows it (None for the pixel task, whose truth is
        ``xy`` itself; the spot task's: sub-pixel position, photons, background, sigma_psf, read noise)."""
        return self.task.render(name, xy, [int(s) for s in seeds])

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
            yield self.task.step_batch(*batch)

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
