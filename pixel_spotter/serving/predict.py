"""`pixel-spotter predict MODEL IMAGE [IMAGE ...]`: (x, y) of the bright pixel, from a trained run or an export.

MODEL is a run folder that finished ok (its config rebuilds the network, the best checkpoint its record
names holds the weights) or a checkpoint file inside one. The folder is treated as untrusted: only
pixel_spotter's own classes are built, and weights load with ``weights_only=True``. MODEL may also be a file
written by ``pixel-spotter export``: ``.onnx`` (run with onnxruntime) or ``.pt`` (TorchScript), with its
input contract ``<file>.json`` next to it (image size; see ``pixel_spotter.serving.export``). Whatever the model
source, images are read, checked and answered by the same code below.

Images are PNG/JPEG (grey or colour, converted to grey) or ``.npy`` arrays, of the size the run trained
on, scaled to [0, 1] by their type's range (8-bit /255, 16-bit /65535, integer arrays by their dtype's
maximum, float arrays must already be in [0, 1]; see ``pixel_spotter.serving.image_input``). A ``data=spot`` run (its
config has ``data.spot``), or a model exported from one, takes photon counts instead: integer arrays and 8-/16-bit
PNGs are counts as they are, float arrays any finite counts; the network gets counts / ``data.spot.input_scale``,
there is no brightest-pixel check, and answers are clamped to the outer pixel edges [-0.5, W - 0.5]. Prints one line
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
import math
import sys
from pathlib import Path

import numpy as np

from pixel_spotter.errors import UserError, unwrapped_user_errors
from pixel_spotter.run_folder import RunFolder
from pixel_spotter.serving.image_input import check_answer, doubts, read_image, spot_doubts

# A run folder may come from anywhere: only these are ever built from its config (anything else could be
# any callable in any installed package). The network must be a torch module from pixel_spotter.models.
MODULE_TARGET = "pixel_spotter.models.regressor.CoordinateRegressor"
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


def _spot_section(folder: RunFolder):
    """The run's ``data.spot`` config (a DictConfig) for a data=spot run, else None."""
    from omegaconf import DictConfig

    cfg = folder.load_config()
    data = cfg.get("data")
    spot = data.get("spot") if isinstance(data, DictConfig) else None
    if spot is None:
        return None
    if not isinstance(spot, DictConfig):
        raise UserError(f"{folder.config_file} has a data.spot that is not a mapping; the run folder is corrupt: "
                        "retrain")
    return spot


def spot_input_scale(folder: RunFolder) -> float | None:
    """Photons per unit of network input of a data=spot run (``data.spot.input_scale``), checked (the run
    folder is untrusted): a finite number > 0. None for a pixel-task run (images in [0, 1])."""
    spot = _spot_section(folder)
    if spot is None:
        return None
    try:
        scale = spot.get("input_scale")
    except Exception as err:
        raise UserError(f"{folder.config_file} has an unreadable data.spot.input_scale ({type(err).__name__}); "
                        "the run folder is corrupt: retrain") from None
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale) and scale > 0):
        raise UserError(f"{folder.config_file} gives data.spot.input_scale = {scale!r}, not a finite number > 0 "
                        "(photons per unit of network input); the run folder is corrupt: retrain")
    return float(scale)


def spot_params(folder: RunFolder):
    """The run's ``SpotParams`` (built field by field, never by its _target_), or None for a pixel-task run."""
    from dataclasses import fields

    from omegaconf import OmegaConf

    from pixel_spotter.tasks.spot.rendering import SpotParams

    scale = spot_input_scale(folder)
    if scale is None:
        return None
    spot = _spot_section(folder)
    try:
        values = {f.name: OmegaConf.to_object(spot[f.name]) if OmegaConf.is_config(spot[f.name]) else spot[f.name]
                  for f in fields(SpotParams) if f.name in spot and f.name != "input_scale"}
        return SpotParams(**values, input_scale=scale)
    except UserError as err:
        raise UserError(f"{folder.config_file}: {err}; the run folder is corrupt: retrain") from None
    except Exception as err:
        raise UserError(f"{folder.config_file} has an unusable data.spot section ({type(err).__name__}); the run "
                        "folder is corrupt: retrain") from None


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
    mapping an (N, 1, H, W) float32 network input (images in [0, 1], or counts / ``input_scale``) to (N, 2)
    pixel coordinates (x, y); ``input_scale`` is None for the pixel task, photons per unit for data=spot."""

    def __init__(self, target: Path):
        self.model, self.size = load_model(target)
        self.input_scale = spot_input_scale(_locate(Path(target))[0])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.predict_pixels(torch.from_numpy(batch)).numpy()


def open_model(target: Path):
    """The model source that ``target`` names: an exported ``.onnx``/``.pt`` file (with its contract), or a
    run folder / checkpoint. Every source has ``size`` and maps (N, 1, H, W) float32 -> (N, 2) pixels."""
    from pixel_spotter.serving import exported

    target = Path(target)
    if target.suffix.lower() in exported.SUFFIXES.values():
        return exported.open_exported(target)
    return RunModel(target)


def predict(target: Path, images: list[Path]) -> list[dict]:
    """One {"image", "x", "y", "warning"} per image: x/y in pixels inside the image (for data=spot: within its outer
    pixel edges) or None, warning a
    sentence or None. Every image is read and checked before the model runs (a UserError for a bad one)."""
    model = open_model(target)
    scale = getattr(model, "input_scale", None)  # photons per unit of input (data=spot), None: images in [0, 1]
    spot = scale is not None
    arrays = [read_image(p, model.size, counts=spot) for p in images]
    batch = np.stack(arrays)[:, None]
    if spot:  # as training fed it: float64 counts / input_scale, then float32
        batch = (batch.astype(np.float64) / scale).astype(np.float32)
    raw = np.asarray(model(batch), dtype=np.float64).tolist()
    results = []
    for path, image, xy in zip(images, arrays, raw):
        (x, y), answer_warning = check_answer(xy, image, spot=spot)
        warning = "; ".join(w for w in (spot_doubts(image) if spot else doubts(image), answer_warning) if w) or None
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

