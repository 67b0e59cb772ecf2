"""`pixel-spotter localize RUN movie.tif`: every emitter of every frame of a movie, from a trained data=emitters
run, as a localization table in ThunderSTORM's CSV layout.

The movie is a TIFF (one frame, or a multi-page stack of frames: tifffile), read frame by frame so a long movie
needs memory for one batch. Its numbers are the camera's (ADU): they are read back in photons with the run's own
camera settings (``data.camera``: baseline, e- per ADU, EM gain, quantum efficiency), or with the ones given here
when the movie comes from another camera, then fed to the network as photons / ``data.input_scale``, as in
training. Frames may be larger than the training frames (the network is fully convolutional).

Columns (``COLUMNS``): frame (from 1), x and y in nm from the image's top-left corner (pixel centres at 0.5 px, as
ThunderSTORM places them), sigma (the emitter's PSF width) in nm, intensity (photons), offset (background photons
per pixel), uncertainty (the model's own standard deviation of the position, the RMS of x and y) in nm.

``--refine N`` turns the maximum-likelihood refinement of each localization on (``frame_refine.py``) or off. A run
trained without it has no calibration for it (the width of its PSF width prior, the factors on its refined
sigmas): these are then set on ``CALIBRATION_FRAMES`` frames simulated from the run's own data settings (emitter
ranges, densities, camera), as the run's test would have set them on its validation frames.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from pixel_spotter.errors import UserError
from pixel_spotter.serving.frame_runtime import RUNTIMES, frames_per_pass

COLUMNS = ("frame", "x [nm]", "y [nm]", "sigma [nm]", "intensity [photon]", "offset [photon]", "uncertainty [nm]")
CAMERA_OPTIONS = {"baseline": "baseline", "e_per_adu": "e-per-adu", "em_gain": "em-gain",
                  "quantum_efficiency": "quantum-efficiency"}
MAX_FRAME_PIXELS = 2**24  # 4096 x 4096 per frame
CALIBRATION_FRAMES, CALIBRATION_SIZE = 200, 64  # a refinement's calibration for a run trained without one
CALIBRATION_STREAM = 23  # their seed stream: frames no run trained, validated or was tested on (bench: 21, 22)
MAX_REFINE = 50
# a frame whose brightest pixel holds this many times the brightest the run was trained on (``brightest_trained``)
# is light the network never saw (mostly counts not converted to photons: a wrong camera): the table says nothing of
# it, so a warning does
FAR_BRIGHTER = 100.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="RUN", help="a data=emitters run folder (or a checkpoint in one)")
    parser.add_argument("movie", type=Path, metavar="MOVIE", help="a TIFF: one frame or a multi-page stack")
    parser.add_argument("--out", type=Path, default=None,
                        help="the CSV to write (default: MOVIE with .csv instead of its suffix)")
    parser.add_argument("--camera", choices=("ideal", "emccd", "scmos"), default=None,
                        help="the movie's camera kind, when not the run's (ideal: the numbers are photons)")
    for key, flag in CAMERA_OPTIONS.items():
        parser.add_argument(f"--{flag}", dest=key, type=float, default=None,
                            help=f"the movie's camera {key.replace('_', ' ')}, when not the run's data.camera")
    parser.add_argument("--batch", type=int, default=None, help="frames per network pass (default: as many as "
                        "the runtime is fastest with: 64 frames of 64x64 for onnxruntime, 16 for torch, fewer of "
                        "larger frames)")
    parser.add_argument("--refine", type=int, default=None, help="steps of the maximum-likelihood refinement of "
                        "each localization with its close neighbours (0: the network alone; 2 is enough; default: "
                        "what the run was trained with)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto", help="what runs the network: PyTorch, or "
                        "ONNX Runtime (the export extra) on the same weights; auto: onnxruntime when installed and "
                        "it answers as PyTorch does (default: %(default)s)")


def movie_shape(tif, path: Path) -> tuple[int, int, int]:
    """(frames, height, width) of a TIFF's first series, or one line saying why it is no movie of frames."""
    series = tif.series[0] if tif.series else None
    if series is None:
        raise UserError(f"{path} holds no image; is it corrupt, or another format?")
    shape, dtype = tuple(series.shape), np.dtype(series.dtype)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise UserError(f"{path} holds {dtype} values; a movie's pixels are integer (ADU) or float numbers")
    if len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > 4:
        raise UserError(f"{path} is a colour image ({'x'.join(map(str, shape))}, {shape[-1]} channels last); a "
                        "movie is grey frames: frames x height x width")
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise UserError(f"{path} is a {len(shape)}-D array ({'x'.join(map(str, shape))}); localize takes one "
                        "frame (height x width) or a stack of frames (frames x height x width)")
    if min(shape[1:]) < 8 or shape[1] * shape[2] > MAX_FRAME_PIXELS:
        raise UserError(f"{path} has frames of {shape[1]}x{shape[2]} pixels; localize takes frames from 8x8 to "
                        f"{MAX_FRAME_PIXELS:,} pixels")
    return shape


def frames_of(tif, shape):
    """The movie's frames, one (H, W) float64 array at a time."""
    series = tif.series[0]
    if len(series.pages) == shape[0]:
        for page in series.pages:
            yield np.asarray(page.asarray(), dtype=np.float64).reshape(shape[1:])
    else:  # one page holds the whole stack
        yield from np.asarray(series.asarray(), dtype=np.float64).reshape(shape)


def _camera(task, args):
    settings = {k: getattr(args, k) for k in CAMERA_OPTIONS if getattr(args, k, None) is not None}
    if getattr(args, "camera", None):
        settings["kind"] = args.camera
    try:
        return replace(task.camera, **settings) if settings else task.camera
    except ValueError as err:  # the dataclass checks its fields again on replace
        raise UserError(f"{err}; fix the option") from None


def calibrate_refinement_on_simulated(model, task) -> int:
    """Set a refining ``model``'s refinement calibration (``FrameLocalizer.calibrate_refinement``) on frames
    simulated from ``task``'s own ranges and camera; the number of emitters it saw."""
    from pixel_spotter.data.seeds import sample_seed
    from pixel_spotter.tasks.emitters.rendering import EmitterSynthesizer

    synth = EmitterSynthesizer(CALIBRATION_SIZE, CALIBRATION_SIZE, task.ranges, task.density, task.camera,
                               task.input_scale)
    images, sets, _ = synth([sample_seed(0, CALIBRATION_STREAM, k) for k in range(CALIBRATION_FRAMES)], "cpu")
    model.calibrate_refinement(lambda: [(images, sets)], task.tally)
    return int(sets.counts.sum())


def _set_refinement(model, task, args) -> float:
    """``--refine``: the model's refinement on or off; calibrated first when its run was trained without it. The
    seconds that took (not the movie's: its frames/s leave them out)."""
    start = time.perf_counter()
    if args.refine is None:
        return 0.0
    trained_with, model.refine = model.refine, args.refine
    if args.refine and not trained_with:  # nothing of the refinement was calibrated when it was trained
        emitters = calibrate_refinement_on_simulated(model, task)
        print(f"note: {args.run} was trained without the refinement; its PSF width prior and the refined "
              f"uncertainties are calibrated on {CALIBRATION_FRAMES} frames ({emitters} emitters) simulated from "
              f"the run's own data settings ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return time.perf_counter() - start


def _rows(found: dict, frame: int, pixel_nm: float) -> list[tuple]:
    rows = []
    xy, sigma = found["xy"], found["sigma"]
    for k in range(len(xy)):
        uncertainty = math.sqrt((sigma[k, 0] ** 2 + sigma[k, 1] ** 2) / 2) * pixel_nm
        rows.append((frame, (xy[k, 0] + 0.5) * pixel_nm, (xy[k, 1] + 0.5) * pixel_nm,
                     found["psf_sigma"][k] * pixel_nm, found["photons"][k], found["background"][k], uncertainty))
    return rows


def brightest_trained(task) -> float:
    """The most photons a pixel held on average in the run's training frames: its brightest, narrowest emitter's
    centre pixel over its highest background."""
    ranges = task.ranges
    return ranges.photons[1] / (2 * math.pi * ranges.sigma_psf[0] ** 2) + ranges.background[1]


def localize_movie(model, task, camera, tif, shape, batch: int, bar=None, too_bright: list | None = None):
    """Every localization row of the movie, batch by batch; ``bar`` is updated per frame, and ``too_bright`` gets
    the number of each frame whose brightest pixel holds ``FAR_BRIGHTER`` times ``brightest_trained`` photons."""
    import torch

    buffer, first = [], 1
    for index, frame in enumerate(frames_of(tif, shape), start=1):
        if not np.isfinite(frame).all():
            raise UserError(f"frame {index} holds a value that is not a finite number (NaN or inf)")
        buffer.append(frame)
        if len(buffer) == batch or index == shape[0]:
            photons = camera.to_photons(torch.from_numpy(np.stack(buffer)))
            if too_bright is not None:
                limit = FAR_BRIGHTER * brightest_trained(task)
                too_bright += [first + k for k, v in enumerate(photons.amax(dim=(1, 2)).tolist()) if v > limit]
            images = (photons / task.input_scale).to(torch.float32)[:, None]
            with torch.inference_mode():
                found = model.localize(images)
            for offset, frame_found in enumerate(found):
                yield from _rows(frame_found, first + offset, task.ranges.pixel_size_nm)
            if bar is not None:
                bar.update(len(buffer))
            first += len(buffer)
            buffer = []


def _open_for_writing(tmp: Path, out: Path):
    try:
        return tmp.open("w")
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror or err}; pass --out with a writable path") from None


def _write(handle, text: str | None, out: Path) -> None:
    """``text`` into the table (None: flush it to the disk), a failure (a full disk) as one line."""
    try:
        if text is None:
            handle.flush()
            os.fsync(handle.fileno())
        else:
            handle.write(text)
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror or err}") from None


def _format(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def run_command(args: argparse.Namespace) -> int:
    import logging

    import tifffile

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # its warnings about a damaged file: our one line says it

    from pixel_spotter.cli import progress
    from pixel_spotter.run_folder import temporary_beside
    from pixel_spotter.serving.loading import load_model, locate, run_task

    if args.batch is not None and not 1 <= args.batch <= 4096:
        raise UserError(f"--batch {args.batch}: give 1 to 4096 frames per pass")
    if args.refine is not None and not 0 <= args.refine <= MAX_REFINE:
        raise UserError(f"--refine {args.refine}: give 0 to {MAX_REFINE} fit steps (0: the network alone)")
    if not args.movie.is_file():
        raise UserError(f"{args.movie} does not exist; pass a TIFF movie")
    folder, _ = locate(args.run)
    model, size = load_model(args.run, frames=True)
    task = run_task(folder, *size)
    if task.name != "emitters":
        raise UserError(f"{args.run} is a data={task.name} run; localize takes a data=emitters run")
    model.input_scale = task.input_scale  # the refinement fits photons: what the run's input is scaled by
    from pixel_spotter.serving.frame_runtime import use_runtime

    runtime, why = use_runtime(model, args.runtime, *size)
    if why:
        print(f"note: the network runs on PyTorch: {why}", file=sys.stderr)
    record = folder.read()
    model.apply_decode(record.decode)  # the threshold and sigma calibration its test used
    camera = _camera(task, args)
    out = args.out or args.movie.with_suffix(".csv")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror or err}; pass --out with a writable path") from None
    try:
        tif = tifffile.TiffFile(args.movie)
    except Exception as err:  # tifffile's TiffFileError, struct errors of a truncated file, ...
        raise UserError(f"{args.movie} is not a readable TIFF ({type(err).__name__}); is it corrupt, or another "
                        "format?") from None
    tmp = temporary_beside(out)  # beside the target, renamed when complete
    start, count, too_bright = time.perf_counter(), 0, []
    try:
        with tif, _open_for_writing(tmp, out) as csv_file:
            shape = movie_shape(tif, args.movie)
            start += _set_refinement(model, task, args)  # once the movie and the table are known to be usable
            _write(csv_file, ",".join(f'"{c}"' for c in COLUMNS) + "\n", out)
            with progress(total=shape[0], desc="localize", unit="frame") as bar:
                batch = args.batch or frames_per_pass(runtime, shape[1], shape[2])
                rows = localize_movie(model, task, camera, tif, shape, batch, bar, too_bright)
                while True:
                    try:
                        row = next(rows)
                    except StopIteration:
                        break
                    except UserError:
                        raise
                    except Exception as err:  # a page that cannot be decoded: the file is damaged past its header
                        raise UserError(f"{args.movie} cannot be read to its end ({type(err).__name__}: {err}); "
                                        "is it truncated or corrupt?") from None
                    _write(csv_file, ",".join(_format(v) for v in row) + "\n", out)
                    count += 1
            _write(csv_file, None, out)
        os.replace(tmp, out)
    except BaseException:  # a bad frame, a full disk, Ctrl-C: no half table, and none left behind
        tmp.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - start
    refined = f", refined in {model.refine} steps" if model.refine else ""
    print(f"localize: {count} localizations in {shape[0]} frames of {shape[1]}x{shape[2]} "
          f"({shape[0] / max(seconds, 1e-9):.0f} frames/s, {runtime}{refined}) -> {out}")
    if too_bright:
        print(f"warning: {len(too_bright)} of {shape[0]} frames (the first: frame {too_bright[0]}) hold pixels over "
              f"{FAR_BRIGHTER * brightest_trained(task):.3g} photons, {FAR_BRIGHTER:g} times the brightest the run was "
              f"trained on; is the camera right (--baseline, --e-per-adu, --em-gain, --quantum-efficiency)? Their "
              f"localizations are in the table, from light the network never saw", file=sys.stderr)
    if count == 0:
        jaccard = (record.test or {}).get("jaccard")
        trained = f", and is the run trained enough (its test Jaccard index is {jaccard:.3f})" \
            if isinstance(jaccard, (int, float)) else ""
        print(f"warning: no emitter found; is the camera right (--baseline, --e-per-adu, --em-gain, "
              f"--quantum-efficiency){trained}?", file=sys.stderr)
    return 0
