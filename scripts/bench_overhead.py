"""What does the Lightning + Hydra pipeline cost over a bare PyTorch loop? (make bench-overhead)

Both train the same baseline CNN (same init, same data, same batch size) for EPOCHS epochs with a
validation pass per epoch. The pipeline is the real one (composed config, callbacks, TensorBoard
logger, checkpointing, torchmetrics); the bare loop computes only the loss. Repeats alternate the two
and the best time of each is kept, so background load hits both alike. Prints both times and the ratio.

    python scripts/bench_overhead.py [EPOCHS] [REPEATS]
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from pixel_spotter.train import build, quiet_libraries

CONF = Path(__file__).resolve().parents[1] / "conf"


def pipeline_seconds(epochs: int) -> float:
    with tempfile.TemporaryDirectory() as out, initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=[f"output_dir={out}", f"trainer.max_epochs={epochs}",
                                           "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0"])
        L.seed_everything(0, workers=True)
        datamodule, model, trainer = build(cfg)
        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule)
        return time.perf_counter() - start


def bare_seconds(epochs: int) -> float:
    with tempfile.TemporaryDirectory() as out, initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=[f"output_dir={out}"])
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


def main() -> None:
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
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


if __name__ == "__main__":
    main()
