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

A ``data=spot`` run's file takes what its network takes, photon counts / ``data.spot.input_scale`` (not an
image in [0, 1]); its contract says so (``value_range`` null, ``input_scale``, the counts ``scaling``), and
parity is checked on ``SPOT_PROBE_LIMIT`` spot images rendered by ``SpotSynthesizer`` with the run's own
``data.spot`` parameters. A network that cannot go to ONNX (``model=spot_fit``: its Levenberg–Marquardt fit
solves linear systems in its forward) is refused in one line naming ``--format torchscript``; whatever the
exporters print on the way is swallowed.

``pixel_spotter.serving.exported`` reads such a file back for ``pixel-spotter predict model.onnx IMAGE...``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from pixel_spotter.errors import UserError
from pixel_spotter.serving.exported import (  # noqa: F401  (open_exported: the reading side, re-exported)
    CONTRACT_VERSION,
    SIZE_FILE,
    SUFFIXES,
    OnnxModel,
    TorchScriptModel,
    _sha256,
    contract_path,
    open_exported,
    read_contract,
)

PARITY_PX = 1e-4  # the most an exported file may differ from the PyTorch model, in pixels
PROBE_LIMIT = 4096  # one-pixel images checked at export (all of them up to 64x64)
INPUT_NAME, OUTPUT_NAME = "images", "xy"
OPSET = 18
SCALING = ("files are scaled by their type's range, never by their content: 8-bit PNG/JPEG / 255, 16-bit PNG "
           "/ 65535, integer arrays / their dtype's maximum, float arrays must already be in [0, 1]; colour "
           "is converted to grey (Pillow convert('L'))")
SPOT_PROBE_LIMIT = 1024  # spot images checked at export (data=spot runs)


def spot_scaling(input_scale: float) -> str:
    return (f"files hold photon counts: integer arrays and 8-/16-bit PNGs are counts as they are (no scaling by "
            f"their type), float arrays any finite counts (read noise can make them negative); the network input "
            f"is counts / input_scale = counts / {input_scale:g}, float32")


SPOT_OUTPUT_MEANING = ("(N, 2) float32: x = column, y = row of the spot's centre, in pixels, origin top-left (pixel "
                       "centres 0..W-1, 0..H-1; a spot in a border pixel may lie up to half a pixel outside them, "
                       "to the outer pixel edges -0.5..W-0.5, -0.5..H-0.5)")
OUTPUT_MEANING = ("(N, 2) float32: x = column, y = row of the bright pixel, in pixels, origin top-left "
                  "(0..W-1, 0..H-1; an answer may lie a hair outside and should be clamped)")


def probe_images(height: int, width: int, limit: int = PROBE_LIMIT) -> np.ndarray:
    """(N, 1, H, W) float32 one-pixel images: every position (row by row), or ``limit`` evenly spaced ones."""
    count = height * width
    positions = np.unique(np.linspace(0, count - 1, min(count, limit)).round().astype(np.int64))
    images = np.zeros((len(positions), 1, height * width), dtype=np.float32)
    images[np.arange(len(positions)), 0, positions] = 1.0
    return images.reshape(len(positions), 1, height, width)


def spot_probe_images(params, height: int, width: int, limit: int = SPOT_PROBE_LIMIT) -> np.ndarray:
    """(N, 1, H, W) float32 network inputs (counts / input_scale) of spots rendered by ``SpotSynthesizer``
    with ``params`` (the run's data.spot), at every pixel (row by row) or ``limit`` evenly spaced ones,
    image i drawn from seed i."""
    import torch

    from pixel_spotter.tasks.spot.rendering import SpotSynthesizer

    count = height * width
    positions = np.unique(np.linspace(0, count - 1, min(count, limit)).round().astype(np.int64))
    xy = torch.from_numpy(np.stack([positions % width, positions // width], axis=1))
    images, _ = SpotSynthesizer(height, width, params)(xy, range(len(positions)))
    return images.numpy()


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


@contextlib.contextmanager
def _silenced():
    """Nothing the exporters print reaches the terminal: Python's and the C++ side's stdout and stderr go to
    a temporary file (a failing ONNX export prints the whole graph)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        saved = []
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        except OSError:  # no real file descriptors (e.g. an embedding host): the Python-level redirect only
            pass
        try:
            yield
        finally:
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def _onnx_refusal(err: Exception | None, why: str | None = None) -> UserError:
    """The one line for a network ONNX cannot hold: the unsupported operator when the exporter names one."""
    if why is None:
        ops = sorted(set(re.findall(r"aten::[A-Za-z0-9_.]+", str(err)))) if err is not None else []
        why = (f"unsupported operator {', '.join(ops[:3])}" if ops else
               f"{type(err).__name__}" if err is not None else "unsupported")
    return UserError(f"this model cannot be exported to ONNX ({why}); export it with --format torchscript "
                     "(predict reads the .pt file the same way)")


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
            with _silenced():  # its progress lines
                torch.onnx.export(module, (example,), str(out), dynamo=True, verbose=False, external_data=False,
                                  dynamic_shapes={"images": {0: torch.export.Dim("batch")}}, **names)
            return "torch.onnx.export(dynamo=True)"
        except Exception as first:
            out.unlink(missing_ok=True)
            try:
                with _silenced():  # a failure here prints the whole graph
                    torch.onnx.export(module, (example,), str(out), dynamo=False,
                                      dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, **names)
            except Exception as second:
                out.unlink(missing_ok=True)
                found = [e for e in (second, first) if "aten::" in str(e)]
                raise _onnx_refusal(found[0] if found else first) from None
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
    from pixel_spotter.serving.predict import _locate, load_model, spot_params

    if fmt not in SUFFIXES:
        raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(SUFFIXES)}")
    model, size = load_model(run)  # the one loading path: checks the run folder as predict does
    spot = spot_params(_locate(Path(run))[0])  # data=spot: the network takes counts / input_scale
    out = Path(out) if out is not None else Path.cwd() / f"{_run_name(run)}{SUFFIXES[fmt]}"
    if out.suffix.lower() != SUFFIXES[fmt]:
        raise UserError(f"{out}: a {fmt} export must end in {SUFFIXES[fmt]} (predict picks the runtime by it)")
    folder = _run_folder(run)
    if out.resolve().is_relative_to(folder):
        raise UserError(f"{out} lies inside the run folder {folder}; export elsewhere (--out PATH)")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent} does not exist; create it or pass another --out")
    if fmt == "onnx" and getattr(model.net, "refine", 0):
        # spot_fit: minutes of tracing to fail on torch.linalg.solve inside the Levenberg-Marquardt loop
        raise _onnx_refusal(None, f"{_net_target(model)} with refine={model.net.refine} runs a "
                                  "Levenberg-Marquardt fit with torch.linalg.solve in its forward")
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
    if spot is None:
        probes = probe_images(*size)
        probed = f"{len(probes)} one-pixel images of {size[0]}x{size[1]}"
    else:
        probes = spot_probe_images(spot, *size)
        probed = (f"{len(probes)} spot images of {size[0]}x{size[1]} rendered by SpotSynthesizer with the run's "
                  f"data.spot (photons {spot.photons[0]:g}..{spot.photons[1]:g}, background {spot.background[0]:g}.."
                  f"{spot.background[1]:g}, sigma_psf {spot.sigma_psf[0]:g}..{spot.sigma_psf[1]:g}), seeds 0..")
    worst = parity(model, exported, probes)
    if not worst <= PARITY_PX:
        out.unlink(missing_ok=True)
        raise UserError(f"the exported {fmt} model differs from the PyTorch model by up to {worst:.3g} px on "
                        f"{'one-pixel' if spot is None else 'spot'} images (limit {PARITY_PX:g}); nothing written")
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
        "parity": {"images": probed, "max_abs_px": worst, "limit_px": PARITY_PX},
    }
    if spot is not None:  # what the network takes: photon counts / input_scale, any finite float32
        contract.update(value_range=None, input_scale=spot.input_scale, scaling=spot_scaling(spot.input_scale))
        contract["input"]["values"] = (f"photon counts / input_scale (= counts / {spot.input_scale:g}), any finite "
                                       "float32; not an image in [0, 1]")
        contract["output"]["meaning"] = SPOT_OUTPUT_MEANING
    contract_path(out).write_text(json.dumps(contract, indent=2) + "\n")
    return out, contract


def _net_target(model) -> str:
    net = type(model.net)
    return f"{net.__module__}.{net.__qualname__}"


# ---- latency


def bench(model, exported, size: tuple[int, int], batch_sizes=(1, 1024), spot=None) -> dict:
    """{"pytorch": {batch: ms/image}, "exported": {...}} on the same images, same timing loop
    (pixel_spotter.benchmarks.timing.ms_per_image: one warm-up batch, best of 3): one-pixel images, or with ``spot`` (a
    data=spot run's SpotParams) spot images as the run's network sees them (a spot model's cost depends on them:
    its fit runs on the detected patch)."""
    import torch

    from pixel_spotter.benchmarks.timing import ms_per_image

    count = max(batch_sizes)
    if spot is None:
        rng = np.random.default_rng(0)
        images = np.zeros((count, 1, size[0] * size[1]), dtype=np.float32)
        images[np.arange(count), 0, rng.integers(0, size[0] * size[1], count)] = 1.0
        images = images.reshape(count, 1, *size)
    else:
        images = spot_probe_images(spot, *size, limit=count)
        images = np.concatenate([images] * -(-count // len(images)))[:count]  # small images: repeat to a batch
    images = torch.from_numpy(images)
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
    takes = ("float32 in [0, 1]" if contract.get("input_scale") is None else
             f"float32 photon counts / {contract['input_scale']:g}")
    print(f"wrote {out} ({args.fmt}) and its contract {contract_path(out)}; "
          f"{contract['height']}x{contract['width']} {takes} -> (x, y) px; "
          f"parity max |{args.fmt} - torch| = {contract['parity']['max_abs_px']:.2e} px over "
          f"{contract['parity']['images']}")
    if args.bench:
        from pixel_spotter.serving.predict import _locate, load_model, spot_params

        model, size = load_model(args.run)
        threads = torch.get_num_threads()
        exported = open_exported(out, threads=threads)
        times = bench(model, exported, size, spot=spot_params(_locate(Path(args.run))[0]))
        runtime = f"onnxruntime {contract['exporter']['onnxruntime']}" if args.fmt == "onnx" else "torch.jit"
        label = f"{args.fmt} ({runtime})"
        print(f"\nlatency, ms/image, CPU, {threads} threads   batch 1    batch 1024")
        for name, row in (("pytorch (eager)", times["pytorch"]), (label, times["exported"])):
            print(f"{name:<40} {row[1]:>8.4f}   {row[1024]:>10.4f}")
    return 0
