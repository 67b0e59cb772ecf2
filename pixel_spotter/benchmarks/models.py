"""`pixel-spotter bench` (`make bench`): how fast does each model learn to localize exactly, and infer?

For each model (its conf/model/*.yaml defaults, 50x50, position split unless --split, CPU):
- training wall time (the real Lightning pipeline, validation included) until val exact-pixel accuracy
  first reaches 100 %, or, within the time budget, the best it reached and when;
- test exact-pixel accuracy (held-out positions) of the weights training stopped with;
- inference throughput at batch 1024 and latency at batch 1 on the test images;
- the same for the argmax oracle (the exact answer, no learning), and each model's ratio to it.

    pixel-spotter bench [--models cnn,resnet18,coordconv,heatmap] [--budget-s 90] [--split quadrant]

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
from lightning.pytorch.callbacks import Callback

from pixel_spotter.benchmarks.timing import ms_per_image
from pixel_spotter.data.datamodule import SPLITS, PixelDataModule
from pixel_spotter.errors import UserError
from pixel_spotter.training.compose import CONF, compose
from pixel_spotter.training.environment import hardware
from pixel_spotter.training.run import build, evaluate, quiet_libraries

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))  # every model the project has


class TimeToExact(Callback):
    """Records (seconds since fit start, epoch, val exact) after each validation; stops at 100 % or budget."""

    def __init__(self, budget_s: float):
        self.budget_s, self.history, self.start = budget_s, [], None

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or self.start is None:
            return
        exact = float(trainer.callback_metrics["val/exact_acc"])
        elapsed = time.perf_counter() - self.start
        self.history.append((elapsed, trainer.current_epoch + 1, exact))
        if exact >= 1.0 or elapsed > self.budget_s:
            trainer.should_stop = True


def argmax_oracle(images: torch.Tensor) -> torch.Tensor:
    """The exact answer without learning: the brightest pixel's (x, y)."""
    flat = images.flatten(1).argmax(dim=1)
    width = images.shape[-1]
    return torch.stack([flat % width, flat // width], dim=1)


def bench_model(model_name: str, budget_s: float, split: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cfg = compose(f"model={model_name}", f"data.split={split}", "trainer.max_epochs=1000",
                      "trainer.accelerator=cpu", "~callbacks.model_checkpoint", "~callbacks.last_checkpoint",
                      "~callbacks.lr_monitor",
                      "callbacks.progress_bar.refresh_rate=0", "~logger", output_dir=out)
        L.seed_everything(cfg.seed, workers=True)
        datamodule, model, trainer = build(cfg)
        clock = TimeToExact(budget_s)
        trainer.callbacks.append(clock)
        trainer.fit(model, datamodule=datamodule)
    hit = next((h for h in clock.history if h[2] >= 1.0), None)
    best = max(clock.history, key=lambda h: (h[2], -h[0]))
    images = datamodule.images("test")
    test = evaluate(model, datamodule, "test")  # the weights training stopped with
    return {
        "model": model_name,
        "params": sum(p.numel() for p in model.parameters()),
        "reached_100": hit is not None,
        "seconds": (hit or best)[0], "epoch": (hit or best)[1], "val_exact": (hit or best)[2],
        "test_exact": test["exact_acc"],
        "batch_ms": ms_per_image(model, images, batch_size=1024),
        "single_ms": ms_per_image(model, images, batch_size=1, repeats=1, max_images=200),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated models to bench (default: all, {','.join(MODELS)})")
    parser.add_argument("--budget-s", type=float, default=90.0, help="training time budget per model (s)")
    parser.add_argument("--split", default="position", choices=SPLITS, help="data split (default: position)")


def run_command(args: argparse.Namespace) -> int:
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}, "
                        f"e.g. --models {MODELS[0]}")
    if not args.budget_s > 0:
        raise UserError(f"--budget-s must be a positive number of seconds, got {args.budget_s}; e.g. --budget-s 90")
    quiet_libraries()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    rows = [bench_model(name, args.budget_s, args.split) for name in models]
    oracle_data = PixelDataModule(split=args.split)  # the same test images the models were timed on
    oracle_data.setup()
    sizes = " / ".join(f"{len(oracle_data.positions[k])} {k}" for k in ("train", "val", "test"))
    images = oracle_data.images("test")
    oracle_batch = ms_per_image(argmax_oracle, images, batch_size=1024)
    oracle_single = ms_per_image(argmax_oracle, images, batch_size=1, repeats=1, max_images=200)

    hw = hardware()
    print(f"pixel-spotter bench: 50x50, {args.split} split ({sizes}), CPU {hw['cpu']} ({hw['cpu_cores']} cores), "
          f"{hw['torch_threads']} torch threads, torch {torch.__version__}, time budget {args.budget_s:.0f} s/model")
    print(f"{'model':<10} {'params':>10} {'time to 100% val exact':>34} {'test exact':>11} "
          f"{'batch-1024 ms/img':>18} {'x oracle':>9} {'batch-1 ms':>11} {'x oracle':>9}")
    for r in rows:
        reach = (f"{r['seconds']:6.1f} s (epoch {r['epoch']})" if r["reached_100"]
                 else f"not reached: best {100 * r['val_exact']:.1f}% at {r['seconds']:.0f} s")
        print(f"{r['model']:<10} {r['params']:>10,} {reach:>34} {100 * r['test_exact']:>10.1f}% "
              f"{r['batch_ms']:>18.4f} {r['batch_ms'] / oracle_batch:>8.0f}x "
              f"{r['single_ms']:>11.3f} {r['single_ms'] / oracle_single:>8.0f}x")
    print(f"{'argmax':<10} {0:>10} {'exact by construction':>34} {100:>10.1f}% {oracle_batch:>18.4f} {'1':>8}x "
          f"{oracle_single:>11.3f} {'1':>8}x")
    print("test exact: held-out test positions, weights at the stop (100 % val exact, or the budget's end). "
          "On the quadrant split val holds seen quadrants, so only test exact measures extrapolation.")
    return 0
