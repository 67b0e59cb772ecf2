"""`pixel-spotter predict RUN_DIR IMAGE [IMAGE ...]`: (x, y) of the bright pixel, from a trained run.

RUN_DIR is a run folder (its ``.hydra/config.yaml`` rebuilds the network, its best checkpoint holds the
weights) or a checkpoint file inside one. Images are PNG/JPEG (grey or colour, converted to grey) or
``.npy`` arrays, of the size the run trained on; 0..255 values are scaled to [0, 1] like the training data.
Prints one line per image, ``FILE x y`` in pixels (x = column, y = row), or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pixel_spotter.cli import run_safely
from pixel_spotter.errors import UserError, unwrapped_user_errors


def _checkpoint_and_config(target: Path) -> tuple[Path, Path]:
    if target.is_file():
        ckpt, run_dir = target, target.parent.parent  # <run>/checkpoints/best-*.ckpt
    elif target.is_dir():
        found = sorted((target / "checkpoints").glob("*.ckpt"))
        if not found:
            raise UserError(f"{target} holds no checkpoints/*.ckpt; pass a run folder of a finished run")
        ckpt, run_dir = found[-1], target
    else:
        raise UserError(f"{target} does not exist; pass a run folder (outputs/<time>) or its checkpoint")
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        raise UserError(f"{config} is missing: the checkpoint must sit in its run folder (<run>/checkpoints/)")
    return ckpt, config


def load_model(target: Path):
    """The run's CoordinateRegressor with its best weights, in eval mode on the CPU."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    ckpt, config = _checkpoint_and_config(Path(target))
    cfg = OmegaConf.load(config)
    if "weights" in cfg.model.net:
        cfg.model.net.weights = "none"  # the checkpoint brings the weights; never download here
    with unwrapped_user_errors():
        model = instantiate(cfg.model, height=cfg.data.height, width=cfg.data.width)
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
        model.load_state_dict(state)
    except Exception as err:
        raise UserError(f"checkpoint {ckpt} cannot be loaded ({type(err).__name__}); it is corrupt or from "
                        "another model: retrain, or pass the run folder it came from") from None
    return model.eval(), (cfg.data.height, cfg.data.width)


def load_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A (H, W) float array in [0, 1]; one clear error for unreadable files or the wrong size."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            image = np.load(path).astype(np.float32)
        else:
            from PIL import Image

            image = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    except Exception as err:
        raise UserError(f"image {path} cannot be read ({type(err).__name__}); use a PNG or .npy file") from None
    image = np.squeeze(image)
    if image.shape != tuple(size):
        raise UserError(f"image {path} is {'x'.join(map(str, image.shape))} but the model was trained on "
                        f"{size[0]}x{size[1]} (height x width); resize it or use a run trained at that size")
    return image / 255.0 if image.max() > 1 else image


def predict(target: Path, images: list[Path]) -> list[tuple[float, float]]:
    import torch

    model, size = load_model(target)
    batch = torch.from_numpy(np.stack([load_image(p, size) for p in images]))[:, None]
    with torch.inference_mode():
        return [tuple(xy) for xy in model.predict_pixels(batch).tolist()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="RUN_DIR", help="a run folder, or a checkpoint inside one")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG/JPEG or .npy images")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of lines")


def run_command(args: argparse.Namespace) -> int:
    xy = predict(args.run, args.images)
    if args.json:
        print(json.dumps([{"image": str(p), "x": x, "y": y} for p, (x, y) in zip(args.images, xy)]))
    else:
        for path, (x, y) in zip(args.images, xy):
            print(f"{path} {x:.3f} {y:.3f}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m pixel_spotter.predict", description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(run_safely(run_command, parser.parse_args()))
