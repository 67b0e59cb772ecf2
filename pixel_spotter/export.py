"""`pixel-spotter export RUN --format onnx|torchscript [--out FILE] [--bench]`: a model file that runs
without pixel_spotter, plus its input contract.

The file maps an (N, 1, H, W) float32 batch in [0, 1] to (N, 2) pixel coordinates (x = column, y = row):
``CoordinateRegressor.predict_pixels``, the pixel scaling baked in, with a dynamic batch axis. The run is
loaded exactly as ``predict`` loads it (``predict.load_model``: untrusted folder, ``weights_only=True``).
The file is written to ``./<run name>.onnx`` (``.pt`` for TorchScript) or ``--out``, never into the run
folder; its contract goes next to it as ``<file>.json`` (size, dtype, value range, how image files are
scaled, output meaning, the run, the exporter versions, the file's sha256 and the parity check).

Before the contract is written the exported file is run on every one-pixel image of the run's size (up to
``PROBE_LIMIT`` of them, evenly spaced) and compared with the PyTorch model: more than ``PARITY_PX``
pixels apart anywhere and the export is refused (the file deleted). ``--bench`` then prints batch-1 and
batch-1024 ms/image of the PyTorch model and the exported file side by side.

``open_exported`` reads such a file back for ``pixel-spotter predict model.onnx IMAGE...``: .onnx with
onnxruntime, .pt with ``torch.jit.load``; a missing or mismatching contract is a one-line error.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np

from pixel_spotter.errors import UserError

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
CONTRACT_VERSION = 1
PARITY_PX = 1e-4  # the most an exported file may differ from the PyTorch model, in pixels
PROBE_LIMIT = 4096  # one-pixel images checked at export (all of them up to 64x64)
INPUT_NAME, OUTPUT_NAME = "images", "xy"
OPSET = 18
SIZE_FILE = "pixel_spotter_size.json"  # inside a TorchScript export: the size it was traced on
SCALING = ("files are scaled by their type's range, never by their content: 8-bit PNG/JPEG / 255, 16-bit PNG "
           "/ 65535, integer arrays / their dtype's maximum, float arrays must already be in [0, 1]; colour "
           "is converted to grey (Pillow convert('L'))")
OUTPUT_MEANING = ("(N, 2) float32: x = column, y = row of the bright pixel, in pixels, origin top-left "
                  "(0..W-1, 0..H-1; an answer may lie a hair outside and should be clamped)")


def contract_path(model_file: Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    model_file = Path(model_file)
    return model_file.with_name(model_file.name + ".json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def probe_images(height: int, width: int, limit: int = PROBE_LIMIT) -> np.ndarray:
    """(N, 1, H, W) float32 one-pixel images: every position (row by row), or ``limit`` evenly spaced ones."""
    count = height * width
    positions = np.unique(np.linspace(0, count - 1, min(count, limit)).round().astype(np.int64))
    images = np.zeros((len(positions), 1, height * width), dtype=np.float32)
    images[np.arange(len(positions)), 0, positions] = 1.0
    return images.reshape(len(positions), 1, height, width)


# ---- reading an exported file back


class OnnxModel:
    """An exported .onnx file run with onnxruntime: ``size`` = (H, W); (N, 1, H, W) float32 -> (N, 2)."""

    def __init__(self, path: Path, size: tuple[int, int], threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(f"{path} is an ONNX model but onnxruntime is not installed; install the export "
                            "extra: pip install -e '.[export]'") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on stderr around the answers
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            (inp,), (_,) = self.session.get_inputs(), self.session.get_outputs()
        except Exception as err:
            raise UserError(f"{path} cannot be loaded by onnxruntime ({type(err).__name__}); it is corrupt or not "
                            "an ONNX model: export it again") from None
        if list(inp.shape[1:]) != [1, *size] or inp.type != "tensor(float)":
            raise UserError(f"{path} takes {inp.type} {inp.shape} but its contract says float32 (N, 1, {size[0]}, "
                            f"{size[1]}); the contract belongs to another export: export it again")
        self.input_name, self.size = inp.name, size

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        except Exception as err:
            raise _failed(self, err) from None


class TorchScriptModel:
    """An exported TorchScript .pt file: ``size`` = (H, W); (N, 1, H, W) float32 -> (N, 2)."""

    def __init__(self, path: Path, size: tuple[int, int]):
        import torch

        extra = {SIZE_FILE: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.load's deprecation note: not the user's concern
                self.module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
            traced = json.loads(extra[SIZE_FILE])
            traced = (traced["height"], traced["width"])
        except Exception as err:
            raise UserError(f"{path} cannot be loaded as TorchScript ({type(err).__name__}); it is corrupt, not "
                            "a TorchScript file or not from pixel-spotter export: export it again") from None
        if traced != tuple(size):
            # the nets are convolutional: a wrong size would run and answer wrongly, so it is checked here
            raise UserError(f"{path} was traced on {traced[0]}x{traced[1]} images but its contract says "
                            f"{size[0]}x{size[1]}; the contract belongs to another export: export it again")
        self.size = size

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        try:
            with torch.inference_mode():
                return self.module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()
        except Exception as err:
            raise _failed(self, err) from None


def _failed(model, err: Exception) -> UserError:
    return UserError(f"the exported model failed on {model.size[0]}x{model.size[1]} images "
                     f"({type(err).__name__}); its contract does not match it: export the model again")


def read_contract(path: Path) -> dict:
    """The checked contract of exported file ``path``: a UserError when it is missing or does not match."""
    path, fmt = Path(path), _format_of(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a run folder or a file written by pixel-spotter export")
    where = contract_path(path)
    if not where.is_file():
        raise UserError(f"{path} has no input contract {where} next to it; export the model again with "
                        "pixel-spotter export (the contract gives the image size)")
    try:
        contract = json.loads(where.read_text())
        height, width = contract["height"], contract["width"]
        fields_ok = (contract["format"] == fmt and contract["dtype"] == "float32"
                     and contract["value_range"] == [0.0, 1.0] and isinstance(contract["sha256"], str))
    except Exception as err:
        raise UserError(f"{where} is not a usable export contract ({type(err).__name__}); export the model "
                        "again") from None
    if not (fields_ok and isinstance(height, int) and isinstance(width, int) and 2 <= height <= 10_000
            and 2 <= width <= 10_000):
        raise UserError(f"{where} does not describe a float32 {fmt} model on [0, 1] images of a possible size; "
                        "export the model again")
    if _sha256(path) != contract["sha256"]:
        raise UserError(f"{path} does not match its contract {where} (sha256 differs: the file was changed or "
                        "the contract belongs to another export); export the model again")
    return contract


def _format_of(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    for fmt, known in SUFFIXES.items():
        if suffix == known:
            return fmt
    raise UserError(f"{path} is not an exported model ({', '.join(SUFFIXES.values())})")


def open_exported(path: Path, threads: int | None = None):
    """The model source for an exported file (after checking its contract)."""
    contract = read_contract(path)
    size = (contract["height"], contract["width"])
    if contract["format"] == "onnx":
        return OnnxModel(Path(path), size, threads)
    return TorchScriptModel(Path(path), size)


# ---- writing one


def _run_name(run: Path) -> str:
    run = Path(run).resolve()
    return run.name if run.is_dir() else run.parent.parent.name


def _run_folder(run: Path) -> Path:
    run = Path(run).resolve()
    return run if run.is_dir() else run.parent.parent


def _pixels_module(model):
    """predict_pixels (net(images) * px_scale) as a plain module, what the exporters trace: the
    LightningModule itself cannot be traced (it reaches for its Trainer). The parity check at export
    holds it to predict_pixels."""
    from torch import nn

    class Pixels(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model.net
            self.register_buffer("px_scale", model.px_scale.detach().clone())

        def forward(self, images):
            return self.net(images) * self.px_scale

    return Pixels().eval()


def _write(fmt: str, module, size: tuple[int, int], out: Path) -> str:
    """Write the traced module; returns the exporter used. ONNX: torch.onnx.export's default (dynamo) path,
    the older TorchScript-based exporter only where the dynamo one fails on a network."""
    import torch

    example = torch.zeros(2, 1, *size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and constant-folding notes
        if fmt == "torchscript":
            size_file = json.dumps({"height": size[0], "width": size[1]})
            torch.jit.trace(module, example, check_trace=False).save(str(out), _extra_files={SIZE_FILE: size_file})
            return "torch.jit.trace"
        names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": OPSET}
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
                torch.onnx.export(module, (example,), str(out), dynamo=True, verbose=False, external_data=False,
                                  dynamic_shapes={"images": {0: torch.export.Dim("batch")}}, **names)
            return "torch.onnx.export(dynamo=True)"
        except Exception:
            out.unlink(missing_ok=True)
            torch.onnx.export(module, (example,), str(out), dynamo=False,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, **names)
            return "torch.onnx.export(dynamo=False)"


def _versions(fmt: str) -> dict:
    import torch

    import pixel_spotter

    versions = {"torch": torch.__version__, "pixel_spotter": pixel_spotter.__version__}
    if fmt == "onnx":
        import onnx
        import onnxruntime

        versions.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__, opset=OPSET)
        try:
            import onnxscript

            versions["onnxscript"] = onnxscript.__version__
        except ImportError:
            pass
    return versions


def parity(model, exported, images: np.ndarray, batch_size: int = 512) -> float:
    """max |exported - torch| over ``images`` in pixels (inf when either gives a non-finite answer)."""
    import torch

    worst = 0.0
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        with torch.inference_mode():
            reference = model.predict_pixels(torch.from_numpy(batch)).numpy().astype(np.float64)
        got = np.asarray(exported(batch), dtype=np.float64)
        if got.shape != reference.shape:
            return math.inf
        worst = max(worst, float(np.abs(got - reference).max()))
    return worst if math.isfinite(worst) else math.inf


def export(run: Path, fmt: str, out: Path | None = None) -> tuple[Path, dict]:
    """Write ``run``'s model as ``fmt`` to ``out`` (default ./<run name><suffix>) and its contract next to it."""
    from pixel_spotter.predict import load_model

    if fmt not in SUFFIXES:
        raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(SUFFIXES)}")
    model, size = load_model(run)  # the one loading path: checks the run folder as predict does
    out = Path(out) if out is not None else Path.cwd() / f"{_run_name(run)}{SUFFIXES[fmt]}"
    if out.suffix.lower() != SUFFIXES[fmt]:
        raise UserError(f"{out}: a {fmt} export must end in {SUFFIXES[fmt]} (predict picks the runtime by it)")
    folder = _run_folder(run)
    if out.resolve().is_relative_to(folder):
        raise UserError(f"{out} lies inside the run folder {folder}; export elsewhere (--out PATH)")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent} does not exist; create it or pass another --out")
    try:
        exporter = _write(fmt, _pixels_module(model), size, out)
    except UserError:
        raise
    except Exception as err:
        out.unlink(missing_ok=True)
        raise UserError(f"the {fmt} exporter failed on this model ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}); try --format "
                        f"{'torchscript' if fmt == 'onnx' else 'onnx'}") from None
    exported = (OnnxModel(out, size) if fmt == "onnx" else TorchScriptModel(out, size))
    probes = probe_images(*size)
    worst = parity(model, exported, probes)
    if not worst <= PARITY_PX:
        out.unlink(missing_ok=True)
        raise UserError(f"the exported {fmt} model differs from the PyTorch model by up to {worst:.3g} px on "
                        f"one-pixel images (limit {PARITY_PX:g}); nothing written")
    contract = {
        "contract_version": CONTRACT_VERSION,
        "format": fmt,
        "file": out.name,
        "sha256": _sha256(out),
        "height": size[0],
        "width": size[1],
        "dtype": "float32",
        "value_range": [0.0, 1.0],
        "input": {"name": INPUT_NAME, "shape": ["N", 1, size[0], size[1]], "layout": "NCHW, one grey channel",
                  "batch_axis": "dynamic"},
        "scaling": SCALING,
        "output": {"name": OUTPUT_NAME, "shape": ["N", 2], "meaning": OUTPUT_MEANING},
        "run": {"folder": str(folder), "name": folder.name, "model": _net_target(model)},
        "exporter": {"used": exporter, **_versions(fmt)},
        "parity": {"images": f"{len(probes)} one-pixel images of {size[0]}x{size[1]}", "max_abs_px": worst,
                   "limit_px": PARITY_PX},
    }
    contract_path(out).write_text(json.dumps(contract, indent=2) + "\n")
    return out, contract


def _net_target(model) -> str:
    net = type(model.net)
    return f"{net.__module__}.{net.__qualname__}"


# ---- latency


def bench(model, exported, size: tuple[int, int], batch_sizes=(1, 1024)) -> dict:
    """{"pytorch": {batch: ms/image}, "exported": {...}} on the same one-pixel images, same timing loop
    (pixel_spotter.timing.ms_per_image: one warm-up batch, best of 3)."""
    import torch

    from pixel_spotter.timing import ms_per_image

    rng = np.random.default_rng(0)
    count = max(batch_sizes)
    images = np.zeros((count, 1, size[0] * size[1]), dtype=np.float32)
    images[np.arange(count), 0, rng.integers(0, size[0] * size[1], count)] = 1.0
    images = torch.from_numpy(images.reshape(count, 1, *size))
    out = {"pytorch": {}, "exported": {}}
    for batch in batch_sizes:
        limit = 256 if batch == 1 else None  # one image at a time: a few hundred are enough
        out["pytorch"][batch] = ms_per_image(model.predict_pixels, images, batch, max_images=limit)
        out["exported"][batch] = ms_per_image(lambda b: exported(b.numpy()), images, batch, max_images=limit)
    return out


# ---- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="RUN_DIR", help="a run folder, or a checkpoint inside one")
    parser.add_argument("--format", required=True, metavar="FORMAT", dest="fmt",
                        help=f"one of {', '.join(SUFFIXES)}")
    parser.add_argument("--out", type=Path, default=None, metavar="PATH",
                        help="the model file to write (default ./<run name>.onnx or .pt); its contract goes to "
                             "PATH.json")
    parser.add_argument("--bench", action="store_true",
                        help="print batch-1 and batch-1024 ms/image of the PyTorch model and the exported file")


def run_command(args: argparse.Namespace) -> int:
    import torch

    out, contract = export(args.run, args.fmt, args.out)
    print(f"wrote {out} ({args.fmt}) and its contract {contract_path(out)}; "
          f"{contract['height']}x{contract['width']} float32 in [0, 1] -> (x, y) px; "
          f"parity max |{args.fmt} - torch| = {contract['parity']['max_abs_px']:.2e} px over "
          f"{contract['parity']['images']}")
    if args.bench:
        from pixel_spotter.predict import load_model

        model, size = load_model(args.run)
        threads = torch.get_num_threads()
        exported = open_exported(out, threads=threads)
        times = bench(model, exported, size)
        runtime = f"onnxruntime {contract['exporter']['onnxruntime']}" if args.fmt == "onnx" else "torch.jit"
        label = f"{args.fmt} ({runtime})"
        print(f"\nlatency, ms/image, CPU, {threads} threads   batch 1    batch 1024")
        for name, row in (("pytorch (eager)", times["pytorch"]), (label, times["exported"])):
            print(f"{name:<40} {row[1]:>8.4f}   {row[1024]:>10.4f}")
    return 0
