"""`pixel-spotter bench` (`make bench`): how fast does each model learn to localize exactly, and infer?

For each model (its conf/model/*.yaml defaults, 50x50 unless --size, position split unless --split, CPU):
- training wall time (the real Lightning pipeline, validation included) until val exact-pixel accuracy
  first reaches 100 %, or, within the time budget, the best it reached and when;
- test exact-pixel accuracy (held-out positions) of the weights training stopped with;
- inference throughput at batch 1024 and latency at batch 1 on the test images;
- the same for the argmax oracle (the exact answer, no learning), and each model's ratio to it.

    pixel-spotter bench [--models cnn,resnet18,coordconv,heatmap] [--budget-s 90] [--split quadrant]
                        [--size 50] [--epochs 1000]

It prints the longest it can take (models x budget) first, and a progress bar on stderr while it trains.

Measured: experiments/bench/README.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from pixel_spotter.benchmarks.timing import ms_per_image
from pixel_spotter.data.datamodule import PixelDataModule
from pixel_spotter.data.splits import SPLITS
from pixel_spotter.errors import UserError
from pixel_spotter.training.compose import CONF, compose
from pixel_spotter.training.environment import hardware
from pixel_spotter.training.run import build, evaluate, quiet_libraries

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))  # every model the project has
BAR = "{desc}: {percentage:3.0f}%|{bar}| {n}/{total} s of budget [{elapsed}<{remaining}{postfix}]"


class TimeToExact(Callback):
    """Records (seconds since fit start, epoch, val exact) after each validation; stops at 100 % or budget.
    ``on_time(elapsed)``, if given, hears each validation's time (the progress bar)."""

    def __init__(self, budget_s: float, on_time=None):
        self.budget_s, self.history, self.start = budget_s, [], None
        self.on_time = on_time or (lambda elapsed: None)

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or self.start is None:
            return
        exact = float(trainer.callback_metrics["val/exact_acc"])
        elapsed = time.perf_counter() - self.start
        self.history.append((elapsed, trainer.current_epoch + 1, exact))
        self.on_time(elapsed)
        if exact >= 1.0 or elapsed > self.budget_s:
            trainer.should_stop = True


def argmax_oracle(images: torch.Tensor) -> torch.Tensor:
    """The exact answer without learning: the brightest pixel's (x, y)."""
    flat = images.flatten(1).argmax(dim=1)
    width = images.shape[-1]
    return torch.stack([flat % width, flat // width], dim=1)


def config(model_name: str, split: str, size: int, epochs: int, out: str):
    """The bench's config of one model (no checkpoints, logger or progress bar: only training is timed)."""
    return compose(f"model={model_name}", f"data.split={split}", f"data.height={size}", f"data.width={size}",
                   f"trainer.max_epochs={epochs}", "trainer.accelerator=cpu", "~callbacks.model_checkpoint",
                   "~callbacks.last_checkpoint", "~callbacks.lr_monitor", "callbacks.progress_bar.refresh_rate=0",
                   "~logger", output_dir=out)


def bench_model(model_name: str, budget_s: float, split: str, size: int = 50, epochs: int = 1000,
                on_time=None) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cfg = config(model_name, split, size, epochs, out)
        L.seed_everything(cfg.seed, workers=True)
        datamodule, model, trainer = build(cfg)
        clock = TimeToExact(budget_s, on_time)
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
    parser.add_argument("--models", default=None,
                        help="comma-separated models to bench (default: every model of conf/model/ the pixel task "
                             "can train)")
    parser.add_argument("--budget-s", type=float, default=90.0, help="training time budget per model (s)")
    parser.add_argument("--split", default="position", choices=SPLITS, help="data split (default: position)")
    parser.add_argument("--size", type=int, default=50, metavar="PX", help="image side in pixels (default: 50)")
    parser.add_argument("--epochs", type=int, default=1000,
                        help="at most this many epochs per model (default: 1000, i.e. the budget decides)")


def trainable(model_name: str, split: str, size: int, epochs: int) -> str | None:
    """None if the pixel task can train ``model_name`` with these settings, else why not (one line)."""
    from pixel_spotter.training.validation import validate

    with tempfile.TemporaryDirectory() as out:
        try:
            validate(config(model_name, split, size, epochs, out))
        except UserError as err:
            return str(err)
    return None


def chosen_models(args: argparse.Namespace) -> list[str]:
    """The models to bench, each checked before any training starts; a bad choice is a UserError."""
    if not args.budget_s > 0:
        raise UserError(f"--budget-s must be a positive number of seconds, got {args.budget_s}; e.g. --budget-s 90")
    if args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {args.epochs}; e.g. --epochs 1000")
    if args.models is None:
        return [m for m in MODELS if trainable(m, args.split, args.size, args.epochs) is None]
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise UserError(f"unknown model(s) {', '.join(unknown) or repr(args.models)}; choose from "
                        f"{', '.join(MODELS)}, e.g. --models {MODELS[0]}")
    for name in models:
        why = trainable(name, args.split, args.size, args.epochs)
        if why is not None:
            raise UserError(f"--models {name}: bench trains the pixel task, which this model cannot ({why}); "
                            f"e.g. --models {MODELS[0]}")
    return models


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def train_all(models: list[str], args: argparse.Namespace) -> list[dict]:
    """Each model's bench row, under one progress bar of the budgets' seconds."""
    from pixel_spotter.cli import progress

    budget = args.budget_s
    print(f"bench: {len(models)} model(s) x {budget:g} s budget: up to {_duration(len(models) * budget)} of "
          "training (a model stops early at 100 % val exact), then test and timing", file=sys.stderr, flush=True)
    rows = []
    with progress(total=round(len(models) * budget), desc="bench", unit="s", bar_format=BAR) as bar:
        for i, name in enumerate(models):
            bar.set_postfix_str(name)

            def at(elapsed: float, done: float = i * budget) -> None:
                bar.update(max(0, round(done + min(elapsed, budget)) - bar.n))

            rows.append(bench_model(name, budget, args.split, args.size, args.epochs, on_time=at))
            at(budget)
    return rows


def run_command(args: argparse.Namespace) -> int:
    quiet_libraries()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    models = chosen_models(args)
    rows = train_all(models, args)
    oracle_data = PixelDataModule(height=args.size, width=args.size, split=args.split)  # the models' test images
    oracle_data.setup()
    sizes = " / ".join(f"{len(oracle_data.positions[k])} {k}" for k in ("train", "val", "test"))
    images = oracle_data.images("test")
    oracle = (ms_per_image(argmax_oracle, images, batch_size=1024),
              ms_per_image(argmax_oracle, images, batch_size=1, repeats=1, max_images=200))
    hw = hardware()
    print(f"pixel-spotter bench: {args.size}x{args.size}, {args.split} split ({sizes}), CPU {hw['cpu']} "
          f"({hw['cpu_cores']} cores), {hw['torch_threads']} torch threads, torch {torch.__version__}, "
          f"time budget {args.budget_s:g} s/model")
    print_table(rows, *oracle)
    return 0


def print_table(rows: list[dict], oracle_batch: float, oracle_single: float) -> None:
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
