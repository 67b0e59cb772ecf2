"""`pixel-spotter bench-overhead`: what does the Lightning + Hydra pipeline cost over a bare PyTorch loop?

Both train the same baseline CNN (same init, same data, same batch size) for EPOCHS epochs with a
validation pass per epoch, and both render each batch's images from its positions with the datamodule's
``render``. The pipeline is the real one (composed config, callbacks, TensorBoard logger, checkpointing,
torchmetrics); the bare loop computes only the loss. Repeats alternate the two
and the best time of each is kept, so background load hits both alike. Prints both times and the ratio.

    pixel-spotter bench-overhead [EPOCHS] [REPEATS] [--size 50]   (make bench-overhead ARGS="EPOCHS REPEATS")

Measured: experiments/bench/README.md.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings

import lightning as L
import torch
import torch.nn.functional as F

from pixel_spotter.data.datamodule import PixelDataModule
from pixel_spotter.errors import UserError
from pixel_spotter.training.compose import compose
from pixel_spotter.training.run import build, quiet_libraries


def _overrides(epochs: int, size: int) -> list[str]:
    return [f"trainer.max_epochs={epochs}", f"data.height={size}", f"data.width={size}", "trainer.accelerator=cpu",
            "callbacks.progress_bar.refresh_rate=0"]


def pipeline_seconds(epochs: int, size: int = 50) -> float:
    with tempfile.TemporaryDirectory() as out:
        cfg = compose(*_overrides(epochs, size), output_dir=out)
        L.seed_everything(0, workers=True)
        datamodule, model, trainer = build(cfg)
        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule)
        return time.perf_counter() - start


def bare_seconds(epochs: int, size: int = 50) -> tuple[float, PixelDataModule]:
    """The bare loop's time, and its datamodule (for the split sizes). It takes batches of positions from the
    same loaders and renders their images with the datamodule's own ``render``, as the pipeline's
    ``on_after_batch_transfer`` does, so both pay for the same rendering."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose(*_overrides(epochs, size), output_dir=out)
        L.seed_everything(0, workers=True)
        datamodule, model, _ = build(cfg)  # same data and network, no trainer
    net = model.net
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.model.lr)
    train, val = datamodule.train_dataloader(), datamodule.val_dataloader()
    start = time.perf_counter()
    for epoch in range(epochs):
        train.sampler.set_epoch(epoch)  # what Lightning does: each epoch its own shuffle and fresh draws
        net.train()
        for xy, seeds in train:
            images, target = datamodule.render("train", xy, seeds.tolist())[:2]
            optimizer.zero_grad()
            F.mse_loss(net(images), target).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            for xy, seeds in val:
                images, target = datamodule.render("val", xy, seeds.tolist())[:2]
                F.mse_loss(net(images), target).item()
    return time.perf_counter() - start, datamodule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("epochs", nargs="?", default=5, type=int, metavar="EPOCHS",
                        help="epochs each training runs (default: 5)")
    parser.add_argument("repeats", nargs="?", default=3, type=int, metavar="REPEATS",
                        help="timings of each, alternating; the best counts (default: 3)")
    parser.add_argument("--size", type=int, default=50, metavar="PX",
                        help="image side in pixels (default: 50; e.g. 16 for a quick check)")


def run_command(args: argparse.Namespace) -> int:
    epochs, repeats = args.epochs, args.repeats
    for name, value in (("EPOCHS", epochs), ("REPEATS", repeats)):
        if value < 1:
            raise UserError(f"{name} must be a positive whole number, got {value}; e.g. pixel-spotter "
                            "bench-overhead 5 3")
    if args.size < 8:
        raise UserError(f"--size must be at least 8 pixels, got {args.size}; e.g. --size 16")
    quiet_libraries()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    pipe, bare = [], []
    for _ in range(repeats):
        pipe.append(pipeline_seconds(epochs, args.size))
        seconds, datamodule = bare_seconds(epochs, args.size)
        bare.append(seconds)
    sizes = {name: len(xy) for name, xy in datamodule.positions.items()}
    print(f"baseline CNN, {args.size}x{args.size}, {epochs} epochs ({sizes['train']} train / {sizes['val']} val "
          f"images, batch {datamodule.batch_size}), {torch.get_num_threads()} torch threads, best of {repeats}")
    print(f"  bare PyTorch loop : {min(bare):7.2f} s   (all: {', '.join(f'{t:.2f}' for t in bare)})")
    print(f"  Lightning pipeline: {min(pipe):7.2f} s   (all: {', '.join(f'{t:.2f}' for t in pipe)})")
    print(f"  ratio pipeline / bare: {min(pipe) / min(bare):.3f}  (target <= 1.2)")
    return 0
