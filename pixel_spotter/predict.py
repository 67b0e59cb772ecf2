"""`pixel-spotter predict MODEL IMAGE [IMAGE ...]`: (x, y) of the bright pixel, from a trained run or an export.

MODEL is a run folder that finished ok (its config rebuilds the network, the best checkpoint its record
names holds the weights) or a checkpoint file inside one. The folder is treated as untrusted: only
pixel_spotter's own classes are built, and weights load with ``weights_only=True``. MODEL may also be a file
written by ``pixel-spotter export``: ``.onnx`` (run with onnxruntime) or ``.pt`` (TorchScript), with its
input contract ``<file>.json`` next to it (image size; see ``pixel_spotter.export``). Whatever the model
source, images are read, checked and answered by the same code below.

Images are PNG/JPEG (grey or colour, converted to grey) or ``.npy`` arrays, of the size the run trained
on, scaled to [0, 1] by their type's range (8-bit /255, 16-bit /65535, integer arrays by their dtype's
maximum, float arrays must already be in [0, 1]; see ``pixel_spotter.image_input``). Prints one line
per image, ``FILE x y`` in pixels (x = column, y = row), or a JSON list of {"image", "x", "y", "warning"}
with ``--json``.

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

from pixel_spotter.errors import UserError, unwrapped_user_errors
from pixel_spotter.image_input import check_answer, doubts, read_image
from pixel_spotter.run_folder import RunFolder

# A run folder may come from anywhere: only these are ever built from its config (anything else could be
# any callable in any installed package). The network must be a torch module from pixel_spotter.models.
MODULE_TARGET = "pixel_spotter.module.CoordinateRegressor"
NET_PACKAGE = "pixel_spotter.models."


def _locate(target: Path) -> tuple[RunFolder, Path]:
    """(run folder, checkpoint): the best checkpoint that results.json records, or a checkpoint file given
    explicitly, which must sit in its run's checkpoints/ folder (its config is needed to rebuild the net)."""
    if target.is_dir():
        folder = RunFolder(target)
        return folder, folder.best_checkpoint()
    if target.is_file():
        folder = RunFolder(target.resolve().parent.parent)
        if target.resolve().parent != folder.checkpoints.resolve():
            raise UserError(f"{target} is not inside a run's {folder.checkpoints.name}/ folder; pass the run "
                            "folder, or a checkpoint inside it")
        return folder, target
    raise UserError(f"{target} does not exist; pass a run folder (outputs/<time>) or a checkpoint inside one")


def _trusted_model_config(folder: RunFolder) -> tuple[dict, int, int]:
    """The run's model config, resolved, after checking that it builds only pixel_spotter's own classes."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf
    from torch import nn

    cfg = folder.load_config()
    try:
        model = OmegaConf.to_container(cfg.model, resolve=True)
        height, width = cfg.data.height, cfg.data.width
    except Exception as err:
        raise UserError(f"{folder.config_file} has no usable model/data section ({type(err).__name__}); "
                        "the run folder is corrupt: retrain") from None
    if not (isinstance(height, int) and isinstance(width, int) and 2 <= height <= 10_000 and 2 <= width <= 10_000):
        raise UserError(f"{folder.config_file} gives an impossible image size {height!r}x{width!r}; retrain")
    net = model.get("net") if isinstance(model, dict) else None
    targets = _targets(model)
    net_target = net.get("_target_") if isinstance(net, dict) else None
    allowed = model.get("_target_") == MODULE_TARGET and isinstance(net_target, str) and \
        net_target.startswith(NET_PACKAGE) and targets == [MODULE_TARGET, net_target]
    if allowed:
        try:
            allowed = issubclass(get_class(net_target), nn.Module)
        except Exception:
            allowed = False
    if not allowed:
        raise UserError(f"{folder.config_file} asks to build {', '.join(map(str, targets)) or 'nothing'}; "
                        f"predict only builds {MODULE_TARGET} around a network from {NET_PACKAGE}*, so this "
                        "run folder is refused (it may be tampered with)")
    if "weights" in net:
        net["weights"] = "none"  # the checkpoint brings the weights; never download or read another file
    return model, height, width


def _targets(node) -> list:
    """Every _target_ in a config tree, depth first."""
    if isinstance(node, dict):
        found = [node["_target_"]] if "_target_" in node else []
        return found + [t for key, value in node.items() if key != "_target_" for t in _targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in _targets(value)]
    return []


def load_model(target: Path):
    """The run's CoordinateRegressor with its best weights, in eval mode on the CPU. Safe on an untrusted
    run folder: the config may only name pixel_spotter's classes, and weights load with weights_only=True
    (tensors and plain containers; a pickled object in the checkpoint is refused, never run)."""
    import torch
    from hydra.utils import instantiate

    folder, ckpt = _locate(Path(target))
    model_cfg, height, width = _trusted_model_config(folder)
    with unwrapped_user_errors():
        model = instantiate(model_cfg, height=height, width=width)
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(state)
    except Exception as err:
        raise UserError(f"checkpoint {ckpt} cannot be loaded safely ({type(err).__name__}); it is corrupt, "
                        "from another model, or holds more than weights: retrain, or pass the run folder it "
                        "came from") from None
    return model.eval(), (height, width)


class RunModel:
    """A run folder (or a checkpoint inside one) as a model source: ``size`` = (H, W) and ``__call__``
    mapping an (N, 1, H, W) float32 array in [0, 1] to (N, 2) pixel coordinates (x, y)."""

    def __init__(self, target: Path):
        self.model, self.size = load_model(target)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.predict_pixels(torch.from_numpy(batch)).numpy()


def open_model(target: Path):
    """The model source that ``target`` names: an exported ``.onnx``/``.pt`` file (with its contract), or a
    run folder / checkpoint. Every source has ``size`` and maps (N, 1, H, W) float32 -> (N, 2) pixels."""
    from pixel_spotter import exported

    target = Path(target)
    if target.suffix.lower() in exported.SUFFIXES.values():
        return exported.open_exported(target)
    return RunModel(target)


def predict(target: Path, images: list[Path]) -> list[dict]:
    """One {"image", "x", "y", "warning"} per image: x/y in pixels inside the image or None, warning a
    sentence or None. Every image is read and checked before the model runs (a UserError for a bad one)."""
    model = open_model(target)
    arrays = [read_image(p, model.size) for p in images]
    raw = np.asarray(model(np.stack(arrays)[:, None]), dtype=np.float64).tolist()
    results = []
    for path, image, xy in zip(images, arrays, raw):
        (x, y), answer_warning = check_answer(xy, image)
        warning = "; ".join(w for w in (doubts(image), answer_warning) if w) or None
        results.append({"image": str(path), "x": x, "y": y, "warning": warning})
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="MODEL",
                        help="a run folder, a checkpoint inside one, or an exported .onnx/.pt file")
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

