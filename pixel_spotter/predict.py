"""`pixel-spotter predict RUN_DIR IMAGE [IMAGE ...]`: (x, y) of the bright pixel, from a trained run.

RUN_DIR is a run folder (its ``.hydra/config.yaml`` rebuilds the network, its best checkpoint holds the
weights) or a checkpoint file inside one. Images are PNG/JPEG (grey or colour, converted to grey) or
``.npy`` arrays, of the size the run trained on, scaled to [0, 1] by their type's range (8-bit /255,
16-bit /65535, integer arrays by their dtype's maximum, float arrays must already be in [0, 1]; see
``pixel_spotter.image_input``). Prints one line per image, ``FILE x y`` in pixels (x = column, y = row),
or a JSON list of {"image", "x", "y", "warning"} with ``--json``.

An image without one clear brightest pixel (blank, flat, several equally bright pixels) or an answer that
is clamped into the image, not a number (x/y printed ``-``, JSON null) or not the clear brightest pixel gets
a warning: ``  # warning: ...`` after its line (or the "warning" field), and ``warning: FILE: ...`` on stderr.

Exit status: 0 = every image answered without warning; 2 = bad input (unreadable image, wrong size, missing
or corrupt run): one line on stderr, nothing on stdout; 3 = answered, but some answers are doubtful; see
the warnings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pixel_spotter.cli import run_safely
from pixel_spotter.errors import UserError, unwrapped_user_errors
from pixel_spotter.image_input import check_answer, doubts, read_image


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


def predict(target: Path, images: list[Path]) -> list[dict]:
    """One {"image", "x", "y", "warning"} per image: x/y in pixels inside the image or None, warning a
    sentence or None. Every image is read and checked before the model runs (a UserError for a bad one)."""
    import torch

    model, size = load_model(target)
    arrays = [read_image(p, size) for p in images]
    with torch.inference_mode():
        raw = model.predict_pixels(torch.from_numpy(np.stack(arrays))[:, None]).tolist()
    results = []
    for path, image, xy in zip(images, arrays, raw):
        (x, y), answer_warning = check_answer(xy, image)
        warning = "; ".join(w for w in (doubts(image), answer_warning) if w) or None
        results.append({"image": str(path), "x": x, "y": y, "warning": warning})
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="RUN_DIR", help="a run folder, or a checkpoint inside one")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG/JPEG or .npy images")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of lines")


def run_command(args: argparse.Namespace) -> int:
    """Exit status 0 when every answer is clean, 3 when some carry a warning (UserErrors: 2, in run_safely)."""
    results = predict(args.run, args.images)
    if args.json:
        print(json.dumps(results, allow_nan=False))
    for result in results:
        if not args.json:
            x, y = ("-" if v is None else f"{v:.3f}" for v in (result["x"], result["y"]))
            note = f"  # warning: {result['warning']}" if result["warning"] else ""
            print(f"{result['image']} {x} {y}{note}")
        if result["warning"]:
            print(f"warning: {result['image']}: {result['warning']}", file=sys.stderr)
    return 3 if any(r["warning"] for r in results) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m pixel_spotter.predict", description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(run_safely(run_command, parser.parse_args()))
