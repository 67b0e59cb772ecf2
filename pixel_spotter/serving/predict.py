"""`pixel-spotter predict MODEL IMAGE [IMAGE ...]`: (x, y) of the bright pixel or spot, from a run or an export.

MODEL is a run folder that finished ok (its config rebuilds the network, the best checkpoint its record
names holds the weights) or a checkpoint file inside one. The folder is treated as untrusted: only
pixel_spotter's own classes are built, and weights load with ``weights_only=True``. MODEL may also be a file
written by ``pixel-spotter export``: ``.onnx`` (run with onnxruntime) or ``.pt`` (TorchScript), with its
input contract ``<file>.json`` next to it (image size; see ``pixel_spotter.serving.export``). Whatever the model
source, images are read, checked and answered by the same code below.

Images are PNG/JPEG (grey or colour, converted to grey) or ``.npy`` arrays, of the size the run trained on. What
they hold is the run's task's (``pixel_spotter.tasks``): for the pixel task brightness, scaled to [0, 1] by the
file type's range (8-bit /255, 16-bit /65535, integer arrays by their dtype's maximum; float arrays as they are,
any finite values, as training renders them, with a warning only far outside the run's trained range; see
``pixel_spotter.serving.image_input``); for the spot task photon counts as stored, which the
network gets divided by the run's ``input_scale``. Prints one line per image, ``FILE x y`` in pixels (x = column,
y = row), or a JSON list of {"image", "x", "y", "warning"} with ``--json``.

An image the task finds doubtful (pixel task: blank, flat, several equally bright pixels; spot task: no spot
clearly above the noise, a second spot, counts far outside the trained range) or an answer that is clamped into
the image (to the pixel centres, or to a spot's outer pixel edges), not a number (x/y printed ``-``, JSON null)
or, for the pixel task, not the clear brightest pixel gets a warning: ``  # warning: ...`` after its line (or the
"warning" field), and ``warning: FILE: ...`` on stderr.

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

from pixel_spotter.serving.image_input import check_answer, read_image, shown_name
from pixel_spotter.serving.loading import load_model, locate, run_task


class RunModel:
    """A run folder (or a checkpoint inside one) as a model source: ``size`` = (H, W), ``task`` (what its
    network takes and what makes an answer doubtful) and ``__call__`` mapping an (N, 1, H, W) float32 network
    input to (N, 2) pixel coordinates (x, y)."""

    def __init__(self, target: Path):
        self.model, self.size = load_model(target)
        self.task = run_task(locate(Path(target))[0], *self.size)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.predict_pixels(torch.from_numpy(batch)).numpy()


def open_model(target: Path, trust: bool = False):
    """The model source that ``target`` names: an exported ``.onnx``/``.pt`` file (with its contract), or a
    run folder / checkpoint. Every source has ``size`` and maps (N, 1, H, W) float32 -> (N, 2) pixels."""
    from pixel_spotter.serving import exported

    target = Path(target)
    if target.suffix.lower() in exported.SUFFIXES.values():
        return exported.open_exported(target, trust=trust)
    return RunModel(target)


def predict(target: Path, images: list[Path], trust: bool = False) -> list[dict]:
    """One {"image", "x", "y", "warning"} per image: x/y in pixels inside the image (as far as the task allows an
    answer to lie) or None, warning a sentence or None. Every image is read and checked before the model runs
    (a UserError for a bad one)."""
    model = open_model(target, trust)
    task = model.task  # what the network takes (images in [0, 1] or photon counts) and what makes an answer doubtful
    arrays = [read_image(p, model.size, counts=task.counts) for p in images]
    raw = np.asarray(model(task.network_input(np.stack(arrays)[:, None])), dtype=np.float64).tolist()
    results = []
    for path, image, xy in zip(images, arrays, raw):
        (x, y), answer_warning = check_answer(xy, image, task)
        warning = "; ".join(w for w in (task.image_doubts(image), answer_warning) if w) or None
        results.append({"image": str(path), "x": x, "y": y, "warning": warning})
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="MODEL",
                        help="a run folder, a checkpoint inside one, or an exported .onnx/.pt file")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG/JPEG or .npy images")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of lines")
    parser.add_argument("--trust", action="store_true",
                        help="run a TorchScript file even when it holds more than pixel-spotter's exports do (a .pt "
                             "file is a program: only for files you made yourself; .onnx files need no trust)")


def run_command(args: argparse.Namespace) -> int:
    """Exit status 0 when every answer is clean, 3 when some carry a warning (UserErrors: 2, in run_safely)."""
    results = predict(args.run, args.images, trust=args.trust)
    if args.json:
        print(json.dumps(results, allow_nan=False))
    for result in results:
        name = shown_name(result["image"])  # a newline in a file name must not forge a result line
        if not args.json:
            x, y = ("-" if v is None else f"{v:.3f}" for v in (result["x"], result["y"]))
            note = f"  # warning: {result['warning']}" if result["warning"] else ""
            print(f"{name} {x} {y}{note}")
        if result["warning"]:
            print(f"warning: {name}: {result['warning']}", file=sys.stderr)
    return 3 if any(r["warning"] for r in results) else 0

