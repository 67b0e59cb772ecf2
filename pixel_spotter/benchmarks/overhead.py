"""`pixel-spotter bench-overhead`: what does the Lightning + Hydra pipeline cost over a bare PyTorch loop?

Both train the same baseline CNN (same init, same data, same batch size) for EPOCHS epochs with a
validation pass per epoch. The pipeline is the real one (composed config, callbacks, TensorBoard
logger, checkpointing, torchmetrics); the bare loop computes only the loss. Repeats alternate the two
and the best time of each is kept, so background load hits both alike. Prints both times and the ratio.

    pixel-spotter bench-overhead [EPOCHS] [REPEATS]        (make bench-overhead ARGS="EPOCHS REPEATS")

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

from pixel_spotter.errors import UserError
from pixel_spotter.training.compose import compose
from pixel_spotter.training.run import build, quiet_libraries


def pipeline_seconds(epochs: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        cfg = compose(f"trainer.max_epochs={epochs}", "trainer.accelerator=cpu",
                      "callbacks.progress_bar.refresh_rate=0", output_dir=out)
        L.seed_everything(0, workers=True)
        datamodule, model, trainer = build(cfg)
        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule)
        return time.perf_counter() - start


def bare_seconds(epochs: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        cfg = compose(output_dir=out)
        L.seed_everything(0, workers=True)
        datamodule, model, _ = build(cfg)  # same data and network, no trainer
    net = model.net
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.model.lr)
    train, val = datamodule.train_dataloader(), datamodule.val_dataloader()
    start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for images, target in train:
            optimizer.zero_grad()
            F.mse_loss(net(images), target).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            sum(F.mse_loss(net(images), target).item() for images, target in val)
    return time.perf_counter() - start


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("epochs", nargs="?", default=5, type=int, metavar="EPOCHS",
                        help="epochs each training runs (default: 5)")
    parser.add_argument("repeats", nargs="?", default=3, type=int, metavar="REPEATS",
                        help="timings of each, alternating; the best counts (default: 3)")


def run_command(args: argparse.Namespace) -> int:
    epochs, repeats = args.epochs, args.repeats
    for name, value in (("EPOCHS", epochs), ("REPEATS", repeats)):
        if value < 1:
            raise UserError(f"{name} must be a positive whole number, got {value}; e.g. pixel-spotter "
                            "bench-overhead 5 3")
    quiet_libraries()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    pipe, bare = [], []
    for _ in range(repeats):
        pipe.append(pipeline_seconds(epochs))
        bare.append(bare_seconds(epochs))
    print(f"baseline CNN, 50x50, {epochs} epochs (1750 train / 375 val images, batch 64), "
          f"{torch.get_num_threads()} torch threads, best of {repeats}")
    print(f"  bare PyTorch loop : {min(bare):7.2f} s   (all: {', '.join(f'{t:.2f}' for t in bare)})")
    print(f"  Lightning pipeline: {min(pipe):7.2f} s   (all: {', '.join(f'{t:.2f}' for t in pipe)})")
    print(f"  ratio pipeline / bare: {min(pipe) / min(bare):.3f}  (target <= 1.2)")
    return 0
