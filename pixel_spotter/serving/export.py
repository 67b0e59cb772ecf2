"""`pixel-spotter export RUN --format onnx|torchscript [--out FILE] [--bench]`: a model file that runs
without pixel_spotter, plus its input contract.

The file maps an (N, 1, H, W) float32 batch, what the run's network takes (its task says: brightness, 0 to 1
for a clean image, for the pixel task; photon counts / ``data.spot.input_scale`` for the spot task), to (N, 2)
pixel coordinates (x = column, y = row): ``CoordinateRegressor.predict_pixels``, the pixel scaling baked in,
with a dynamic batch axis. The run is loaded exactly as ``predict`` loads it (``serving.loading``: untrusted folder,
``weights_only=True``). The file goes to ``./<run name>.onnx`` (``.pt`` for TorchScript) or ``--out``, never into
the run folder; its contract goes next to it as ``<file>.json`` (task, size, dtype, value range, how image files
are scaled, output meaning, the run, the exporter versions, the file's sha256 and the parity check).

Before anything is renamed into place the exported file is run on the task's probe images (every one-pixel
image of the run's size up to 64x64; spot images rendered with the run's own ``data.spot``) and compared with
the PyTorch model: more than ``PARITY_PX`` pixels apart anywhere and the export is refused, leaving whatever was
at ``--out`` untouched. ``--bench`` then prints batch-1 and batch-1024 ms/image of the PyTorch model and the
exported file side by side. A network that cannot go to ONNX (``model=spot_fit``: its Levenberg–Marquardt fit
solves linear systems in its forward) is refused in one line naming ``--format torchscript``; whatever the
exporters print on the way is swallowed.

``pixel_spotter.serving.exported`` reads such a file back for ``pixel-spotter predict model.onnx IMAGE...``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from pixel_spotter.errors import UserError
from pixel_spotter.serving import export_writers as writers
from pixel_spotter.serving.exported import (  # noqa: F401  (open_exported: the reading side, re-exported)
    CONTRACT_VERSION,
    SUFFIXES,
    OnnxModel,
    TorchScriptModel,
    _sha256,
    contract_path,
    identity_of,
    open_exported,
    read_contract,
)

PARITY_PX = 1e-4  # the most an exported file may differ from the PyTorch model, in pixels


# ---- writing one


def _run_name(run: Path) -> str:
    run = Path(run).resolve()
    return run.name if run.is_dir() else run.parent.parent.name


def _run_folder(run: Path) -> Path:
    run = Path(run).resolve()
    return run if run.is_dir() else run.parent.parent


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


def _checked_out(run: Path, fmt: str, out: Path | None) -> Path:
    """Where the export goes: ``out`` or ./<run name><suffix>, with the suffix its format needs, outside the run."""
    out = Path(out) if out is not None else Path.cwd() / f"{_run_name(run)}{SUFFIXES[fmt]}"
    if out.suffix.lower() != SUFFIXES[fmt]:
        raise UserError(f"{out}: a {fmt} export must end in {SUFFIXES[fmt]} (predict picks the runtime by it)")
    folder = _run_folder(run)
    if out.resolve().is_relative_to(folder):
        raise UserError(f"{out} lies inside the run folder {folder}; export elsewhere (--out PATH)")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent} does not exist; create it or pass another --out")
    return out


def _written(fmt: str, model, size: tuple[int, int], path: Path, identity: dict) -> str:
    """Write the traced model to ``path``; the exporter used. Any failure is one line and leaves nothing."""
    if fmt == "onnx":
        writers.require_onnx()
        if getattr(model.net, "refine", 0):
            # spot_fit: minutes of tracing to fail on torch.linalg.solve inside the Levenberg-Marquardt loop
            raise writers.onnx_refusal(None, f"{_net_target(model)} with refine={model.net.refine} runs a "
                                             "Levenberg-Marquardt fit with torch.linalg.solve in its forward")
    try:
        return writers.write(fmt, writers.pixels_module(model), size, path, identity)
    except UserError:
        raise
    except OSError as err:  # a full disk, a folder that cannot be written: not the model's fault
        raise UserError(f"cannot write the {fmt} file into {path.parent} ({err.strerror or type(err).__name__}); "
                        "free some space or pass another --out; nothing written") from None
    except Exception as err:
        raise UserError(f"the {fmt} exporter failed on this model ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}); try --format "
                        f"{'torchscript' if fmt == 'onnx' else 'onnx'}") from None
    finally:
        if not path.is_file() or path.stat().st_size == 0:
            path.unlink(missing_ok=True)


def _contract(fmt: str, out: Path, staged: Path, size, task, run: Path, model, exporter: str, probed: dict) -> dict:
    folder = _run_folder(run)
    fields = task.contract()
    contract = {
        "contract_version": CONTRACT_VERSION, "format": fmt, "file": out.name, "sha256": _sha256(staged),
        "task": task.name, "height": size[0], "width": size[1], "dtype": "float32",
        "value_range": fields["value_range"],
        "input": {"name": writers.INPUT_NAME, "shape": ["N", 1, size[0], size[1]],
                  "layout": "NCHW, one grey channel", "batch_axis": "dynamic", "values": fields["input_values"]},
        "scaling": fields["scaling"],
        "output": {"name": writers.OUTPUT_NAME, "shape": ["N", 2], "meaning": fields["output_meaning"]},
        "run": {"folder": str(folder), "name": folder.name, "model": _net_target(model)},
        "exporter": {"used": exporter, **writers.versions(fmt)},
        "parity": probed,
    }
    if "input_scale" in fields:  # the network takes photon counts / input_scale
        contract["input_scale"] = fields["input_scale"]
    if "trained_ranges" in fields:  # what predict warns far outside of (spot task: photons, background)
        contract["trained_ranges"] = fields["trained_ranges"]
    return contract


def export(run: Path, fmt: str, out: Path | None = None) -> tuple[Path, dict]:
    """Write ``run``'s model as ``fmt`` to ``out`` (default ./<run name><suffix>) and its contract next to it.
    Both are written beside their targets under temporary names and renamed only once the file answers as the
    PyTorch model does: a failed export leaves whatever was at ``out`` as it was."""
    import os

    from pixel_spotter.serving.loading import load_model, locate, run_task

    if fmt not in SUFFIXES:
        raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(SUFFIXES)}")
    model, size = load_model(run)  # the one loading path: checks the run folder as predict does
    out = _checked_out(run, fmt, out)
    task = run_task(locate(Path(run))[0], *size)  # what the network takes, and what the export is checked on
    staged = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        identity = identity_of({"height": size[0], "width": size[1], **task.contract()}, task)
        exporter = _written(fmt, model, size, staged, identity)
        # the file just made: trusted (a network of one's own may use operators the check does not know)
        exported = OnnxModel(staged, size) if fmt == "onnx" else TorchScriptModel(staged, size, trust=True)
        probes, described = task.probe_images()
        worst = parity(model, exported, probes)
        if not worst <= PARITY_PX:
            raise UserError(f"the exported {fmt} model differs from the PyTorch model by up to {worst:.3g} px on "
                            f"{described} (limit {PARITY_PX:g}); nothing written")
        probed = {"images": described, "max_abs_px": worst, "limit_px": PARITY_PX}
        contract = _contract(fmt, out, staged, size, task, run, model, exporter, probed)
        staged_contract = contract_path(staged)
        staged_contract.write_text(json.dumps(contract, indent=2) + "\n")
        os.replace(staged, out)
        os.replace(staged_contract, contract_path(out))
    finally:
        staged.unlink(missing_ok=True)
        contract_path(staged).unlink(missing_ok=True)
    return out, contract


def _net_target(model) -> str:
    net = type(model.net)
    return f"{net.__module__}.{net.__qualname__}"


# ---- latency


def bench(model, exported, task, batch_sizes=(1, 1024)) -> dict:
    """{"pytorch": {batch: ms/image}, "exported": {...}} on the same images, same timing loop
    (pixel_spotter.benchmarks.timing.ms_per_image: one warm-up batch, best of 3): the task's probe images as the
    run's network sees them (a spot model's cost depends on them: its fit runs on the detected patch)."""
    import torch

    from pixel_spotter.benchmarks.timing import ms_per_image

    count = max(batch_sizes)
    images, _ = task.probe_images(limit=count)
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

    from pixel_spotter.serving.image_input import shown_name  # a name with a newline or not UTF-8, escaped

    out, contract = export(args.run, args.fmt, args.out)
    takes = contract["input"]["values"].split(";")[0]
    print(f"wrote {shown_name(out)} ({args.fmt}) and its contract {shown_name(contract_path(out))}; "
          f"{contract['height']}x{contract['width']} {takes} -> (x, y) px; "
          f"parity max |{args.fmt} - torch| = {contract['parity']['max_abs_px']:.2e} px over "
          f"{contract['parity']['images']}")
    if args.bench:
        from pixel_spotter.serving.loading import load_model

        model, _ = load_model(args.run)
        threads = torch.get_num_threads()
        exported = open_exported(out, threads=threads, trust=True)  # the file just written
        times = bench(model, exported, exported.task)
        runtime = f"onnxruntime {contract['exporter']['onnxruntime']}" if args.fmt == "onnx" else "torch.jit"
        label = f"{args.fmt} ({runtime})"
        print(f"\nlatency, ms/image, CPU, {threads} threads   batch 1    batch 1024")
        for name, row in (("pytorch (eager)", times["pytorch"]), (label, times["exported"])):
            print(f"{name:<40} {row[1]:>8.4f}   {row[1024]:>10.4f}")
    return 0
